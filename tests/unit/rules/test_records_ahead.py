"""A profile sent to the register may not record what has not happened yet: accidents,
penalties and hazards (found or closed) dated after today plus a day of clock skew are
named field by field, as ReportEvent refuses a future event; records already stored as
sent are left alone."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.rules.domain.events import recorded_ahead
from services.rules.domain.profile import EnterpriseProfile, parse_profile
from tests.support import profile

TODAY = date(2026, 6, 30)


def _parsed(**fields: Any) -> EnterpriseProfile:
    return parse_profile(profile(1, **fields), {}, prefix="profile.")


def _hazard(found: str, closed: str | None = None) -> dict[str, Any]:
    hazard = {
        "hazard_id": f"H-{found}",
        "clause_ref": "GM2023:11(1)",
        "severity": "general",
        "found_on": found,
        "due_on": "2026-12-31",
        "status": "verified" if closed else "open",
    }
    return hazard | ({"closed_on": closed} if closed else {})


CASES: list[tuple[dict[str, Any], str]] = [
    (
        {"accidents": [{"occurred_on": "2026-07-02", "level": "general", "deaths": 0}]},
        "profile.accidents[0].occurred_on",
    ),
    (
        {"penalties": [{"decided_on": "2199-01-01", "amount_yuan": 1000.0, "basis": "x"}]},
        "profile.penalties[0].decided_on",
    ),
    ({"hazards": [_hazard("2026-06-01"), _hazard("2026-07-05")]}, "profile.hazards[1].found_on"),
    ({"hazards": [_hazard("2026-06-01", closed="2026-07-02")]}, "profile.hazards[0].closed_on"),
]


@pytest.mark.parametrize(("fields", "path"), CASES)
def test_each_record_dated_after_tomorrow_is_named(fields: dict[str, Any], path: str) -> None:
    [violation] = recorded_ahead(_parsed(**fields), None, TODAY)
    assert violation.field == path
    assert "after today (2026-06-30" in violation.description


@pytest.mark.parametrize(("fields", "path"), CASES)
def test_a_record_already_stored_as_sent_is_left_alone(fields: dict[str, Any], path: str) -> None:
    sent = _parsed(**fields)
    assert recorded_ahead(sent, sent, TODAY) == []
    assert [v.field for v in recorded_ahead(sent, _parsed(), TODAY)] == [path]


def test_today_and_a_day_of_clock_skew_are_accepted() -> None:
    sent = _parsed(
        accidents=[{"occurred_on": "2026-07-01", "level": "general", "deaths": 0}],
        penalties=[{"decided_on": "2026-06-30", "amount_yuan": 1.0, "basis": "x"}],
        hazards=[_hazard("2026-07-01", closed="2026-07-01")],
    )
    assert recorded_ahead(sent, None, TODAY) == []
