"""The firm's own page from the rules service's decision (service_layer/guidance.py), the
self-check (self_check.py), pre-filled orders, and the poster's checklist layout."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.booking.adapters import rules_client
from services.booking.adapters.poster import (
    A4_H,
    A4_W,
    MIN_FONT_MM,
    ChecklistGroup,
    layout,
    render_poster,
    render_poster_pdf,
)
from services.booking.domain import messages
from services.booking.domain.rules_service import (
    BlockerInfo,
    ClauseInfo,
    FindingInfo,
    FirmStatus,
    Question,
    RulesUnavailable,
)
from services.booking.entrypoints.web import labels
from services.booking.service_layer import guidance, orders, qr_codes, self_check
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.errors import ValidationError
from tests.unit.booking.fakes import FIRM, MENU, FakeUnitOfWork, context
from tests.unit.booking.test_order_states import make_ticket

DUST = FindingInfo(
    "GM2023:11(3)", "GM2023", "11(3)", "major", "干式除尘系统未采取泄爆…", "加装泄爆装置",
    ("dust_explosion",),
)  # fmt: skip


def test_blockers_become_sentences_from_their_own_dates() -> None:
    penalty = BlockerInfo("recent_penalty", "24个月内受到过行政处罚", "2026-03-02", "2028-03-03")
    assert (
        guidance.blocker_sentence(penalty)
        == "2026年3月2日 受到行政处罚，2028年3月3日起不再影响白名单"
    )
    credit = BlockerInfo("credit_rating", "信用等级为C，须为A或B")
    assert guidance.blocker_sentence(credit) == "信用等级为C，须为A或B"
    undated = BlockerInfo("recent_penalty", "24个月内受到过行政处罚")  # an old decision
    assert guidance.blocker_sentence(undated) == "24个月内受到过行政处罚"


def test_a_revocation_says_its_prefix_once_and_names_the_firms_hazard() -> None:
    """Review 47a F7: rules writes the reason with the sentence's prefix, and an overdue
    hazard by its ticket id; the firm reads the prefix once and the finding it knows."""
    ctx = context()
    uow = FakeUnitOfWork()
    own = replace(make_ticket(), id="Td8a0ef0791f1444", enterprise_id=FIRM)
    own.description = "未建立隐患排查治理台账，  且未按月检查消防设施和灭火器的有效期限（共三处）"
    uow.register.tickets_by_id[own.id] = own
    other = replace(make_ticket(), id="Tabcdef0123456789", enterprise_id="91330782MA0000999X")
    uow.register.tickets_by_id[other.id] = other
    prefix = "白名单因事件撤销："
    blockers = (
        BlockerInfo("revoked_by_event", f"{prefix}隐患Td8a0ef0791f1444逾期未整改", "2026-01-23"),
        BlockerInfo("revoked_by_event", f"{prefix}隐患Tabcdef0123456789逾期未整改", "2026-01-24"),
        BlockerInfo("revoked_by_event", "行政处罚5000元", "2026-01-25"),
    )
    ctx.rules.statuses[FIRM] = FirmStatus("routine", "yellow", "2027-06-01", "", blockers, (), ())
    panel = guidance.firm_status(ctx, FIRM, "TOKEN", uow)
    assert panel["blockers"] == [
        "2026年1月23日 白名单因事件撤销：隐患“未建立隐患排查治理台账， 且未按月检查消防设施和灭火器"
        "的有效…”逾期未整改",
        # another firm's ticket is not named (nor looked into): its id stays as rules wrote it
        "2026年1月24日 白名单因事件撤销：隐患Tabcdef0123456789逾期未整改",
        "2026年1月25日 白名单因事件撤销：行政处罚5000元",
    ]
    # without the register (or before the lookup), the prefix is still shown once
    plain = guidance.firm_status(ctx, FIRM, "TOKEN")
    assert plain["blockers"][0] == "2026年1月23日 白名单因事件撤销：隐患Td8a0ef0791f1444逾期未整改"


def test_the_status_panel_links_each_hazard_to_a_prefilled_order() -> None:
    ctx = context()
    ctx.rules.statuses[FIRM] = FirmStatus(
        "priority", "red", "2027-06-01", "", (), (DUST,), ("dust_explosion",)
    )
    panel = guidance.firm_status(ctx, FIRM, "TOKEN")
    assert panel["available"] and panel["headline"] == "重点监管"
    (hazard,) = panel["hazards"]
    assert hazard["items"] == ["粉尘防爆"]
    assert hazard["order_url"] == "/q/TOKEN/order?item=dust_explosion&ref=GM2023%3A11%283%29"


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("blue", "风险等级：蓝色（低风险）"),
        ("yellow", "风险等级：黄色（一般风险）"),
        ("orange", "风险等级：橙色（较大风险）"),
        ("red", "风险等级：红色（重大风险）"),
        ("", ""),  # a decision without a colour (an older rules): no line, no raw value
    ],
)
def test_the_panel_names_the_risk_colour(level: str, shown: str) -> None:
    """Review 63: the firm reads its risk colour, a white-listed one too."""
    ctx = context()
    ctx.rules.statuses[FIRM] = FirmStatus("whitelist", level, "2027-06-01", "", (), (), ())
    assert guidance.firm_status(ctx, FIRM, "TOKEN")["risk"] == shown


def test_the_panel_says_when_rules_cannot_answer() -> None:
    ctx = context()
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    panel = guidance.firm_status(ctx, FIRM, "TOKEN")
    assert panel == {"available": False, "note": guidance.messages.STATUS_UNAVAILABLE}


def test_a_self_check_evaluates_only_the_answers_given() -> None:
    ctx = context()
    question = Question("dust.dry_collector_unprotected", "干式除尘器…？", "yes_no")
    count = Question("gm.special_ops_uncertified", "无证人数？", "count", "人")
    ctx.rules.applicable_clauses = [
        ClauseInfo("GM2023:11(3)", "GM2023", "工贸", "11(3)", "除尘器无泄爆", "major", "…", "…",
                   ("dust_explosion",), (question,)),
        ClauseInfo("GM2023:3(2)", "GM2023", "工贸", "3(2)", "特种作业无证", "major", "…", "…",
                   (), (count,)),
    ]  # fmt: skip
    ctx.rules.answers_find = {question.key: DUST}
    groups = self_check.questions(ctx, FIRM)
    assert [q.key for q, _ in groups[0].questions] == [question.key, count.key]
    answers, errors = self_check.parse_answers(groups, {question.key: "yes", count.key: "x"})
    assert errors == {count.key: "请填写数字"}
    answers, errors = self_check.parse_answers(groups, {question.key: "yes", count.key: ""})
    assert answers == {question.key: True} and not errors
    said = {  # review 47a N11: a number refused says why
        raw: self_check.parse_answers(groups, {count.key: raw})[1].get(count.key)
        for raw in ("-1", "1.5", "1000001", "nan", "2")
    }
    assert said == {
        "-1": "不能为负数，没有请填0",
        "1.5": "请填写整数",
        "1000001": "数值太大，最多填1000000",
        "nan": "请填写数字",
        "2": None,
    }
    result = self_check.evaluate(ctx, FIRM, "TOKEN", answers)
    assert [v["finding"].ref for v in result["major"]] == ["GM2023:11(3)"]
    assert ctx.rules.evaluated == [{question.key: True}]


def test_a_prefilled_order_keeps_its_clause_refs() -> None:
    ctx, uow = context(), FakeUnitOfWork()
    token = qr_codes.issue_qr_code(uow, ctx, FIRM).token
    day = ctx.today()
    form: dict[str, Any] = {
        "item_codes": ["dust_explosion"],
        "preferred_slots": [
            f"{day.replace(day=day.day + 1)} AM",
            f"{day.replace(day=day.day + 2)} AM",
        ],
        "contact_name": "王经理",
        "contact_phone": "13812345678",
        "clause_refs": ["GM2023:11(3)", "GM2023:11(3)"],
    }
    order = orders.create_order(uow, ctx, token, form, "k1")
    assert order.clause_refs == ["GM2023:11(3)"]
    with pytest.raises(ValidationError) as info:
        orders.create_order(uow, ctx, token, {**form, "clause_refs": ["<script>"]}, "k2")
    assert info.value.violations[0].field == "clause_refs[0]"


@pytest.mark.parametrize("items", [10, 40])
def test_the_poster_checklist_fits_the_page_legibly(items: int) -> None:
    half = items // 2
    groups = [
        ChecklistGroup(
            "工贸企业重大事故隐患判定标准", tuple(f"粉尘涉爆场所第{i}项" for i in range(half))
        ),
        ChecklistGroup(
            "重大火灾隐患判定方法", tuple(f"疏散通道第{i}项" for i in range(items - half))
        ),
    ]
    lines = layout("义乌市恒达五金制品有限公司", list(MENU.values()), "12345", groups)
    shown = [line for line in lines if line.text.startswith("□")]
    assert len(shown) == items  # every item is printed
    for line in lines:
        assert line.size >= MIN_FONT_MM, line
        assert line.left >= 0 and line.left + line.width <= A4_W, line
        assert line.size <= line.y <= A4_H, line
    boxes = sorted((round(line.left), round(line.y, 1)) for line in lines)
    assert len(set(boxes)) == len(boxes)  # no two lines on the same spot
    svg = render_poster(
        "义乌市恒达五金制品有限公司", "https://x/q/t", MENU.values(), "12345", groups
    )
    assert svg.count("□") == items and "<script" not in svg
    pdf = render_poster_pdf(
        "义乌市恒达五金制品有限公司", "https://x/q/t", MENU.values(), "12345", groups
    )
    assert pdf.startswith(b"%PDF") and re.search(rb"/MediaBox \[\s*0 0 595\.27", pdf)


def test_an_overlong_checklist_is_summarised_not_shrunk() -> None:
    groups = [ChecklistGroup("标准", tuple(f"第{i}项" for i in range(120)))]
    lines = layout("厂", list(MENU.values()), "12345", groups)
    assert min(line.size for line in lines) >= MIN_FONT_MM
    assert any("另有" in line.text for line in lines)
    assert all(line.y <= A4_H for line in lines)


def test_an_older_revocation_citing_a_rule_by_its_code_leaves_the_code_out() -> None:
    """Review 53 N10: rules now names a rule named by a word by its title; a reason it
    stored before says "发现重大隐患 SMALL:evacuation". A national clause keeps its number."""
    old = BlockerInfo(
        "revoked_by_event", "白名单因事件撤销：发现重大隐患 SMALL:evacuation", "2026-01-23"
    )
    assert guidance.blocker_sentence(old) == "2026年1月23日 白名单因事件撤销：发现重大隐患"
    gm = BlockerInfo("revoked_by_event", "白名单因事件撤销：发现重大隐患 GM2023:3(2)", "2026-01-23")
    assert (
        guidance.blocker_sentence(gm) == "2026年1月23日 白名单因事件撤销：发现重大隐患 GM2023:3(2)"
    )


# -- review 62: the firm's phone page ---------------------------------------------------------


def test_a_clauses_questions_come_under_it_once() -> None:
    """The self-check cites a clause once, its questions under it (the page repeated the
    full citation under each question of a clause)."""
    ctx = context()
    one = Question("dust.zone_in_non_frame_multistorey", "多层非框架建筑内有粉尘区？", "yes_no")
    two = Question("dust.crowd_room_in_dust_building", "粉尘区所在建筑内有人员聚集场所？", "yes_no")
    other = Question("dust.dry_collector_unprotected", "干式除尘器…？", "yes_no")
    ctx.rules.applicable_clauses = [
        ClauseInfo("GM2023:11(1)", "GM2023", "工贸", "11(1)", "粉尘区位置", "major", "…", "…",
                   (), (one, two)),
        ClauseInfo("GM2023:11(3)", "GM2023", "工贸", "11(3)", "除尘器无泄爆", "major", "…", "…",
                   (), (other, one)),  # a question asked already is not asked again
    ]  # fmt: skip
    groups = self_check.questions(ctx, FIRM)
    shown = [(c.ref, [q.key for q in qs]) for c, qs in groups[0].by_clause()]
    assert shown == [("GM2023:11(1)", [one.key, two.key]), ("GM2023:11(3)", [other.key])]


def test_rules_deadline_in_a_hazards_guidance_is_said_once() -> None:
    """Decisions stored before stop 35 end an open hazard's guidance with its deadline,
    which the page shows beside it (整改期限：…): booking keeps the guidance without it,
    and the deadline (rules writes none since, tests/unit/rules/test_hazard_guidance.py)."""
    said = rpb.Finding(
        standard_id="GEN", clause="ledger", clause_ref="GEN:ledger", hazard_id="H-1",
        text="未建立隐患排查治理台账", guidance="建立隐患排查治理台账。（整改期限 2026-06-19）",
    )  # fmt: skip
    shown = rules_client._finding(said, "2026-06-19")
    assert (shown.guidance, shown.due_on) == ("建立隐患排查治理台账。", "2026-06-19")
    assert rules_client._finding(said, "").due_on == "2026-06-19"  # the profile gave none
    # a clause's own guidance (no hazard), or another day than the hazard's: kept as sent
    clause = rpb.Finding(standard_id="GEN", clause="ledger", guidance=said.guidance)
    assert rules_client._finding(clause, "").guidance == said.guidance
    assert rules_client._finding(said, "2026-07-01").guidance == said.guidance


def test_a_finding_of_a_replaced_edition_says_by_which() -> None:
    ctx = context()
    fire = FindingInfo(
        "FIRE35181:6.5", "FIRE35181", "6.5", "major", "安全出口数量不足", "…", (),
        edition="GB 35181-2017", superseded=True, successor="GB 35181-2025《重大火灾隐患判定规则》",
    )  # fmt: skip
    said = guidance.finding_view(fire, "TOKEN", ctx)["superseded"]
    assert said == (
        "GB 35181-2017已被GB 35181-2025《重大火灾隐患判定规则》替代；"
        "新版条文尚未收录，本条暂按GB 35181-2017判定。"
    )
    assert guidance.finding_view(replace(fire, superseded=False), "TOKEN", ctx)["superseded"] == ""
    assert guidance.finding_view(DUST, "TOKEN", ctx)["superseded"] == ""


def test_a_day_is_written_one_way_on_every_page() -> None:
    """One format for people (docs/booking.md "Dates"): a date, rules' YYYY-MM-DD, an
    instant's day alike."""
    assert labels.day(date(2026, 6, 19)) == labels.day("2026-06-19") == "2026年6月19日"
    assert labels.day("") == "" and labels.day(None) == ""
    assert labels.day("不是日期") == "不是日期"
    at = datetime(2026, 6, 19, 1, 5, tzinfo=UTC)  # 09:05 in Beijing
    assert labels.time(at) == "2026年6月19日 09:05"
    assert guidance.blocker_sentence(
        BlockerInfo("open_hazard", "有隐患未经复查验收", "2026-05-20")
    ) == messages.BLOCKER_SENTENCES["open_hazard"].format(arose="2026年5月20日")
