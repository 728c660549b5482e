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
TOO_FAR = messages.DEADLINE_TOO_FAR.format(days=MAX_DEADLINE_DAYS, last=LAST.isoformat())


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
