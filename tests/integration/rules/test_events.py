"""ReportEvent (docs/policy.md §5) on SQLite and PostgreSQL: what each event does to the
stored profile, the decision, the white-list entry and the history; idempotency; errors.

Expected values come from docs/policy.md: "within N months" counts back from the decision's
as_of (the server's today for events), both ends inclusive.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.conftest import Clock, decisions, upsert, violations
from tests.support import profile, uscc

TODAY = "2026-06-30"  # the conftest clock's default


# ---------------------------------------------------------------- helpers


def event(
    n: int, event_id: str, kind: Any, occurred_on: str = TODAY, **detail: Any
) -> pb.EnterpriseEvent:
    return pb.EnterpriseEvent(
        event_id=event_id, enterprise_id=uscc(n), kind=kind, occurred_on=occurred_on, **detail
    )


def report(stub: RulesServiceStub, ev: pb.EnterpriseEvent) -> pb.EnterpriseStatus:
    return stub.ReportEvent(pb.ReportEventRequest(event=ev), timeout=30)


def status_of(stub: RulesServiceStub, n: int) -> pb.EnterpriseStatus:
    return stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(n), history_limit=200), timeout=10
    )


def blockers(status: pb.EnterpriseStatus) -> set[str]:
    return {b.code for b in status.decision.whitelist_blockers}


def listed(stub: RulesServiceStub) -> set[str]:
    page = stub.ListWhitelist(pb.ListWhitelistRequest(page_size=500), timeout=10)
    return {e.enterprise_id for e in page.entries}


def accident(
    n: int,
    event_id: str,
    occurred_on: str = TODAY,
    deaths: int = 0,
    level: Any = pb.ACCIDENT_LEVEL_GENERAL,
) -> pb.EnterpriseEvent:
    return event(
        n,
        event_id,
        pb.EVENT_KIND_ACCIDENT,
        occurred_on,
        accident=pb.AccidentDetail(level=level, deaths=deaths),
    )


def penalty(
    n: int,
    event_id: str,
    occurred_on: str = TODAY,
    amount: float = 5000.0,
    basis: str = "《安全生产法》第九十七条",
) -> pb.EnterpriseEvent:
    return event(
        n,
        event_id,
        pb.EVENT_KIND_PENALTY,
        occurred_on,
        penalty=pb.PenaltyDetail(amount_yuan=amount, basis=basis),
    )


def complaint(
    n: int, event_id: str, text: str = "车间粉尘大，无人清扫", occurred_on: str = TODAY
) -> pb.EnterpriseEvent:
    return event(
        n, event_id, pb.EVENT_KIND_COMPLAINT, occurred_on, complaint=pb.ComplaintDetail(text=text)
    )


def hazard_found(
    n: int,
    event_id: str,
    hazard_id: str,
    *,
    major: bool = False,
    clause_ref: str = "",
    occurred_on: str = TODAY,
    due_on: str = "2026-07-15",
    severity: Any = pb.SEVERITY_UNSPECIFIED,
) -> pb.EnterpriseEvent:
    kind = pb.EVENT_KIND_MAJOR_HAZARD_FOUND if major else pb.EVENT_KIND_GENERAL_HAZARD_FOUND
    ref = clause_ref or ("GM2023:11(3)" if major else "GEN:ledger")
    return event(
        n,
        event_id,
        kind,
        occurred_on,
        hazard=pb.HazardDetail(
            hazard_id=hazard_id, clause_ref=ref, severity=severity, due_on=due_on
        ),
    )


def verified(
    n: int, event_id: str, hazard_id: str, occurred_on: str, late: bool = False
) -> pb.EnterpriseEvent:
    return event(
        n,
        event_id,
        pb.EVENT_KIND_HAZARD_VERIFIED,
        occurred_on,
        verification=pb.VerificationDetail(hazard_id=hazard_id, late=late),
    )


def overdue(n: int, event_id: str, hazard_id: str, occurred_on: str) -> pb.EnterpriseEvent:
    return event(
        n,
        event_id,
        pb.EVENT_KIND_RECTIFICATION_OVERDUE,
        occurred_on,
        overdue=pb.OverdueDetail(hazard_id=hazard_id),
    )


def profile_updated(
    n: int, event_id: str, data: dict[str, Any], occurred_on: str = TODAY
) -> pb.EnterpriseEvent:
    return event(
        n, event_id, pb.EVENT_KIND_PROFILE_UPDATED, occurred_on, profile=profile_from_json(data)
    )


def whitelisted_firm(stub: RulesServiceStub, n: int = 1, **fields: Any) -> pb.EnterpriseStatus:
    status = upsert(stub, profile(n, **fields))
    assert status.decision.status == pb.STATUS_WHITELIST
    assert status.whitelist_entry.granted_on == TODAY
    assert status.whitelist_entry.valid_until == "2027-06-30"
    assert len(decisions(status)) == 1
    return status


def assert_revoked(stub: RulesServiceStub, n: int, status: pb.EnterpriseStatus) -> None:
    """The entry is gone from the response, from GetEnterpriseStatus and from the list."""
    assert not status.HasField("whitelist_entry")
    assert not status_of(stub, n).HasField("whitelist_entry")
    assert uscc(n) not in listed(stub)


# ---------------------------------------------------------------- ACCIDENT


def test_accident_is_appended_turns_orange_and_revokes_the_white_list(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    status = report(register_stub, accident(1, "acc-1", occurred_on="2026-06-20"))
    assert not status.duplicate
    assert list(status.profile.accidents) == [
        pb.Accident(occurred_on="2026-06-20", level=pb.ACCIDENT_LEVEL_GENERAL, deaths=0)
    ]
    assert status.decision.risk_level == pb.RISK_LEVEL_ORANGE  # any accident within 36 months
    assert status.decision.status == pb.STATUS_ROUTINE
    assert status.decision.as_of == TODAY
    assert blockers(status) == {"risk_not_blue", "recent_accident", "revoked_by_event"}
    assert status.decision.inspection_cap_per_year == 2  # ordinary grade 2
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2
    newest = decisions(status)[0]
    assert (newest.status, newest.risk_level, newest.as_of) == (
        pb.STATUS_ROUTINE,
        pb.RISK_LEVEL_ORANGE,
        TODAY,
    )
    stored = status_of(register_stub, 1)
    assert stored.decision == status.decision
    assert list(stored.profile.accidents) == list(status.profile.accidents)


def test_fatal_accident_turns_red_and_priority(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    clock.today = date(2026, 8, 15)  # events are evaluated as of the server's today
    status = report(
        register_stub,
        accident(1, "acc-1", occurred_on="2026-08-10", deaths=1, level=pb.ACCIDENT_LEVEL_LARGER),
    )
    assert list(status.profile.accidents) == [
        pb.Accident(occurred_on="2026-08-10", level=pb.ACCIDENT_LEVEL_LARGER, deaths=1)
    ]
    assert status.decision.as_of == "2026-08-15"
    assert status.decision.risk_level == pb.RISK_LEVEL_RED
    assert status.decision.status == pb.STATUS_PRIORITY
    assert status.decision.inspection_due_on == "2026-09-14"  # 30 days
    assert blockers(status) == {"risk_not_blue", "recent_accident", "revoked_by_event"}
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2
    assert decisions(status)[0].as_of == "2026-08-15"


@pytest.mark.parametrize(
    ("occurred_on", "deaths", "colour", "codes"),
    [
        # 12-month fatal window ends 2025-06-30 (inclusive)
        ("2025-06-30", 1, pb.RISK_LEVEL_RED, {"risk_not_blue", "recent_accident"}),
        ("2025-06-29", 1, pb.RISK_LEVEL_ORANGE, {"risk_not_blue", "recent_accident"}),
        # 36-month accident window ends 2023-06-30 (inclusive)
        ("2023-06-30", 0, pb.RISK_LEVEL_ORANGE, {"risk_not_blue", "recent_accident"}),
        ("2023-06-29", 0, pb.RISK_LEVEL_BLUE, set()),
    ],
    ids=["fatal-12m-edge", "fatal-12m-plus-1", "36m-edge", "36m-plus-1"],
)
def test_accident_windows_at_their_edges_and_revocation_regardless(
    register_stub: RulesServiceStub, occurred_on: str, deaths: int, colour: int, codes: set[str]
) -> None:
    whitelisted_firm(register_stub)
    status = report(register_stub, accident(1, "acc-1", occurred_on=occurred_on, deaths=deaths))
    assert status.decision.risk_level == colour
    # a revoking event revokes even when the re-evaluation alone would pass
    assert blockers(status) == codes | {"revoked_by_event"}
    assert status.decision.status == (
        pb.STATUS_PRIORITY if colour == pb.RISK_LEVEL_RED else pb.STATUS_ROUTINE
    )
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2


def test_revoked_entry_is_restored_only_by_a_later_decision_that_passes(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    old = report(register_stub, accident(1, "acc-old", occurred_on="2023-06-29"))
    assert old.decision.status == pb.STATUS_ROUTINE
    assert [b.code for b in old.decision.whitelist_blockers] == ["revoked_by_event"]
    assert old.decision.risk_level == pb.RISK_LEVEL_BLUE
    # a complaint records no decision: still not white-listed
    after_complaint = report(register_stub, complaint(1, "c-1"))
    assert after_complaint.decision.decision_id == old.decision.decision_id
    assert not after_complaint.HasField("whitelist_entry")
    assert len(decisions(after_complaint)) == 2
    # the next decision passes every criterion: a new entry, the accident kept
    again = upsert(register_stub, profile(1))
    assert again.decision.status == pb.STATUS_WHITELIST
    assert list(again.decision.whitelist_blockers) == []
    assert again.whitelist_entry.granted_on == TODAY
    assert again.whitelist_entry.valid_until == "2027-06-30"
    assert [a.occurred_on for a in again.profile.accidents] == ["2023-06-29"]
    assert len(decisions(again)) == 3
    assert uscc(1) in listed(register_stub)


# ---------------------------------------------------------------- COMPLAINT


def test_complaint_is_recorded_but_changes_nothing(register_stub: RulesServiceStub) -> None:
    first = whitelisted_firm(register_stub)
    status = report(register_stub, complaint(1, "c-1"))
    assert not status.duplicate
    assert status.decision == first.decision  # no new decision, same colour and status
    assert status.decision.status == pb.STATUS_WHITELIST
    assert status.profile == first.profile
    assert status.whitelist_entry == first.whitelist_entry
    assert len(decisions(status)) == 1
    second = report(register_stub, complaint(1, "c-2", text="夜间噪声扰民"))
    assert not second.duplicate
    assert len(decisions(second)) == 1
    assert status_of(register_stub, 1).decision.decision_id == first.decision.decision_id
    assert uscc(1) in listed(register_stub)


def test_a_complaint_about_a_firm_stored_without_a_decision_decides_it(
    register_stub: RulesServiceStub, db_engine: Any
) -> None:
    """A bulk import (as bench/register.py loads a register) stores firms with no decision
    yet; a complaint about one used to trip an assert (INTERNAL). It is decided now."""
    from sqlalchemy import update as sql_update

    from services.rules.adapters.orm import firms

    upsert(register_stub, profile(1))
    with db_engine.begin() as conn:
        conn.execute(
            sql_update(firms).where(firms.c.enterprise_id == uscc(1)).values(decision_id=None)
        )
    status = report(register_stub, complaint(1, "c-1"))
    assert status.decision.decision_id
    assert status.decision.status == pb.STATUS_WHITELIST
    read = status_of(register_stub, 1)
    assert read.decision.decision_id == status.decision.decision_id
    # the answer's history is what a read shows: the complaint listed on its own, the
    # decision naming no event (complaints do not cause decisions)
    assert list(status.history) == list(read.history)
    assert [h.event_id for h in read.history if h.event_id] == ["c-1"]
    again = report(register_stub, complaint(1, "c-1"))  # a replay answers the same
    assert again.duplicate and again.decision == status.decision


def test_complaint_on_a_routine_firm_changes_nothing(register_stub: RulesServiceStub) -> None:
    first = upsert(register_stub, profile(1, credit_rating="C"))
    assert first.decision.risk_level == pb.RISK_LEVEL_YELLOW
    status = report(register_stub, complaint(1, "c-1"))
    assert status.decision == first.decision
    assert status.profile == first.profile
    assert len(decisions(status)) == 1


# ---------------------------------------------------------------- hazards found


@pytest.mark.parametrize(
    "severity",
    [pb.SEVERITY_UNSPECIFIED, pb.SEVERITY_MAJOR],
    ids=["severity-omitted", "severity-major"],
)
def test_major_hazard_found_is_appended_open_turns_red_and_revokes(
    register_stub: RulesServiceStub, severity: int
) -> None:
    whitelisted_firm(register_stub)
    status = report(
        register_stub,
        hazard_found(
            1,
            "mh-1",
            "H1",
            major=True,
            occurred_on="2026-06-28",
            due_on="2026-07-28",
            severity=severity,
        ),
    )
    assert list(status.profile.hazards) == [
        pb.Hazard(
            hazard_id="H1",
            clause_ref="GM2023:11(3)",
            severity=pb.SEVERITY_MAJOR,
            found_on="2026-06-28",
            due_on="2026-07-28",
            status=pb.HAZARD_STATUS_OPEN,
        )
    ]
    assert status.decision.risk_level == pb.RISK_LEVEL_RED
    assert status.decision.status == pb.STATUS_PRIORITY
    assert status.decision.inspection_due_on == "2026-07-30"
    assert blockers(status) == {"risk_not_blue", "open_hazard", "revoked_by_event"}
    cited = [f for f in status.decision.findings if f.hazard_id == "H1"]
    assert len(cited) == 1
    assert cited[0].clause_ref == "GM2023:11(3)"
    assert cited[0].severity == pb.SEVERITY_MAJOR
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2
    assert decisions(status)[0].status == pb.STATUS_PRIORITY
    assert decisions(status)[0].risk_level == pb.RISK_LEVEL_RED


def test_general_hazard_found_is_appended_open_and_re_evaluated(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    status = report(register_stub, hazard_found(1, "gh-1", "H1", due_on="2026-07-15"))
    assert list(status.profile.hazards) == [
        pb.Hazard(
            hazard_id="H1",
            clause_ref="GEN:ledger",
            severity=pb.SEVERITY_GENERAL,
            found_on=TODAY,
            due_on="2026-07-15",
            status=pb.HAZARD_STATUS_OPEN,
        )
    ]
    assert status.decision.risk_level == pb.RISK_LEVEL_YELLOW  # 1 GENERAL finding
    assert status.decision.status == pb.STATUS_ROUTINE
    # not a revoking event: the entry goes because the re-evaluation fails, nothing more
    assert blockers(status) == {"risk_not_blue", "open_hazard"}
    assert [f.hazard_id for f in status.decision.findings] == ["H1"]
    assert status.decision.findings[0].severity == pb.SEVERITY_GENERAL
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2


def test_three_general_hazards_turn_orange(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    for i, ref in enumerate(["GEN:ledger", "GEN:training", "GEN:emergency_plan"], start=1):
        status = report(register_stub, hazard_found(1, f"gh-{i}", f"H{i}", clause_ref=ref))
    assert status.decision.risk_level == pb.RISK_LEVEL_ORANGE
    assert [h.hazard_id for h in status.profile.hazards] == ["H1", "H2", "H3"]
    assert len(decisions(status)) == 4


def test_hazard_found_with_an_id_already_on_record_already_exists(
    register_stub: RulesServiceStub,
) -> None:
    """The register's state is in the way, not the request: ALREADY_EXISTS (review 47b
    F10; it was INVALID_ARGUMENT)."""
    whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1"))
    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, hazard_found(1, "gh-2", "H1", clause_ref="GEN:training"))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "event.hazard.hazard_id" in (info.value.details() or "")
    assert len(decisions(status_of(register_stub, 1))) == 2


# ---------------------------------------------------------------- HAZARD_VERIFIED


def test_on_time_verification_closes_the_hazard_and_restores_the_white_list(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1", due_on="2026-07-15"))
    clock.today = date(2026, 7, 10)
    status = report(register_stub, verified(1, "v-1", "H1", "2026-07-10", late=False))
    assert list(status.profile.hazards) == [
        pb.Hazard(
            hazard_id="H1",
            clause_ref="GEN:ledger",
            severity=pb.SEVERITY_GENERAL,
            found_on=TODAY,
            due_on="2026-07-15",
            status=pb.HAZARD_STATUS_VERIFIED,
            closed_on="2026-07-10",
            closed_late=False,
        )
    ]
    assert status.decision.risk_level == pb.RISK_LEVEL_BLUE
    assert status.decision.status == pb.STATUS_WHITELIST
    assert list(status.decision.whitelist_blockers) == []
    assert list(status.decision.findings) == []
    assert status.decision.as_of == "2026-07-10"
    assert status.whitelist_entry.granted_on == "2026-07-10"
    assert status.whitelist_entry.valid_until == "2027-07-10"
    assert not status.whitelist_entry.revoked_on
    assert len(decisions(status)) == 3
    assert decisions(status)[0].status == pb.STATUS_WHITELIST
    assert uscc(1) in listed(register_stub)


def test_verification_after_a_major_hazard_restores_the_white_list(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    revoked = report(register_stub, hazard_found(1, "mh-1", "H1", major=True))
    assert revoked.decision.status == pb.STATUS_PRIORITY
    clock.today = date(2026, 7, 5)
    status = report(register_stub, verified(1, "v-1", "H1", "2026-07-05"))
    assert status.decision.status == pb.STATUS_WHITELIST
    assert "revoked_by_event" not in blockers(status)
    assert status.whitelist_entry.granted_on == "2026-07-05"


def test_late_verification_blocks_the_white_list(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1", due_on="2026-07-15"))
    clock.today = date(2026, 7, 20)
    status = report(register_stub, verified(1, "v-1", "H1", "2026-07-20", late=True))
    hazard = status.profile.hazards[0]
    assert (hazard.status, hazard.closed_on, hazard.closed_late) == (
        pb.HAZARD_STATUS_VERIFIED,
        "2026-07-20",
        True,
    )
    assert status.decision.risk_level == pb.RISK_LEVEL_BLUE
    assert status.decision.status == pb.STATUS_ROUTINE
    assert [b.code for b in status.decision.whitelist_blockers] == ["late_rectification"]
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 3


@pytest.mark.parametrize("via", ["upsert", "profile_updated"])
def test_late_closure_blocks_for_exactly_12_months(
    register_stub: RulesServiceStub, clock: Clock, via: str
) -> None:
    whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1", due_on="2026-07-15"))
    clock.today = date(2026, 7, 20)
    report(register_stub, verified(1, "v-1", "H1", "2026-07-20", late=True))

    def decide(tag: str) -> pb.EnterpriseStatus:
        if via == "upsert":
            return upsert(register_stub, profile(1))
        return report(
            register_stub,
            profile_updated(1, f"pu-{tag}", profile(1), occurred_on=clock.today.isoformat()),
        )

    clock.today = date(2027, 7, 20)  # closed_on + 12 months: still inside the window
    still = decide("edge")
    assert still.decision.as_of == "2027-07-20"
    assert still.decision.status == pb.STATUS_ROUTINE
    assert [b.code for b in still.decision.whitelist_blockers] == ["late_rectification"]
    assert not still.HasField("whitelist_entry")
    clock.today = date(2027, 7, 21)  # one day later: restored
    restored = decide("after")
    assert restored.decision.status == pb.STATUS_WHITELIST
    assert list(restored.decision.whitelist_blockers) == []
    assert restored.whitelist_entry.granted_on == "2027-07-21"
    assert restored.whitelist_entry.valid_until == "2028-07-21"
    assert restored.profile.hazards[0].closed_late  # the record is kept
    assert len(decisions(restored)) == 5


def test_verifying_an_already_verified_hazard_is_a_failed_precondition(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1"))
    report(register_stub, verified(1, "v-1", "H1", TODAY))
    for ev in (verified(1, "v-2", "H1", TODAY, late=True), overdue(1, "o-1", "H1", TODAY)):
        with pytest.raises(grpc.RpcError) as info:
            report(register_stub, ev)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    after = status_of(register_stub, 1)
    assert len(decisions(after)) == 3
    assert not after.profile.hazards[0].closed_late
    assert after.decision.status == pb.STATUS_WHITELIST


def test_verification_before_the_hazard_was_found_fails_its_precondition(
    register_stub: RulesServiceStub,
) -> None:
    """Only the recorded hazard's date makes it wrong: FAILED_PRECONDITION (review 47b
    F10; it was INVALID_ARGUMENT). Nothing is decided."""
    whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1", occurred_on="2026-06-20"))
    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, verified(1, "v-1", "H1", "2026-06-19"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "event.occurred_on" in (info.value.details() or "")
    assert len(decisions(status_of(register_stub, 1))) == 2


# ---------------------------------------------------------------- RECTIFICATION_OVERDUE


def test_rectification_overdue_keeps_the_hazard_open(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    found = report(register_stub, hazard_found(1, "gh-1", "H1", due_on="2026-07-15"))
    clock.today = date(2026, 7, 16)
    status = report(register_stub, overdue(1, "o-1", "H1", "2026-07-16"))
    assert status.profile == found.profile  # nothing appended or closed
    assert status.profile.hazards[0].status == pb.HAZARD_STATUS_OPEN
    assert status.decision.risk_level == pb.RISK_LEVEL_YELLOW
    assert status.decision.status == pb.STATUS_ROUTINE
    assert status.decision.as_of == "2026-07-16"
    # the hazard's finding ended the entry: the overdue notice has nothing left to revoke
    # (review 51 C2: its decision said "白名单因事件撤销" all the same)
    assert blockers(status) == {"risk_not_blue", "open_hazard"}
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 3
    # a late closure follows
    clock.today = date(2026, 7, 25)
    closed = report(register_stub, verified(1, "v-1", "H1", "2026-07-25", late=True))
    assert [b.code for b in closed.decision.whitelist_blockers] == ["late_rectification"]
    assert len(decisions(closed)) == 4


@pytest.mark.parametrize("kind", ["verified", "overdue"])
def test_overdue_or_verified_for_an_unknown_hazard_is_not_found_and_writes_nothing(
    register_stub: RulesServiceStub, kind: str
) -> None:
    first = whitelisted_firm(register_stub)
    report(register_stub, hazard_found(1, "gh-1", "H1"))

    def make(hazard_id: str) -> pb.EnterpriseEvent:
        if kind == "verified":
            return verified(1, "e-1", hazard_id, TODAY)
        return overdue(1, "e-1", hazard_id, TODAY)

    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, make("NO-SUCH-HAZARD"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(decisions(status_of(register_stub, 1))) == 2
    # nothing was recorded under the event id: it can still be used
    status = report(register_stub, make("H1"))
    assert not status.duplicate
    assert len(decisions(status)) == 3
    assert status.profile.enterprise_id == first.profile.enterprise_id


# ---------------------------------------------------------------- PENALTY


def test_penalty_is_appended_turns_yellow_and_revokes(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    status = report(register_stub, penalty(1, "p-1", occurred_on="2026-06-15", amount=5000.0))
    assert list(status.profile.penalties) == [
        pb.Penalty(decided_on="2026-06-15", amount_yuan=5000.0, basis="《安全生产法》第九十七条")
    ]
    assert status.decision.risk_level == pb.RISK_LEVEL_YELLOW
    assert status.decision.status == pb.STATUS_ROUTINE
    assert blockers(status) == {"risk_not_blue", "recent_penalty", "revoked_by_event"}
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2


def test_the_reasons_an_event_writes_are_chinese_with_the_amount_in_full(
    register_stub: RulesServiceStub,
) -> None:
    """Review 51 C1: the revocation's reason (on the firm's phone page), the white-list
    entry's and the history's texts name the accident level, the amount and the kinds in
    Chinese: no enum value, no 1e+06, no kind name."""
    whitelisted_firm(register_stub)
    status = report(register_stub, penalty(1, "p-1", amount=1_000_000.0))
    revoked = next(b for b in status.decision.whitelist_blockers if b.code == "revoked_by_event")
    assert revoked.reason == "白名单因事件撤销：行政处罚1000000元"
    closed = next(h for h in status.history if h.kind == "whitelist_revoked")
    assert closed.reason == "白名单因事件撤销：行政处罚1000000元"
    assert decisions(status)[0].reason == (
        "事件（行政处罚，编号 p-1）：行政处罚1000000元（白名单撤销）"
    )
    status = report(register_stub, penalty(1, "p-2", amount=2000.5))
    assert decisions(status)[0].reason == "事件（行政处罚，编号 p-2）：行政处罚2000.50元"
    whitelisted_firm(register_stub, 2)
    fatal = accident(2, "a-1", deaths=31, level=pb.ACCIDENT_LEVEL_ESPECIALLY_MAJOR)
    status = report(register_stub, fatal)
    revoked = next(b for b in status.decision.whitelist_blockers if b.code == "revoked_by_event")
    assert revoked.reason == "白名单因事件撤销：事故（特别重大事故，死亡31人）"
    assert decisions(status)[0].reason == (
        "事件（事故，编号 a-1）：事故（特别重大事故，死亡31人）（白名单撤销）"
    )
    granted = decisions(status)[-1]
    assert granted.reason.endswith("（列入白名单）")


@pytest.mark.parametrize(
    ("decided_on", "colour", "codes"),
    [
        ("2025-06-30", pb.RISK_LEVEL_YELLOW, {"risk_not_blue", "recent_penalty"}),  # 12 m edge
        ("2025-06-29", pb.RISK_LEVEL_BLUE, {"recent_penalty"}),
        ("2024-06-30", pb.RISK_LEVEL_BLUE, {"recent_penalty"}),  # 24 m edge
        ("2024-06-29", pb.RISK_LEVEL_BLUE, set()),
    ],
    ids=["12m-edge", "12m-plus-1", "24m-edge", "24m-plus-1"],
)
def test_penalty_windows_at_their_edges(
    register_stub: RulesServiceStub, decided_on: str, colour: int, codes: set[str]
) -> None:
    whitelisted_firm(register_stub)
    status = report(register_stub, penalty(1, "p-1", occurred_on=decided_on))
    assert status.decision.risk_level == colour
    assert blockers(status) == codes | {"revoked_by_event"}
    assert status.decision.status == pb.STATUS_ROUTINE
    assert_revoked(register_stub, 1, status)


# ---------------------------------------------------------------- PROFILE_UPDATED


def test_profile_updated_replaces_fields_merges_lists_and_re_evaluates(
    register_stub: RulesServiceStub,
) -> None:
    old_penalty = {"decided_on": "2020-01-01", "amount_yuan": 100.0, "basis": "旧处罚"}
    whitelisted_firm(register_stub, penalties=[old_penalty], facts={"gen.training_missing": False})
    status = report(
        register_stub,
        profile_updated(1, "pu-1", profile(1, name="新名称", credit_rating="C", employees=40)),
    )
    assert not status.duplicate
    assert status.profile.name == "新名称"
    assert status.profile.credit_rating == pb.CREDIT_RATING_C
    assert status.profile.employees == 40
    assert dict(status.profile.facts) == {}  # facts replaced
    assert [p.decided_on for p in status.profile.penalties] == ["2020-01-01"]  # merged, kept
    assert status.decision.risk_level == pb.RISK_LEVEL_YELLOW  # credit C
    assert status.decision.status == pb.STATUS_ROUTINE
    assert blockers(status) == {"risk_not_blue", "credit_rating"}  # not a revoking event
    assert_revoked(register_stub, 1, status)
    assert len(decisions(status)) == 2


def test_profile_updated_that_still_passes_extends_the_entry(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    clock.today = date(2026, 9, 1)
    status = report(
        register_stub,
        profile_updated(1, "pu-1", profile(1, name="新名称"), occurred_on="2026-09-01"),
    )
    assert status.decision.status == pb.STATUS_WHITELIST
    assert status.decision.as_of == "2026-09-01"
    assert status.whitelist_entry.granted_on == TODAY
    assert status.whitelist_entry.valid_until == "2027-09-01"  # 12 months from the decision
    assert len(decisions(status)) == 2


def test_profile_updated_renaming_and_moving_a_firm_updates_its_entry(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    status = report(
        register_stub, profile_updated(1, "pu-1", profile(1, name="新名称", region="北苑街道"))
    )
    assert status.decision.status == pb.STATUS_WHITELIST
    by_region = {
        region: [
            e.enterprise_id
            for e in register_stub.ListWhitelist(
                pb.ListWhitelistRequest(region=region), timeout=10
            ).entries
        ]
        for region in ("稠城街道", "北苑街道")
    }
    assert by_region == {"稠城街道": [], "北苑街道": [uscc(1)]}
    assert (status.whitelist_entry.name, status.whitelist_entry.region) == ("新名称", "北苑街道")


def test_profile_updated_for_another_firm_is_invalid(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, profile_updated(1, "pu-1", profile(2)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event.profile.enterprise_id" in violations(info.value)
    assert status_of(register_stub, 1).profile.name == "测试企业1"


# ---------------------------------------------------------------- idempotency


def _same_id_cases() -> list[Any]:
    return [
        pytest.param(lambda: accident(1, "dup"), id="accident"),
        pytest.param(lambda: penalty(1, "dup"), id="penalty"),
        pytest.param(lambda: hazard_found(1, "dup", "H1", major=True), id="major-hazard"),
        pytest.param(lambda: hazard_found(1, "dup", "H1"), id="general-hazard"),
        pytest.param(lambda: complaint(1, "dup"), id="complaint"),
        pytest.param(
            lambda: profile_updated(1, "dup", profile(1, name="新名称")), id="profile-updated"
        ),
    ]


@pytest.mark.parametrize("make", _same_id_cases())
def test_same_event_id_twice_has_effect_once(register_stub: RulesServiceStub, make: Any) -> None:
    whitelisted_firm(register_stub)
    first = report(register_stub, make())
    second = report(register_stub, make())
    assert not first.duplicate
    assert second.duplicate
    assert second.decision == first.decision
    assert second.profile == first.profile
    assert second.whitelist_entry == first.whitelist_entry
    assert list(second.history) == list(first.history)
    stored = status_of(register_stub, 1)
    assert len(stored.history) == len(first.history)
    assert stored.profile == first.profile


def _already_exists(stub: RulesServiceStub, ev: pb.EnterpriseEvent) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        report(stub, ev)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS, caught.value.details()
    return caught.value.details() or ""


def test_same_event_id_with_another_kind_is_already_exists_and_changes_nothing(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    first = report(register_stub, accident(1, "e-1"))
    message = _already_exists(register_stub, penalty(1, "e-1"))
    assert "'e-1'" in message and "different content" in message
    stored = status_of(register_stub, 1)
    assert list(stored.profile.penalties) == []
    assert stored.decision == first.decision
    assert len(decisions(stored)) == 2


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: penalty(1, "e-1", amount=6000.0), id="payload"),
        pytest.param(lambda: penalty(1, "e-1", occurred_on="2026-06-29"), id="occurred_on"),
        pytest.param(lambda: penalty(2, "e-1"), id="another-firm"),
    ],
)
def test_same_event_id_with_another_payload_is_already_exists(
    register_stub: RulesServiceStub, other: Any
) -> None:
    whitelisted_firm(register_stub)
    upsert(register_stub, profile(2))
    report(register_stub, penalty(1, "e-1"))
    _already_exists(register_stub, other())
    assert len(status_of(register_stub, 1).profile.penalties) == 1
    assert len(status_of(register_stub, 2).profile.penalties) == 0


def test_same_event_id_with_the_same_content_in_another_form_is_a_replay(
    register_stub: RulesServiceStub,
) -> None:
    """The comparison is on the event's canonical form: an omitted severity the kind
    implies, or domains in another order, are the same event."""
    whitelisted_firm(register_stub)
    first = report(register_stub, hazard_found(1, "h-1", "H1", major=True))
    again = report(
        register_stub, hazard_found(1, "h-1", "H1", major=True, severity=pb.SEVERITY_MAJOR)
    )
    assert again.duplicate and again.decision == first.decision
    data = profile(1, high_risk_domains=["gas", "confined_space"])
    report(register_stub, profile_updated(1, "p-1", data))
    data["high_risk_domains"] = ["confined_space", "gas"]
    assert report(register_stub, profile_updated(1, "p-1", data)).duplicate


def test_replay_after_later_changes_returns_the_first_result(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    first = report(register_stub, accident(1, "acc-old", occurred_on="2023-06-29"))
    assert not first.HasField("whitelist_entry")
    restored = upsert(register_stub, profile(1, name="新名称"))
    assert restored.decision.status == pb.STATUS_WHITELIST
    again = report(register_stub, accident(1, "acc-old", occurred_on="2023-06-29"))
    assert again.duplicate
    assert again.decision == first.decision  # holds
    # the first result had no white-list entry, the old name and two history items
    assert not again.HasField("whitelist_entry")
    assert again.profile == first.profile
    assert list(again.history) == list(first.history)


def _in_threads(count: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


def test_concurrent_same_event_has_effect_once(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    results = _in_threads(8, lambda i: report(register_stub, accident(1, "race-1")))
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7
    assert len({r.decision.decision_id for r in results}) == 1
    stored = status_of(register_stub, 1)
    assert len(decisions(stored)) == 2  # exactly one new history item
    assert len(stored.profile.accidents) == 1
    assert not stored.HasField("whitelist_entry")


def test_concurrent_distinct_events_are_all_applied(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    results = _in_threads(
        8, lambda i: report(register_stub, penalty(1, f"p-{i}", amount=100.0 + i, basis=f"处罚{i}"))
    )
    assert not any(r.duplicate for r in results)
    stored = status_of(register_stub, 1)
    assert sorted(p.amount_yuan for p in stored.profile.penalties) == [100.0 + i for i in range(8)]
    assert len(decisions(stored)) == 9


# ---------------------------------------------------------------- errors


def _invalid_cases() -> list[Any]:
    hazard = pb.HazardDetail(hazard_id="H1", clause_ref="GEN:ledger", due_on="2026-07-15")
    return [
        pytest.param(
            hazard_found(1, "x", "H1", occurred_on="2026-06-30", due_on="2026-06-29"),
            "event.hazard.due_on",
            id="due-before-found",
        ),
        pytest.param(
            hazard_found(1, "x", "H1", due_on="2026-02-30"),
            "event.hazard.due_on",
            id="due-not-a-date",
        ),
        pytest.param(
            hazard_found(1, "x", "H1", due_on=""), "event.hazard.due_on", id="due-missing"
        ),
        pytest.param(
            hazard_found(1, "x", "H1", clause_ref="ledger"),
            "event.hazard.clause_ref",
            id="bad-clause-ref",
        ),
        pytest.param(
            hazard_found(
                1,
                "x",
                "",
            ),
            "event.hazard.hazard_id",
            id="no-hazard-id",
        ),
        pytest.param(
            hazard_found(1, "x", "H1", major=True, severity=pb.SEVERITY_GENERAL),
            "event.hazard.severity",
            id="major-kind-general-severity",
        ),
        pytest.param(
            hazard_found(1, "x", "H1", severity=pb.SEVERITY_MAJOR),
            "event.hazard.severity",
            id="general-kind-major-severity",
        ),
        pytest.param(
            event(1, "x", pb.EVENT_KIND_ACCIDENT), "event.accident", id="accident-without-detail"
        ),
        pytest.param(
            event(1, "x", pb.EVENT_KIND_ACCIDENT, hazard=hazard),
            "event.hazard",
            id="detail-of-another-kind",
        ),
        pytest.param(
            accident(1, "x", level=pb.ACCIDENT_LEVEL_UNSPECIFIED),
            "event.accident.level",
            id="accident-level-missing",
        ),
        pytest.param(accident(1, "x", deaths=-1), "event.accident.deaths", id="negative-deaths"),
        pytest.param(event(1, "x", pb.EVENT_KIND_UNSPECIFIED), "event.kind", id="kind-unspecified"),
        pytest.param(accident(1, ""), "event.event_id", id="no-event-id"),
        pytest.param(
            accident(1, "x", occurred_on="2026/06/30"), "event.occurred_on", id="bad-occurred-on"
        ),
        pytest.param(accident(1, "x", occurred_on=""), "event.occurred_on", id="no-occurred-on"),
        pytest.param(
            penalty(1, "x", amount=-5.0), "event.penalty.amount_yuan", id="negative-penalty"
        ),
        pytest.param(penalty(1, "x", amount=1e300), "event.penalty.amount_yuan", id="huge-penalty"),
        pytest.param(
            profile_updated(
                1,
                "x",
                profile(1, penalties=[{"decided_on": "2026-06-01", "amount_yuan": 1e13}]),
            ),
            "event.profile.penalties[0].amount_yuan",
            id="profile-huge-penalty",
        ),
        pytest.param(complaint(1, "x", text=""), "event.complaint.text", id="empty-complaint"),
        pytest.param(
            event(1, "x", pb.EVENT_KIND_HAZARD_VERIFIED, verification=pb.VerificationDetail()),
            "event.verification.hazard_id",
            id="verification-no-hazard-id",
        ),
        pytest.param(
            event(1, "x", pb.EVENT_KIND_RECTIFICATION_OVERDUE, overdue=pb.OverdueDetail()),
            "event.overdue.hazard_id",
            id="overdue-no-hazard-id",
        ),
        pytest.param(
            profile_updated(1, "x", profile(1, employees=-1)),
            "event.profile.employees",
            id="profile-invalid",
        ),
    ]


@pytest.mark.parametrize(("ev", "field"), _invalid_cases())
def test_invalid_events_name_the_field_and_write_nothing(
    register_stub: RulesServiceStub, ev: pb.EnterpriseEvent, field: str
) -> None:
    first = whitelisted_firm(register_stub)
    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, ev)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(info.value), violations(info.value)
    after = status_of(register_stub, 1)
    assert after.decision == first.decision
    assert after.profile == first.profile
    assert len(decisions(after)) == 1
    assert after.whitelist_entry == first.whitelist_entry


def test_bad_enterprise_id_is_invalid(register_stub: RulesServiceStub) -> None:
    ev = accident(1, "x")
    ev.enterprise_id = uscc(1)[:17] + ("0" if uscc(1)[17] != "0" else "1")
    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, ev)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event.enterprise_id" in violations(info.value)


@pytest.mark.parametrize("make", _same_id_cases())
def test_event_for_an_unknown_firm_is_not_found(register_stub: RulesServiceStub, make: Any) -> None:
    upsert(register_stub, profile(2))
    ev = make()
    with pytest.raises(grpc.RpcError) as info:
        report(register_stub, ev)  # firm 1 was never upserted
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        status_of(register_stub, 1)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_resent_profile_cannot_close_a_hazard_or_erase_a_late_closure(
    register_stub, clock
) -> None:  # type: ignore[no-untyped-def]
    """Hazards on record change only through events (review finding)."""
    upsert(register_stub, profile(901))
    found = pb.EnterpriseEvent(
        event_id="h-901",
        enterprise_id=uscc(901),
        kind=pb.EVENT_KIND_MAJOR_HAZARD_FOUND,
        occurred_on="2026-06-01",
        hazard=pb.HazardDetail(hazard_id="H901", clause_ref="GM2023:14", due_on="2026-06-10"),
    )
    register_stub.ReportEvent(pb.ReportEventRequest(event=found), timeout=10)
    forged = profile(
        901,
        hazards=[
            {
                "hazard_id": "H901",
                "clause_ref": "GM2023:14",
                "severity": "major",
                "found_on": "2026-06-01",
                "due_on": "2026-06-10",
                "status": "verified",
                "closed_on": "2026-06-05",
            }
        ],
    )
    status = upsert(register_stub, forged)
    assert [(h.hazard_id, h.status) for h in status.profile.hazards] == [
        ("H901", pb.HAZARD_STATUS_OPEN)
    ]
    assert status.decision.status == pb.STATUS_PRIORITY
    late = pb.EnterpriseEvent(
        event_id="v-901",
        enterprise_id=uscc(901),
        kind=pb.EVENT_KIND_HAZARD_VERIFIED,
        occurred_on="2026-06-20",
        verification=pb.VerificationDetail(hazard_id="H901", late=True),
    )
    register_stub.ReportEvent(pb.ReportEventRequest(event=late), timeout=10)
    after = upsert(register_stub, forged)  # the same on-time claim, after the late closure
    assert "late_rectification" in [b.code for b in after.decision.whitelist_blockers]
    assert after.decision.status != pb.STATUS_WHITELIST


def test_an_event_dated_after_today_is_refused_and_the_white_list_keeps_the_firm(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    """A 2199 accident was OK and revoked the white-list entry today, while the decision
    ignored it as not yet happened (review finding 13). A day of clock skew is allowed."""
    upsert(register_stub, profile(1))
    assert uscc(1) in listed(register_stub)
    for day in ("2199-06-01", "2026-07-02"):  # clock.today is 2026-06-30
        with pytest.raises(grpc.RpcError) as info:
            report(register_stub, accident(1, f"acc-{day}", occurred_on=day))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "after today (2026-06-30" in violations(info.value)["event.occurred_on"]
    assert uscc(1) in listed(register_stub)
    assert status_of(register_stub, 1).decision.status == pb.STATUS_WHITELIST
    skewed = report(register_stub, event(1, "c-skew", pb.EVENT_KIND_COMPLAINT, "2026-07-01",
                                         complaint=pb.ComplaintDetail(text="噪音")))  # fmt: skip
    assert not skewed.duplicate


def test_a_profile_recording_what_has_not_happened_yet_is_refused_as_an_event_is(
    register_stub: RulesServiceStub, clock: Clock
) -> None:
    """UpsertEnterprise took an accident dated 2199 (only ReportEvent checked the date):
    a record after today plus a day of skew is INVALID_ARGUMENT naming it, with the full
    profile and with a mask; nothing is stored; the same record becomes fine once its day
    has come, and stays fine when the stored profile is sent again."""
    future = {"occurred_on": "2026-07-05", "level": "general", "deaths": 0}  # today 06-30
    upsert(register_stub, profile(1))
    with pytest.raises(grpc.RpcError) as info:
        upsert(register_stub, profile(1, accidents=[future]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after today" in violations(info.value)["profile.accidents[0].occurred_on"]
    masked = pb.UpsertEnterpriseRequest(
        profile=profile_from_json(profile(1, accidents=[future])),
        update_mask=field_mask_pb2.FieldMask(paths=["accidents"]),
    )
    with pytest.raises(grpc.RpcError) as info:
        register_stub.UpsertEnterprise(masked, timeout=30)
    assert list(violations(info.value)) == ["profile.accidents[0].occurred_on"]
    update = profile_updated(1, "p-ahead", profile(1, accidents=[future]))
    with pytest.raises(grpc.RpcError) as info:  # review 22 F1: nor through an event
        report(register_stub, update)
    assert list(violations(info.value)) == ["event.profile.accidents[0].occurred_on"]
    assert list(status_of(register_stub, 1).profile.accidents) == []
    clock.today = date(2026, 7, 5)
    stored = upsert(register_stub, profile(1, accidents=[future]))
    assert [a.occurred_on for a in stored.profile.accidents] == ["2026-07-05"]
    clock.today = date(2026, 7, 1)  # a clock set back: the stored record is not refused
    assert (
        upsert(register_stub, profile(1, accidents=[future], employees=31)).profile.employees == 31
    )


def test_decisions_as_of_late_2199_stay_within_the_documented_dates(
    register_stub: RulesServiceStub,
) -> None:
    """valid_until was 2200-12-31 for as_of 2199-12-31: it is held to 2199-12-31."""
    white = upsert(register_stub, profile(1), as_of="2199-12-31")
    assert (white.decision.status, white.decision.valid_until) == (
        pb.STATUS_WHITELIST,
        "2199-12-31",
    )
    routine = upsert(register_stub, profile(2, employees=500), as_of="2199-06-30")
    assert routine.decision.valid_until == "2199-12-31"
    answer = register_stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(profile(3)), as_of="2198-12-31"),
        timeout=10,
    )
    assert answer.valid_until == "2199-12-31"


def test_a_blockers_end_stays_within_the_documented_dates(register_stub: RulesServiceStub) -> None:
    """Review 21, 5: a penalty of 2199 blocked the white list until 2202-06-02."""
    late = profile(4, penalties=[{"decided_on": "2199-06-01", "amount_yuan": 1000}])
    answer = register_stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(late), as_of="2199-12-31"), timeout=10
    )
    ends = [b.ends_on for b in answer.whitelist_blockers if b.code == "recent_penalty"]
    assert ends == ["2199-12-31"]


def test_a_penalty_amount_is_bounded_on_input_and_a_stored_one_above_still_reads(
    register_stub: RulesServiceStub, db_engine: Any
) -> None:
    """Review 53 N9: 1e300 was accepted and printed as 301 digits of float noise. Input
    stops at 10^12 yuan (Evaluate, UpsertEnterprise, PENALTY events); a profile stored
    before the bound with more is still read, and written out from its decimal text."""
    from sqlalchemy import update

    from services.rules.adapters.orm import firms

    most = {"decided_on": "2026-06-01", "amount_yuan": 1e12, "basis": "x"}
    over = {**most, "amount_yuan": 1e13}
    field = "profile.penalties[0].amount_yuan"
    for call in (
        lambda p: register_stub.Evaluate(pb.EvaluateRequest(profile=p), timeout=10),
        lambda p: register_stub.UpsertEnterprise(pb.UpsertEnterpriseRequest(profile=p), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            call(profile_from_json(profile(1, penalties=[over])))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 1000000000000" in violations(raised.value)[field]
    assert (
        upsert(register_stub, profile(1, penalties=[most])).profile.penalties[0].amount_yuan == 1e12
    )
    status = report(register_stub, penalty(1, "p-most", amount=999_999_999_999.99))
    assert status.history[0].reason.endswith("行政处罚999999999999.99元")
    with db_engine.begin() as conn:  # as a register from before the bound kept it
        conn.execute(
            update(firms).values(profile=profile(1, penalties=[{**most, "amount_yuan": 1e300}]))
        )
    later = report(register_stub, penalty(1, "p-small", amount=0.125))
    assert [p.amount_yuan for p in later.profile.penalties] == [1e300, 0.125]
    assert later.history[0].reason.endswith("行政处罚0.13元")
