"""The Chinese words of the rules service's texts (domain/labels.py, review 51 C1)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.rules.domain import events, labels
from services.rules.domain.events import Event, EventKind
from services.rules.domain.profile import Accident, AccidentLevel, Penalty, parse_profile
from services.rules.domain.register import DecisionRecord, HistoryEntry
from tests.support import profile


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (1_000_000.0, "1000000元"),
        (5000.0, "5000元"),
        (2000.5, "2000.50元"),
        (0.1 + 0.2, "0.30元"),
        (0.0, "0元"),
        (-0.0, "0元"),
        # review 53 N9: from the float's shortest decimal text, rounded half up to the fen
        (0.125, "0.13元"),
        (0.625, "0.63元"),
        (0.005, "0.01元"),
        (1e-7, "不足0.01元"),
        (5e-324, "不足0.01元"),
        (999_999_999_999.99, "999999999999.99元"),  # the most an input may say, to the fen
        (123456789012345.67, "123456789012345.67元"),  # stored before the bound: as stored
        (999999999999999.9, "999999999999999.90元"),
        (1e20, "100000000000000000000元"),
        (1.7e308, "17" + "0" * 307 + "元"),
    ],
)
def test_an_amount_is_written_in_full_to_the_fen(amount: float, text: str) -> None:
    assert labels.yuan(amount) == text


def test_every_accident_level_and_event_kind_has_its_chinese_name() -> None:
    assert set(labels.ACCIDENT_LEVEL) == set(AccidentLevel)
    assert set(labels.EVENT_KIND) == {k.value for k in EventKind}


def test_event_summaries_name_the_level_and_the_amount_in_chinese() -> None:
    firm = parse_profile(profile(1), {})
    day = date(2026, 6, 1)
    accident = Accident(day, AccidentLevel.ESPECIALLY_MAJOR, 31)
    kind = EventKind.ACCIDENT
    summary = events.apply(firm, Event("a", firm.enterprise_id, kind, day, accident=accident))
    assert summary.summary == "事故（特别重大事故，死亡31人）"
    fine = Penalty(day, 1_000_000.0, "")
    kind = EventKind.PENALTY
    summary = events.apply(firm, Event("p", firm.enterprise_id, kind, day, penalty=fine))
    assert summary.summary == "行政处罚1000000元"


def test_a_history_item_names_the_white_list_change_in_chinese() -> None:
    """The change is a code stored with the decision and worded when read; the cause
    before it is stored text and shown as it was written."""
    old_cause = "事件 PENALTY (p-0): 行政处罚1e+06元"  # as written before review 51
    record = DecisionRecord(
        id="d1",
        enterprise_id="E",
        decided_at=datetime(2026, 6, 1, tzinfo=UTC),
        as_of=date(2026, 6, 1),
        status="routine",
        risk_level="yellow",
        ruleset_version="rs-1",
        cause=old_cause,
        whitelist_change="revoked",
    )
    assert HistoryEntry.of_decision(record).reason == old_cause + "（白名单撤销）"


def test_a_partial_update_names_at_most_five_things_it_set_once_each() -> None:
    """Review 53 N6: the cause listed the mask's paths (`update (employees)`)."""
    assert labels.partial_update_cause([]) == "企业信息部分更新"
    names = ["从业人员数", "信用等级", "从业人员数", "行业", "高危领域", "场所类型", "事故记录"]
    assert labels.partial_update_cause(names) == (
        "企业信息部分更新（从业人员数、信用等级、行业、高危领域、场所类型等6项）"
    )
