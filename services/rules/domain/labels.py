"""The Chinese words the rules service writes into texts a person reads, once.

Event summaries, decision causes, history reasons and the `revoked_by_event` blocker
reach the firm's phone page (booking prints them) and the staff's histories: no enum
value, kind name or number in exponent notation goes into them. The risk and status
words, and a fact's answer, serve the blockers' reasons and the `evaluate` command's
text (entrypoints/render.py) alike. The texts are stored when
written (an event's summary, a decision's cause, a white-list entry's revoked reason), so
a change of wording here changes what is recorded from then on, not what was recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext

from .profile import AccidentLevel

# 《生产安全事故报告和调查处理条例》 Art. 3 grades; docs/api.md names them the same way
ACCIDENT_LEVEL = {
    AccidentLevel.GENERAL: "一般事故",
    AccidentLevel.LARGER: "较大事故",
    AccidentLevel.MAJOR: "重大事故",
    AccidentLevel.ESPECIALLY_MAJOR: "特别重大事故",
}

# events.EventKind values (docs/policy.md §5), as a history names the event
EVENT_KIND = {
    "accident": "事故",
    "complaint": "投诉举报",
    "major_hazard_found": "发现重大隐患",
    "general_hazard_found": "发现一般隐患",
    "hazard_verified": "隐患复查通过",
    "rectification_overdue": "隐患逾期未整改",
    "penalty": "行政处罚",
    "profile_updated": "企业信息更新",
    "hazard_due_changed": "隐患整改期限变更",
}

# DecisionRecord.whitelist_change: what a decision did to the firm's white-list entry
WHITELIST_CHANGE = {
    "granted": "列入白名单",
    "extended": "白名单延续",
    "revoked": "白名单撤销",
    "expired": "白名单到期",
}

# decision.RiskLevel values (docs/policy.md §2)
RISK_LEVEL = {
    "blue": "蓝色（低风险）",
    "yellow": "黄色（一般风险）",
    "orange": "橙色（较大风险）",
    "red": "红色（重大风险）",
}
# decision.Status values
STATUS = {
    "whitelist": "白名单（无事不扰）",
    "routine": "常规监管（双随机抽查）",
    "priority": "重点监管",
}

REVOKED_BY_EVENT = "白名单因事件撤销："  # booking's messages.REVOKED_BY_EVENT_PREFIX
# a white-list entry closed because its valid_until passed (its revoked_reason); what
# kind of closing it was is the entry move's kind, never read back from this text
ENTRY_EXPIRED = "有效期届满"

# decision causes other than an event's (`event_cause`)
UPSERT_CAUSE = "企业信息登记/更新"  # UpsertEnterprise without an update mask
PARTIAL_UPDATE = "企业信息部分更新"  # with one: `partial_update_cause`
NAMED_IN_CAUSE = 5  # fields a partial update's cause names; the rest are counted

# EnterpriseProfile's fields (docs/api.md), as a partial update's cause names them
PROFILE_FIELD = {
    "name": "企业名称",
    "industry": "行业",
    "region": "所在镇街",
    "employees": "从业人员数",
    "specialized_sme": "专精特新",
    "standardization_grade": "安全生产标准化等级",
    "credit_rating": "信用等级",
    "blacklisted": "严重失信主体名单",
    "merchant_score": "十二分制得分",
    "high_risk_domains": "高危领域",
    "venues": "场所类型",
    "hazchem_roles": "危险化学品生产经营使用",
    "accidents": "事故记录",
    "penalties": "行政处罚记录",
    "hazards": "隐患记录",
    "facts": "现场情况（全部）",
}
RETIRED_FACT = "已停用的现场情况项"  # a fact path naming a retired key (to clear it)

# the `evaluate` command's text (entrypoints/render.py, cli.py): a profile not evaluated,
# refused as INVALID_ARGUMENT (the violations under it stay in the API's words) or for
# another reason (the service could not answer: its message follows), and the count
REFUSED = "数据有误，未评估"
NOT_EVALUATED = "未评估（评估服务未能作答）"
NOT_EVALUATED_COUNT = "共{n}份企业资料未评估"


FEN = Decimal("0.01")
BELOW_A_FEN = "不足0.01元"  # a positive amount that rounds to no fen


def yuan(amount: float) -> str:
    """An amount of money written out in full, rounded half up (四舍五入) to the fen from
    the float's shortest decimal text (0.125 → 0.13, 999999999999.99 as sent): whole
    yuan without decimals, else with both (1000000元, 2000.50元, 0.13元); a positive
    amount under half a fen is 不足0.01元. Input stops at 10^12 yuan
    (profile.MAX_PENALTY_YUAN); a larger one stored before that bound is written out
    whole all the same."""
    exact = Decimal(repr(float(amount)))
    with localcontext() as ctx:
        ctx.prec = 400  # every digit of any finite double, with its fen
        fen = exact.quantize(FEN, rounding=ROUND_HALF_UP)
        whole = fen.to_integral_value()
    if not fen:
        return BELOW_A_FEN if exact > 0 else "0元"
    return f"{whole:f}元" if fen == whole else f"{fen:f}元"


def number(value: float) -> str:
    """A fact's number as a person writes it: 35, 0.6, 0.0000001 (never 1e-07 or 3.0)."""
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def answer(value: object, unit: str = "") -> str:
    """A fact's value as the answer to its question (是 = the bad condition): 是, 否,
    35kPa, 3人, 0.6 (a ratio, unit 比值, goes without its unit), or the text."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int | float):
        return number(float(value)) + ("" if unit == RATIO else unit)
    return str(value)


RATIO = "比值"  # facts.yaml's unit of a ratio (actual ÷ required)


def accident(level: AccidentLevel, deaths: int) -> str:
    """事故（特别重大事故，死亡31人）."""
    return f"事故（{ACCIDENT_LEVEL[level]}，死亡{deaths}人）"


# a finding of an open hazard whose clause no loaded ruleset has (a ruleset change removed
# it after the expert recorded the finding, review 67 F2 and its GENERAL twin): the
# clause cited by its ref, said to be gone, and the ticket's own guidance
HAZARD_CLAUSE_GONE = "现场检查发现的隐患（{ref}，该条款已不在现行规则集中，以整改通知书为准）"
HAZARD_GUIDANCE_GONE = "按整改通知书要求限期整改，整改后申请复查。"


def hazard_clause_gone(ref: str) -> str:
    """The text of a finding whose clause the loaded rulesets no longer have."""
    return HAZARD_CLAUSE_GONE.format(ref=ref)


def hazard_found(severity: str, ref: str, title: str) -> str:
    """A found hazard's event summary, naming the clause it breaches as booking's pages
    name clauses (shown_ref): a national standard's numbered clause by its ref, 发现重大
    隐患 GM2023:3(2); a rule the register names by a word (GEN:ledger, SMALL:smoke) by its
    title, never its code, 发现一般隐患“隐患排查治理台账” (no title known: not named)."""
    _, _, clause = ref.partition(":")
    if clause[:1].isdigit():
        return f"发现{severity} {ref}"
    return f"发现{severity}“{title}”" if title else f"发现{severity}"


def event_cause(kind: str, event_id: str, summary: str) -> str:
    """A decision's cause when an event made it: 事件（行政处罚，编号 p-1）：行政处罚5000元."""
    return f"事件（{EVENT_KIND.get(kind, kind)}，编号 {event_id}）：{summary}"


def revoked_by_event(summary: str) -> str:
    """The `revoked_by_event` blocker's reason."""
    return REVOKED_BY_EVENT + summary


def whitelist_change(change: str) -> str:
    """What a history's decision item adds after its cause: （白名单撤销）; "" for none."""
    return f"（{WHITELIST_CHANGE.get(change, change)}）" if change else ""


def partial_update_cause(names: Sequence[str]) -> str:
    """The cause of an update-masked UpsertEnterprise's decision, naming what it set (a
    field's or a fact's name, `PROFILE_FIELD` or the fact's label): 企业信息部分更新（从业
    人员数、信用等级）; past NAMED_IN_CAUSE names, 等N项."""
    shown = list(dict.fromkeys(names))
    if not shown:
        return PARTIAL_UPDATE
    more = f"等{len(shown)}项" if len(shown) > NAMED_IN_CAUSE else ""
    return f"{PARTIAL_UPDATE}（{'、'.join(shown[:NAMED_IN_CAUSE])}{more}）"


def reevaluation_cause(run: str) -> str:
    """The cause of a periodic re-evaluation's decisions, naming its run (short id)."""
    return f"定期重新评估（批次 {run}）"


def one_of(items: Sequence[str]) -> str:
    """Alternatives as a sentence lists them: A, A或B, A、B或C."""
    if len(items) < 2:
        return "".join(items)
    return "、".join(items[:-1]) + "或" + items[-1]


# a standardization grade (1 the best; 0 none), as the white list's reasons name it
GRADE = {1: "一级", 2: "二级", 3: "三级"}


def credit_blocker(rating: str, accepted: Collection[str]) -> str:
    """The `credit_rating` blocker's reason, naming the ratings policy.yaml's white list
    accepts (`whitelist.credit_ratings`): 信用等级为B，须为A; 未评定信用等级，须为A或B."""
    have = f"信用等级为{rating}" if rating else "未评定信用等级"
    shown = sorted(accepted)
    return f"{have}，" + (f"须为{one_of(shown)}" if shown else "白名单不接受任何信用等级")


def standardization_blocker(grade: int, accepted: Collection[int], employees_below: int) -> str:
    """The `standardization` blocker's reason, naming the grades policy.yaml's white list
    accepts (`whitelist.standardization_grades`) and its exemption, for fewer than N
    employees (`small_firm_employees_below`; 以下 would include N, docs/standards.md):
    安全生产标准化等级为三级，须为一级或二级（员工少于50人且不涉高危领域的除外）."""
    have = f"安全生产标准化等级为{GRADE[grade]}" if grade in GRADE else "未取得安全生产标准化等级"
    shown = [GRADE[g] for g in sorted(accepted) if g in GRADE]
    need = f"须为{one_of(shown)}" if shown else "白名单不接受任何标准化等级"
    return f"{have}，{need}（员工少于{employees_below}人且不涉高危领域的除外）"
