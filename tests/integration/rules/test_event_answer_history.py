"""ReportEvent builds its answer's history from rows read before its writes plus what it
wrote (register_handlers._Recent.after), and GetEnterpriseStatus reads it in two queries
(Register.recent_history and recent_event_items). Both are compared here, on SQLite and
PostgreSQL, with the plain way: the three queries of decisions, their causes and their
entries, read after the commit. A firm goes through every kind of history item: grants,
revocations, an extension, an expiry followed by a new grant, events that caused no
decision, and more items than the answer's twenty."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.instants import as_utc
from services.rules.service_layer import register_handlers
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Clock
from tests.integration.rules.test_events import (
    accident,
    complaint,
    hazard_found,
    profile_updated,
    report,
    verified,
    whitelisted_firm,
)
from tests.support import profile, uscc

LIMIT = register_handlers.DEFAULT_HISTORY


def plain_history(engine: Engine, n: int) -> list[tuple[object, ...]]:
    """The newest items read the plain way: decisions, then their causing events and
    their entries, each with a query of its own."""
    enterprise_id = uscc(n)
    with UnitOfWork(engine) as uow:
        register = uow.register
        found = list(register.history(enterprise_id, LIMIT))
        ids = [d.id for d in found]
        causing = register_handlers.CAUSING_EVENTS
        causes = {
            e.decision_id: e for e in register.events_of_decisions(enterprise_id, ids, causing)
        }
        entries = list(register.entries_of_decisions(enterprise_id, ids))
        quiet = list(register.recent_events(enterprise_id, register_handlers.QUIET_EVENTS, LIMIT))
    items = []
    for d in found:
        cause = causes.get(d.id)
        event = (cause.event_id, cause.kind) if cause else ("", "")
        items.append((as_utc(d.decided_at), 0, "decision", d.id, *event))
        for e in entries:
            if e.closed_decision_id == d.id:
                items.append((as_utc(d.decided_at), 1, "whitelist_revoked", d.id, *event))
            if e.granted_decision_id == d.id:
                items.append((as_utc(d.decided_at), 2, "whitelist_granted", d.id, *event))
    for q in quiet:
        items.append((as_utc(q.received_at), 0, "event", "", q.event_id, q.kind))
    items.sort(key=lambda i: (i[0], i[1]), reverse=True)
    return [i[2:] for i in items[:LIMIT]]


KINDS = {
    pb.EVENT_KIND_UNSPECIFIED: "",
    pb.EVENT_KIND_ACCIDENT: "accident",
    pb.EVENT_KIND_COMPLAINT: "complaint",
    pb.EVENT_KIND_GENERAL_HAZARD_FOUND: "general_hazard_found",
    pb.EVENT_KIND_MAJOR_HAZARD_FOUND: "major_hazard_found",
    pb.EVENT_KIND_HAZARD_VERIFIED: "hazard_verified",
    pb.EVENT_KIND_PROFILE_UPDATED: "profile_updated",
}


def summary(status: pb.EnterpriseStatus) -> list[tuple[object, ...]]:
    return [(h.kind, h.decision_id, h.event_id, KINDS[h.event_kind]) for h in status.history]


def test_the_answer_of_every_event_matches_the_history_read_afterwards(
    register_stub: RulesServiceStub, db_engine: Engine, clock: Clock
) -> None:
    whitelisted_firm(register_stub)
    later = date(2027, 8, 1)  # a year on: the entry has lapsed
    steps = [
        (None, complaint(1, "c-1")),  # no decision: an event item
        (None, hazard_found(1, "gh-1", "H1", due_on="2026-07-15")),  # revokes
        (None, verified(1, "v-1", "H1", "2026-06-30")),  # grants anew
        (None, profile_updated(1, "p-1", profile(1, employees=120))),  # extends
        (later, profile_updated(1, "p-2", profile(1, employees=130))),  # expires, grants
        (later, accident(1, "a-1", occurred_on="2027-08-01")),  # revokes
        *[(later, complaint(1, f"c-more-{k}")) for k in range(LIMIT + 2)],  # past 20 items
        (later, profile_updated(1, "p-3", profile(1, employees=140))),
    ]
    seen: set[str] = set()  # the kinds of item the answers compared held
    for day, step in steps:
        if day is not None:
            clock.today = day
        answer = report(register_stub, step)
        stored = register_stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
        )
        assert list(answer.history) == list(stored.history), step.event_id
        assert answer.whitelist_entry == stored.whitelist_entry, step.event_id
        assert answer.decision == stored.decision, step.event_id
        assert answer.profile == stored.profile, step.event_id
        assert summary(stored) == plain_history(db_engine, 1), step.event_id
        seen.update(h.kind for h in answer.history)
        if step.event_id == "p-2":
            kinds = [h.kind for h in answer.history[:3]]
            assert kinds == ["whitelist_granted", "whitelist_revoked", "decision"], kinds
            assert "expired" in answer.history[1].reason
    assert len(stored.history) == LIMIT
    assert seen == {"event", "decision", "whitelist_granted", "whitelist_revoked"}

    # a replay answers the first result again, history included
    again = report(register_stub, steps[-1][1])
    assert list(again.history) == list(answer.history)
