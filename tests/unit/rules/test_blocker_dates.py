"""White-list blockers carry the day their cause arose and, when time alone ends them,
the first day they no longer block (docs/policy.md §3): booking writes its sentences from
these fields without deciding anything itself."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.rules.adapters import serialize
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.decision import decide
from services.rules.domain.profile import parse_profile
from services.rules.entrypoints import convert
from tests.support import profile as sample


def _decide(rulebook: Rulebook, as_of: date, **fields: Any) -> Any:
    data = sample(3, **fields)
    firm = parse_profile(data, rulebook.fact_types)
    return decide(firm, [], rulebook.catalogue, rulebook.policy, as_of)


def _blocker(decision: Any, code: str) -> Any:
    return next(b for b in decision.whitelist_blockers if b.code == code)


def test_a_penalty_blocks_from_its_date_until_24_months_have_passed(rulebook: Rulebook) -> None:
    penalties = [
        {"decided_on": "2025-01-10", "amount_yuan": 1000, "basis": "较早"},
        {"decided_on": "2026-03-02", "amount_yuan": 20000, "basis": "最近"},
    ]
    decision = _decide(rulebook, date(2026, 6, 30), penalties=penalties)
    penalty = _blocker(decision, "recent_penalty")
    assert (penalty.arose_on, penalty.ends_on) == (date(2026, 3, 2), date(2028, 3, 3))
    # the day before ends_on it still blocks; on ends_on it no longer does
    still = _decide(rulebook, date(2028, 3, 2), penalties=penalties[1:])
    assert any(b.code == "recent_penalty" for b in still.whitelist_blockers)
    gone = _decide(rulebook, date(2028, 3, 3), penalties=penalties[1:])
    assert not any(b.code == "recent_penalty" for b in gone.whitelist_blockers)


def test_accidents_late_closures_and_open_hazards_are_dated(rulebook: Rulebook) -> None:
    decision = _decide(
        rulebook,
        date(2026, 6, 30),
        accidents=[{"occurred_on": "2025-05-01", "level": "general", "deaths": 0}],
        hazards=[
            {"hazard_id": "H1", "clause_ref": "GEN:ledger", "severity": "general",
             "found_on": "2026-05-20", "due_on": "2026-06-19", "status": "open"},
        ],
    )  # fmt: skip
    accident = _blocker(decision, "recent_accident")
    assert (accident.arose_on, accident.ends_on) == (date(2025, 5, 1), date(2028, 5, 2))
    hazard = _blocker(decision, "open_hazard")
    assert (hazard.arose_on, hazard.ends_on) == (date(2026, 5, 20), None)  # ends when verified
    assert _blocker(decision, "risk_not_blue").arose_on is None


def test_dates_travel_through_proto_and_storage(rulebook: Rulebook) -> None:
    decision = _decide(
        rulebook,
        date(2026, 6, 30),
        penalties=[{"decided_on": "2026-03-02", "amount_yuan": 1, "basis": "x"}],
    )
    message = convert.decision_to_proto(decision)
    found = next(b for b in message.whitelist_blockers if b.code == "recent_penalty")
    assert (found.arose_on, found.ends_on) == ("2026-03-02", "2028-03-03")
    again = serialize.decision_from_json(serialize.decision_to_json(decision))
    assert again.whitelist_blockers == decision.whitelist_blockers
    old = serialize.decision_to_json(decision)
    for b in old["whitelist_blockers"]:  # a decision stored before the dates existed
        b.pop("arose_on", None)
        b.pop("ends_on", None)
    assert all(b.arose_on is None for b in serialize.decision_from_json(old).whitelist_blockers)
