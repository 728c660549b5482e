"""ReportEvent builds its answer's history from rows read before its writes plus what it
wrote (register_handlers._Recent.after), and GetEnterpriseStatus reads it in two queries
(Register.recent_history and recent_event_items). Both are compared here, on SQLite and
PostgreSQL, with the plain way: the three queries of decisions, their causes and their
entries, read after the commit. A firm goes through every kind of history item: grants,
revocations, an extension, an expiry followed by a new grant, events that caused no
decision, and more items than the answer's twenty."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.instants import as_utc
from services.rules.adapters import repository
from services.rules.service_layer import register_handlers
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Clock, upsert
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
            assert answer.history[1].reason == "有效期届满"
    assert len(stored.history) == LIMIT
    assert seen == {"event", "decision", "whitelist_granted", "whitelist_revoked"}

    # a replay answers the first result again, history included
    again = report(register_stub, steps[-1][1])
    assert list(again.history) == list(answer.history)


def test_a_groups_history_read_is_each_firms_own_read_past_the_limit(
    register_stub: RulesServiceStub, db_engine: Engine
) -> None:
    """A ReportEvent group reads its firms' histories in one query each
    (Register.recent_histories, recent_event_items_of), bounded per firm: a firm with
    more decisions and quiet events than the answer shows gets the newest of them, as
    its own read does, beside firms with few or none."""
    for n in (1, 2, 3):
        upsert(register_stub, profile(n))
    for k in range(LIMIT + 3):  # each a decision
        report(register_stub, accident(1, f"a-{k}"))
    for k in range(LIMIT + 2):  # no decision: event items
        report(register_stub, complaint(1, f"c-{k}"))
    report(register_stub, accident(2, "a-only"))
    report(register_stub, complaint(2, "c-only"))
    ids = [uscc(n) for n in (1, 2, 3)]
    causing, quiet = register_handlers.CAUSING_EVENTS, register_handlers.QUIET_EVENTS
    with UnitOfWork(db_engine) as uow:
        register = uow.register
        histories = register.recent_histories(ids, LIMIT, causing)
        items = register.recent_event_items_of(ids, quiet, LIMIT)
        for i in ids:
            assert histories[i] == register.recent_history(i, LIMIT, causing), i
            assert items[i] == register.recent_event_items(i, quiet, LIMIT), i
    decided, _ = histories[uscc(1)]
    assert len(decided) == LIMIT and decided[0].event_id == f"a-{LIMIT + 2}"
    assert [e.event_id for e in items[uscc(1)]][:2] == [f"c-{LIMIT + 1}", f"c-{LIMIT}"]
    assert len(items[uscc(1)]) == LIMIT
    assert [d.event_id for d in histories[uscc(2)][0]] == ["a-only", ""]
    assert len(histories[uscc(3)][0]) == 1  # its first decision only


def test_a_groups_history_read_searches_by_index_and_scans_no_table(db_engine: Engine) -> None:
    """The group's history reads reach every table through an index and stop at each
    firm's newest rows: SQLite's plan has no SCAN step (of a table, or of every row of
    the firms ranked first) and no AUTOMATIC index (one built over a whole table for the
    query), so a group costs the same however many records its firms, or the register,
    hold."""
    if db_engine.dialect.name != "sqlite":
        return  # PostgreSQL's plan depends on its statistics; the same indexes serve it
    reads = (
        (repository.recent_histories_query(False), register_handlers.CAUSING_EVENTS),
        (repository.recent_event_items_query(False), register_handlers.QUIET_EVENTS),
    )
    with db_engine.connect() as conn:
        for query, kinds in reads:
            bound = query.params(ids=[uscc(1), uscc(2)], limit=LIMIT, kinds=list(kinds))
            sql = bound.compile(
                dialect=db_engine.dialect,
                compile_kwargs={"literal_binds": True, "render_postcompile": True},
            )
            plan = [row[3] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
            whole = [step for step in plan if step.startswith("SCAN") or "AUTOMATIC" in step]
            assert not whole, plan
