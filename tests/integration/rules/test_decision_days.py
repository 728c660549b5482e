"""The day a decision speaks for, and what it sees of the firm's records on that day
(review 51), on SQLite and PostgreSQL: hazards as they stood on a given as_of (D2)."""

from __future__ import annotations

from typing import Any

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from tests.integration.conftest import upsert
from tests.support import profile


def blockers(status: pb.EnterpriseStatus) -> set[str]:
    return {b.code for b in status.decision.whitelist_blockers}


def major_hazard(hazard_id: str, found_on: str, **fields: Any) -> dict[str, Any]:
    return {
        "hazard_id": hazard_id,
        "clause_ref": "GM2023:14",
        "severity": "major",
        "found_on": found_on,
        "due_on": "2026-06-10",
        "status": "open",
    } | fields


# ---------------------------------------------------------------- D2: hazards on as_of


def test_a_past_as_of_sees_each_hazard_as_it_stood_that_day(
    register_stub: RulesServiceStub,
) -> None:
    """A MAJOR hazard verified late on 06-25 was open and overdue on 06-15: the firm was
    RED then (it came out WHITELIST); one found on 06-20 did not exist yet on 06-15 (it
    made the firm RED). As of today (06-30) the first is closed, late."""
    late = major_hazard(
        "H-1", "2026-06-01", status="verified", closed_on="2026-06-25", closed_late=True
    )
    then = upsert(register_stub, profile(1, hazards=[late]), as_of="2026-06-15")
    assert (then.decision.status, then.decision.risk_level) == (
        pb.STATUS_PRIORITY,
        pb.RISK_LEVEL_RED,
    )
    assert [f.clause_ref for f in then.decision.findings] == ["GM2023:14"]
    assert blockers(then) == {"risk_not_blue", "open_hazard"}
    assert not then.HasField("whitelist_entry")
    now = upsert(register_stub, profile(1, hazards=[late]))  # as of today, 2026-06-30
    assert (now.decision.status, blockers(now)) == (pb.STATUS_ROUTINE, {"late_rectification"})
    found_later = major_hazard("H-2", "2026-06-20", due_on="2026-07-20")
    before = upsert(register_stub, profile(2, hazards=[found_later]), as_of="2026-06-15")
    assert (before.decision.status, list(before.decision.findings)) == (pb.STATUS_WHITELIST, [])
    assert before.whitelist_entry.granted_on == "2026-06-15"
