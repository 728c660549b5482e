"""HAZARD_DUE_CHANGED (docs/policy.md §5): an open hazard's new deadline, pure: parsing,
what it does to the stored hazard, and its canonical form."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from services.common.vocabulary import Severity
from services.rules.domain.errors import NotFound, PreconditionFailed, ValidationError
from services.rules.domain.events import EventKind, apply, fingerprint, parse_event
from services.rules.domain.profile import Hazard, HazardStatus, parse_profile
from tests.support import profile, uscc

TODAY = date(2026, 7, 20)
FOUND = date(2026, 6, 1)
HAZARD = Hazard("T1", "GM2023:3(1)", Severity.MAJOR, FOUND, date(2026, 6, 16), HazardStatus.OPEN)


def due_change(due_on: Any = "2026-08-30", hazard_id: Any = "T1", **fields: Any) -> dict[str, Any]:
    data = {
        "event_id": "booking-T1-due-1",
        "enterprise_id": uscc(1),
        "kind": "hazard_due_changed",
        "occurred_on": "2026-07-20",
        "due_change": {"hazard_id": hazard_id, "due_on": due_on},
    }
    return data | fields


def parsed(data: dict[str, Any]) -> Any:
    return parse_event(data, {}, TODAY)


def firm(*hazards: Hazard) -> Any:
    return replace(parse_profile(profile(1), {}), hazards=hazards or (HAZARD,))


def test_the_open_hazard_takes_the_new_deadline_and_the_firm_is_reevaluated() -> None:
    event = parsed(due_change())
    assert event.kind is EventKind.HAZARD_DUE_CHANGED
    assert (event.hazard_id, event.due_on) == ("T1", date(2026, 8, 30))
    outcome = apply(firm(), event)
    [hazard] = outcome.profile.hazards
    assert hazard == replace(HAZARD, due_on=date(2026, 8, 30))  # nothing else moves
    assert outcome.reevaluate and not outcome.revokes
    assert "2026-08-30" in outcome.summary


def test_the_canonical_form_tells_one_deadline_from_another() -> None:
    assert fingerprint(parsed(due_change())) == fingerprint(parsed(due_change()))
    assert fingerprint(parsed(due_change())) != fingerprint(parsed(due_change("2026-08-31")))
    assert fingerprint(parsed(due_change())) != fingerprint(parsed(due_change(hazard_id="T2")))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (due_change(due_on=""), "event.due_change.due_on"),
        (due_change(due_on="2026-02-30"), "event.due_change.due_on"),
        (due_change(due_on="2200-01-01"), "event.due_change.due_on"),  # past the date bounds
        (due_change(hazard_id=""), "event.due_change.hazard_id"),
        (due_change(due_change=None), "event.due_change"),
        (due_change(overdue={"hazard_id": "T1"}), "event.overdue"),  # another kind's detail
    ],
)
def test_a_bad_detail_is_refused_naming_its_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parsed(data)
    assert field in [v.field for v in info.value.violations]


def test_only_an_open_hazard_on_record_found_by_then_takes_a_deadline() -> None:
    with pytest.raises(NotFound):
        apply(firm(), parsed(due_change(hazard_id="T9")))
    closed = replace(HAZARD, status=HazardStatus.VERIFIED, closed_on=date(2026, 7, 1))
    with pytest.raises(PreconditionFailed):
        apply(firm(closed), parsed(due_change()))
    with pytest.raises(PreconditionFailed, match=r"due_change\.due_on"):
        apply(firm(), parsed(due_change(due_on="2026-05-31")))  # before it was found
    with pytest.raises(PreconditionFailed, match="occurred_on"):
        apply(firm(), parsed(due_change(occurred_on="2026-05-31")))
    assert apply(firm(), parsed(due_change(due_on="2026-06-01"))).profile.hazards[0].due_on == FOUND
