"""Review 67 F1: a visit recorded days after it took place (RecordVisit's `visited_on` in
the past) made tickets whose deadline had already passed: born overdue, reported to rules
by the next sweep, closed late however soon the firm fixed them. A deadline must lie after
the day the visit is recorded too, the default one (counted from the visit) included."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.booking.domain import messages
from services.booking.domain.findings import FindingInput, check_findings
from services.common.errors import ValidationError

VISIT = date(2026, 6, 1)
RECORDED = VISIT + timedelta(days=20)  # past a MAJOR finding's default 15 days


def refused(found: FindingInput, today: date) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        check_findings([found], VISIT, lambda ref: "general", today=today)
    return {v.field: v.description for v in info.value.violations}


def test_a_default_deadline_already_past_when_recorded_is_refused() -> None:
    said = refused(FindingInput("GEN:ledger", "major", "未建立台账"), RECORDED)
    default = VISIT + timedelta(days=15)
    assert said == {
        "findings[0].due_on": messages.FINDING_DEFAULT_DUE_PASSED.format(
            day=messages.a_day(default)
        )
    }


@pytest.mark.parametrize("days", [3, 20])  # after the visit, not after the day it is recorded
def test_a_written_deadline_already_past_when_recorded_is_refused(days: int) -> None:
    due = VISIT + timedelta(days=days)
    said = refused(FindingInput("GEN:ledger", "general", "未建立台账", due.isoformat()), RECORDED)
    assert said == {
        "findings[0].due_on": messages.FINDING_DUE_PASSED.format(day=messages.a_day(due))
    }


def test_a_deadline_after_the_day_recorded_is_taken() -> None:
    due = RECORDED + timedelta(days=1)
    found = FindingInput("GEN:ledger", "major", "未建立台账", due.isoformat())
    [(_, taken)] = check_findings([found], VISIT, lambda ref: "general", today=RECORDED)
    assert taken == due
    # a default still ahead on the day recorded stands
    general = FindingInput("GEN:ledger", "general", "未建立台账")
    [(_, default)] = check_findings([general], VISIT, lambda ref: "general", today=RECORDED)
    assert default == VISIT + timedelta(days=30)
