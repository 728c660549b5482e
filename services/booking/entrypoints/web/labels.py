"""How values look on the pages: the Chinese names of statuses, severities, domains,
actors and inspection kinds, and of dates, times, slots and months (the templates'
helpers). Sentences are in domain/messages.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import jinja2

from services.booking.domain import messages
from services.booking.domain.order_history import STAFF_ACTOR
from services.booking.domain.orders import OrderStatus
from services.booking.domain.slots import parse_slot
from services.booking.domain.tickets import TicketStatus
from services.common.instants import in_shanghai
from services.common.vocabulary import Domain, Severity

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# the statuses' names, one place with the errors that name them (domain/messages.py)
ORDER_STATUS_LABELS = {s.value: messages.ORDER_STATUS_NAMES[s.value] for s in OrderStatus}
TICKET_STATUS_LABELS = {s.value: messages.TICKET_STATUS_NAMES[s.value] for s in TicketStatus}
SEVERITY_LABELS = {s.value: s.label for s in Severity}
# Other actors are service callers (experts, inspectors): their ids stay off the page,
# as off the firm's gRPC view, where they read STAFF_ACTOR (domain/order_history.py).
OTHER_ACTOR = "专家/工作人员"
ACTOR_LABELS = {
    "firm": "企业",
    "dispatcher": "系统派单",
    "sweep": "系统",
    "": "系统",
    STAFF_ACTOR: OTHER_ACTOR,
}
DOMAIN_LABELS = {**{d.value: d.label for d in Domain}, "any": "通用服务"}
INSPECTION_KIND_LABELS = {
    "ROUTINE": "日常检查（双随机）",
    "CAMPAIGN": "专项检查",
    "COMPLAINT": "投诉举报核查",
    "REFERRAL": "转办交办",
    "DATA_MONITORING": "数据监测预警核查",
    "ACCIDENT": "事故调查",
    "RECHECK": "复查",
    "ENTERPRISE_REQUEST": "企业申请",
    "LICENSING": "行政许可核查",
}
WEEKDAYS = "一二三四五六日"
# a description in a list (the recheck queue, the expert's findings): its first
# characters on one line, the whole text on the ticket's page (review 59 F7: a 1,000-
# character finding made a 2,000 px card on a phone, and the card's link name)
EXCERPT_CHARS = 60
# the dashboard's charts: (title, the table's column headers)
CHART_LABELS = {
    "overdue-by-region": ("逾期未整改隐患（按镇街）", ("镇街", "逾期未整改（处）")),
    "hazards-by-month": (
        "隐患发现与整改销号（按月）",
        ("月份", "发现隐患（处）", "整改销号（处）"),
    ),
    "fix-by-domain": (
        "按期整改率与整改天数（按领域）",
        ("领域", "已整改销号（处）", "按期整改率", "整改天数中位数（天）"),
    ),
    "whitelist": (
        "白名单企业数（按月，来自规则服务）",
        ("月份", "月末白名单企业数（家）", "当月纳入（家）", "当月移出（家）"),
    ),
}
ALL_REGIONS = "全部镇街"
SERIES_LABELS = {
    "overdue": "逾期未整改",
    "found": "发现隐患",
    "eliminated": "整改销号",
    "on_time": "按期整改率",
    "median_days": "整改天数中位数",
    "whitelist": "白名单企业数",
}


def day(value: date | str | None) -> str:
    """A day as every firm and staff page writes it (messages.a_day: 2026年6月7日), from a
    date or a `YYYY-MM-DD` string; anything else as it is; none as ""."""
    return messages.a_day(value) if value else ""


def time(value: datetime | None) -> str:
    """A stored instant in Beijing time (SQLite hands back naive UTC): its day as `day`
    writes it, then the hour (2026年6月7日 09:05)."""
    if value is None:
        return ""
    local = in_shanghai(value)
    return f"{day(local.date())} {local.hour:02d}:{local.minute:02d}"


def weekday(value: date) -> str:
    return f"周{WEEKDAYS[value.weekday()]}"


def slot_label(text: str | None) -> str:
    if not text:
        return ""
    try:
        slot = parse_slot(text)
    except ValueError:
        return text
    return f"{slot.label}（{weekday(slot.day)}）"


def month(key: str) -> str:
    year, _, number = key.partition("-")
    return f"{year}年{int(number)}月" if number.isdigit() else key


def shown_ref(ref: str) -> str:
    """A clause ref as a firm reads it: a national standard's clause by its number
    (GM2023:11(1), FIRE35181:6.4), or "" for a rule the register names by a word
    (GEN:risk_report, SMALL:smoke: review 47a N1), whose text the page shows instead."""
    _, _, clause = ref.partition(":")
    return ref if clause[:1].isdigit() else ""


@dataclass(frozen=True)
class ShownClause:
    """A clause as a firm's page shows it: `number` ("" for a rule named by a word) and
    `text` (either may be "", never both)."""

    number: str
    text: str


def shown_clause(ref: str, text: str) -> ShownClause:
    """A clause ref with its text from the rules service ("" when unknown), as every firm
    page shows it (_clause.html): a national clause by its number, with its text when
    known; a rule named by a word by its text alone, and while that is unknown by
    CLAUSE_TEXT_UNAVAILABLE, never by its code."""
    number = shown_ref(ref)
    return ShownClause(number, text or ("" if number else messages.CLAUSE_TEXT_UNAVAILABLE))


# standards whose clauses are numbered items alone (一、…二十、), cited 第N项: the 2017
# 化工和危险化学品 判定标准 (spec standards-text/chem2017.md); any other document's
# numbered clause N(M) is 第N条第（M）项 (部令第10号, gm2023.md); a GB standard's section
# is cited by the standard's number, GB 35181-2017 第6.2条 (fire35181.md)
NUMBERED_BY_ITEM = frozenset({"CHEM2017"})
_ARTICLE = re.compile(r"([0-9]{1,2})(?:\(([0-9]{1,2})\))?")
_DIGITS = "零一二三四五六七八九"
# a national clause's ref inside a sentence: GM2023:3(2), FIRE35181:6.2, CHEM2017:12
_NATIONAL_REF = re.compile(r"\b[A-Z][A-Z0-9]{1,15}:[0-9]{1,2}(?:\.[0-9]{1,2})*(?:\([0-9]{1,2}\))?")


def chinese_number(n: int) -> str:
    """1 to 99 as a clause number is written: 一, 十, 十一, 二十, 六十四."""
    tens, ones = divmod(n, 10)
    if not tens:
        return _DIGITS[ones]
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")


def cited(ref: str, standard: tuple[str, str] | None) -> str:
    """A national clause as staff cite it (review 66): a GB standard's section by the
    standard's number (GB 35181-2017 第6.2条), any other document's by its title and the
    article and item the way it numbers them (《工贸企业重大事故隐患判定标准》第十一条第（三）
    项; the 2017 化工 判定标准's items 第十二项). `standard`: its (title, edition) as the
    rules service's catalogue names it; unknown (rules never reached), the ref itself
    (GM2023:11(3)). A rule named by a word (GEN:ledger) has no citation: ""."""
    number = shown_ref(ref)
    if not number or standard is None:
        return number
    standard_id, _, clause = ref.partition(":")
    title, edition = standard
    if edition.upper().startswith("GB"):
        return f"{edition} 第{clause}条"
    found = _ARTICLE.fullmatch(clause)
    if found is None or not title:
        return f"{edition or title or standard_id} {clause}"
    article, item = (int(g) if g else 0 for g in found.groups())
    if standard_id in NUMBERED_BY_ITEM:
        return f"《{title}》第{chinese_number(article)}项"
    return f"《{title}》第{chinese_number(article)}条" + (
        f"第（{chinese_number(item)}）项" if item else ""
    )


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A person's text for a list: its lines joined by a space, runs of spaces as one,
    at most `limit` characters, "…" when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def staff_name(actor: str, me: str = "") -> str:
    """Who did something, as the staff pages name them: a staff member by their name
    (the caller `staff:<username> <name>`), RECHECK_YOU when that is `me` (the reader's
    own caller), anyone else (a service caller) as OTHER_ACTOR, a firm as 企业."""
    if me and actor == me:
        return messages.RECHECK_YOU
    if actor.startswith("staff:"):
        return actor.partition(" ")[2] or OTHER_ACTOR
    return ACTOR_LABELS.get(actor, OTHER_ACTOR)


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def environment(
    standards: Callable[[str], tuple[str, str] | None] | None = None,
) -> jinja2.Environment:
    """The templates (autoescaped HTML) with the labels as globals. `standards`: a
    standard's (title, edition) by id, from the rules service's cached catalogue (never a
    call), for the staff pages' citations (`cited_ref`)."""

    def cited_ref(ref: str) -> str:
        standard_id = ref.partition(":")[0]
        return cited(ref, standards(standard_id) if standards else None)

    def cite_in(sentence: str) -> str:
        """A sentence from the rules service (a blocker's reason: 发现重大隐患 GM2023:3(2))
        with each national clause's ref cited as `cited_ref` cites it (review 70)."""
        return _NATIONAL_REF.sub(lambda m: cited_ref(m.group(0)), sentence)

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template is HTML: escape everything
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        order_status=lambda s: ORDER_STATUS_LABELS.get(s, s),
        ticket_status=lambda s: TICKET_STATUS_LABELS.get(s, s),
        severity=lambda s: SEVERITY_LABELS.get(s, s),
        actor=lambda a: ACTOR_LABELS.get(a, OTHER_ACTOR),
        domain=lambda d: DOMAIN_LABELS.get(d, d),
        day=day,
        time=time,
        slot_label=slot_label,
        weekday=weekday,
        month=month,
        percent=percent,
        excerpt=excerpt,
        shown_ref=shown_ref,
        shown_clause=shown_clause,
        cited_ref=cited_ref,
        cite_in=cite_in,
    )
    return env
