"""An event's canonical form: what a repeated event_id is compared by (ReportEvent)."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.rules.domain.events import fingerprint, parse_event
from tests.support import profile, uscc

FACTS = {"x.flag": "bool", "x.count": "int"}


def _profile_event(**fields: Any) -> str:
    data = {
        "event_id": "p-1",
        "enterprise_id": uscc(1),
        "kind": "profile_updated",
        "occurred_on": "2026-06-30",
        "profile": profile(1, **fields),
    }
    return fingerprint(parse_event(data, FACTS, date(2026, 6, 30)))


def test_a_false_or_zero_observation_differs_from_none() -> None:
    assert _profile_event(facts={"x.flag": False}) != _profile_event(facts={})
    assert _profile_event(facts={"x.count": 0}) != _profile_event(facts={})
    assert _profile_event(facts={"x.flag": False}) == _profile_event(facts={"x.flag": False})


def test_sets_in_another_order_and_defaults_left_out_are_the_same() -> None:
    assert _profile_event(high_risk_domains=["gas", "confined_space"]) == _profile_event(
        high_risk_domains=["confined_space", "gas"]
    )
    assert _profile_event(merchant_score=None) == _profile_event(merchant_score=12)
    assert _profile_event(employees=30) != _profile_event(employees=31)
