"""Deadlines have a horizon: a finding's due date and a failed recheck's new deadline lie
at most MAX_DEADLINE_DAYS ahead, refused in Chinese otherwise (review-12 #7)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.booking.domain import messages
from services.booking.domain.findings import FindingInput, check_findings
from services.booking.domain.tickets import MAX_DEADLINE_DAYS
from services.common.errors import ValidationError

VISIT = date(2026, 6, 1)
LAST = VISIT + timedelta(days=MAX_DEADLINE_DAYS)
TOO_FAR = messages.DEADLINE_TOO_FAR.format(days=MAX_DEADLINE_DAYS, last=messages.a_day(LAST))


def finding(due: str) -> FindingInput:
    return FindingInput("GEN:ledger", "general", "未建立台账", due)


def test_the_last_day_of_the_horizon_is_taken() -> None:
    [(_, due)] = check_findings([finding(LAST.isoformat())], VISIT, lambda ref: "general")
    assert due == LAST


@pytest.mark.parametrize(
    "due", [(LAST + timedelta(days=1)).isoformat(), "2199-12-31", "9999-12-31"]
)
def test_a_deadline_past_the_horizon_is_refused(due: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_findings([finding(due)], VISIT, lambda ref: "general")
    [violation] = refused.value.violations
    assert violation.field == "findings[0].due_on" and violation.description == TOO_FAR


def test_the_refusal_names_the_last_day_as_the_pages_write_it_and_allows_it() -> None:
    """Review 59 F11: "请填写2027-06-01之前的日期" was ISO among 2026年6月1日 dates, and
    "之前" left open whether that day itself was allowed (it is)."""
    with pytest.raises(ValidationError) as refused:
        check_findings([finding("2199-12-31")], VISIT, lambda ref: "general")
    said = refused.value.violations[0].description
    assert "不晚于2027年6月1日" in said and LAST.isoformat() not in said and "之前" not in said


@pytest.mark.parametrize("due", ["2026/12/20", "2026-12-20T10:00", "2026-02-30", "明天"])
def test_a_deadline_that_is_no_date_is_told_how_to_write_one(due: str) -> None:
    """Review 59 F11: these got "整改期限须为检查日之后的日期", as if the day were early."""
    with pytest.raises(ValidationError) as refused:
        check_findings([finding(due)], VISIT, lambda ref: "general")
    [violation] = refused.value.violations
    assert violation.field == "findings[0].due_on" and violation.description == messages.BAD_DATE


def test_a_day_long_before_the_visit_is_no_format_error() -> None:
    with pytest.raises(ValidationError) as refused:
        check_findings([finding("1900-01-01")], VISIT, lambda ref: "general")
    assert refused.value.violations[0].description != messages.BAD_DATE
