"""ReportEvent's group commit (service_layer/event_groups.py) on SQLite and PostgreSQL:
events sent together to a real server are applied in one transaction and answer, and
store, exactly what the same events applied one after another do (several of one firm,
an entry granted and revoked within the group); one failing event (unknown firm, a
hazard id already on record by an event earlier in the same group, a hazard verified
twice, a reused event_id) fails alone; a resent event_id, of the same group or from
before it, is a replay; a commit that fails answers
every caller of the group with the error, none with success."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy import Engine, select, text

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.audit import verify
from services.common.context import Principal, bind, deadline_in
from services.common.db import DbTimeouts, make_engine
from services.rules.adapters import bulk_reevaluation
from services.rules.adapters.orm import audit_head, audit_log, events
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import event_to_dict
from services.rules.service_layer import register_handlers
from services.rules.service_layer.event_groups import EventGroups, GroupLimits
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Clock, upsert
from tests.integration.rules.test_events import (
    TODAY,
    accident,
    complaint,
    hazard_found,
    penalty,
    profile_updated,
    verified,
)
from tests.integration.rules.test_reevaluation_bulk import _rows, _without
from tests.support import profile, uscc

ONE_BY_ONE, GROUPED = "91330782MA2", "91330782MB2"  # the same firms under two heads
FIRMS = 5
BEFORE = [accident(3, "p1")]  # reported one by one before the group
# (event, what it answers): the order they are sent in
SENT = [
    (hazard_found(1, "e1", "H1"), "ok"),
    (hazard_found(1, "e2", "H1", clause_ref="GEN:training"), "ALREADY_EXISTS"),  # H1 on record
    (accident(1, "e3"), "ok"),
    (accident(2, "e4"), "ok"),
    (complaint(3, "e5"), "ok"),
    (complaint(3, "e5"), "duplicate"),  # the same event again: the first answer
    (complaint(9, "e6"), "NOT_FOUND"),  # no such firm
    (penalty(2, "e7"), "ok"),
    # firm 4's entry revoked, a new one granted, that one revoked: all in the group
    (hazard_found(4, "e8", "H4", major=True), "ok"),
    (verified(4, "e9", "H4", TODAY), "ok"),
    (verified(4, "e10", "H4", TODAY, late=True), "FAILED_PRECONDITION"),  # verified already
    (accident(4, "e11"), "ok"),
    # still on the white list: its entry extended, renamed and moved to another region
    # (镇街), then revoked
    (profile_updated(5, "e12", profile(5, name="改名企业5", region="北苑街道")), "ok"),
    (hazard_found(5, "e13", "H5"), "ok"),
    (complaint(2, "e14"), "ok"),  # leaves standing the decision e7 made in the group
    (accident(3, "e5"), "ALREADY_EXISTS"),  # e5 reused for another event
    (accident(3, "p1"), "duplicate"),  # recorded before the group
    (complaint(2, "e14"), "duplicate"),  # a replay of a quiet event of the group
]


def _as(head: str, event: pb.EnterpriseEvent) -> pb.EnterpriseEvent:
    """The event for the firm of the same number under `head`, its id marked with it."""
    moved = pb.EnterpriseEvent()
    moved.CopyFrom(event)
    moved.enterprise_id = uscc(int(event.enterprise_id[11:17]), head)
    if moved.HasField("profile"):
        moved.profile.enterprise_id = moved.enterprise_id
    moved.event_id = f"{head}-{event.event_id}"
    return moved


def _server(
    engine: Engine, rulebook: Any, groups: GroupLimits | None = None, **kwargs: Any
) -> Iterator[RulesServiceStub]:
    """A real rules server on `engine` (grouping by `groups`; `kwargs`: create_server's),
    and a stub on it, until the generator is closed."""
    groups = groups or GroupLimits()
    server, port = grpc_server.create_server(
        rulebook,
        engine=engine,
        today=Clock(),
        max_workers=max(16, groups.max_size),  # a thread for every call of a group
        event_groups=groups,
        **kwargs,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield RulesServiceStub(channel)
    finally:
        channel.close()
        server.stop(None)


@pytest.fixture
def one_by_one(db_engine: Engine, rulebook: Any) -> Iterator[RulesServiceStub]:
    yield from _server(db_engine, rulebook, GroupLimits(max_size=1))


_GROUPERS: list[EventGroups] = []  # the `grouped` server's, to see its queue


@pytest.fixture
def grouped(db_engine: Engine, rulebook: Any, monkeypatch: Any) -> Iterator[RulesServiceStub]:
    # one group of every event sent: its leader waits (up to 30 s) until all are queued,
    # as a leader does while calls have been coming together (a lone call never waits)
    made = EventGroups.__init__

    def waiting(self: EventGroups, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.calls._last_size = 2
        _GROUPERS.append(self)

    monkeypatch.setattr(EventGroups, "__init__", waiting)
    yield from _server(db_engine, rulebook, GroupLimits(len(SENT), max_wait=30.0, groups=1))


def _answer(call: Any) -> Any:
    """What a call answered, comparable across the two heads: the status with ids and
    instants left out, or the error's code."""
    try:
        status = call()
    except grpc.RpcError as error:
        return error.code().name
    text = json.dumps(MessageToDict(status), sort_keys=True, ensure_ascii=False)
    for n in (*range(1, FIRMS + 1), 9):
        text = text.replace(uscc(n, GROUPED), uscc(n, ONE_BY_ONE))
    text = text.replace(f"{GROUPED}-", f"{ONE_BY_ONE}-")  # event ids
    text = re.sub(r'"(decisionId|id|grantedDecisionId)": "[0-9a-f]+"', r'"\1": ""', text)
    text = re.sub(r'"recordedAt": "[^"]+"', '"recordedAt": ""', text)
    return json.loads(text)


def test_a_group_answers_and_stores_what_one_by_one_does(
    one_by_one: RulesServiceStub, grouped: RulesServiceStub, db_engine: Engine
) -> None:
    for head, stub in ((ONE_BY_ONE, one_by_one), (GROUPED, grouped)):
        for n in range(1, FIRMS + 1):
            upsert(stub, profile(n, enterprise_id=uscc(n, head)))
        for e in BEFORE:
            one_by_one.ReportEvent(pb.ReportEventRequest(event=_as(head, e)), timeout=30)
    plain = [
        _answer(
            lambda e=e: one_by_one.ReportEvent(
                pb.ReportEventRequest(event=_as(ONE_BY_ONE, e)), timeout=30
            )
        )
        for e, _ in SENT
    ]
    futures = []
    queued = _GROUPERS[-1].calls.waiting
    for n, (e, _) in enumerate(SENT):  # sent together, in this order: each once queued
        request = pb.ReportEventRequest(event=_as(GROUPED, e))
        futures.append(grouped.ReportEvent.future(request, timeout=60))
        waited = time.monotonic() + (30 if n < len(SENT) - 1 else 0)  # the last: taken
        while queued() <= n and time.monotonic() < waited:  # (a busy machine may let a
            time.sleep(0.005)  # call sent later overtake it on the way in)
    together = [_answer(f.result) for f in futures]
    for n, ((_, expected), first, second) in enumerate(zip(SENT, plain, together, strict=True)):
        assert second == first, f"event {n}"
        if expected == "ok":
            assert isinstance(first, dict) and not first.get("duplicate"), f"event {n}"
        elif expected == "duplicate":
            assert first["duplicate"] is True
        else:
            assert first == expected, f"event {n}"
    renamed = {
        f"{GROUPED}-{i}": f"{ONE_BY_ONE}-{i}" for i in ("p1", *(f"e{n}" for n in range(1, 15)))
    }
    rows = _rows(db_engine, GROUPED, FIRMS, ONE_BY_ONE, renamed)
    assert rows == _rows(db_engine, ONE_BY_ONE, FIRMS, ONE_BY_ONE)
    # what the group did (so the comparison above covers it): firm 4's entry revoked, a
    # new one granted and revoked; firm 5's extended under its new name
    moves = ["event_applied", "decision_changed"]
    kinds = [c["kind"] for c in rows["4"]["feed"]][-9:]
    assert kinds == [
        *moves,
        "whitelist_revoked",
        *moves,
        "whitelist_granted",
        *moves,
        "whitelist_revoked",
    ]
    assert together[12]["whitelistEntry"]["name"] == "改名企业5"
    feed5 = [(c["kind"], c["region"]) for c in rows["5"]["feed"]][-6:]  # review 58 F2
    assert feed5 == [
        ("event_applied", "北苑街道"),
        ("region_left", "稠城街道"),
        ("region_joined", "北苑街道"),
        ("event_applied", "北苑街道"),
        ("decision_changed", "北苑街道"),
        ("whitelist_revoked", "北苑街道"),
    ]
    assert _events(db_engine, GROUPED) == _events(db_engine, ONE_BY_ONE)
    with db_engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok


def _events(engine: Engine, head: str) -> list[dict[str, Any]]:
    """The event records of a head's firms in the order received, ids made comparable."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(events).where(events.c.enterprise_id.like(f"{head}%")).order_by(events.c.id)
        ).all()
    out = []
    for row in rows:
        # the fingerprint covers the firm and event ids, which differ by head
        record = _without(row, "id", "received_at", "decision_id", "result", "fingerprint")
        record["event_id"] = record["event_id"].replace(head, "")
        record["enterprise_id"] = record["enterprise_id"][len(head) : -1]  # no check char
        # a profile update's detail names the firm
        record["detail"] = json.loads(re.sub(f"{head}[0-9A-Z]{{7}}", "", json.dumps(row.detail)))
        record["has_result"] = bool(row.result)
        out.append(record)
    return out


class _CommitFails(UnitOfWork):
    """The register, except that committing fails (a disk gone at the last moment)."""

    def commit(self) -> None:
        raise RuntimeError("commit refused (injected)")


def _together(
    groups: EventGroups, sent: list[pb.EnterpriseEvent], callers: list[str] | None = None
) -> list[Any]:
    """Each event reported from a thread of its own (as its caller, when named), all at
    once: their answers or errors, in the order sent."""
    answers: dict[int, Any] = {}

    def call(n: int) -> None:
        if callers:
            bind(Principal(callers[n]))
        try:
            answers[n] = groups.report(event_to_dict(sent[n]), callers[n] if callers else "x")
        except Exception as exc:
            answers[n] = exc

    threads = [threading.Thread(target=call, args=(n,)) for n in range(len(sent))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return [answers.get(n) for n in range(len(sent))]


def _groups(
    engine: Engine, rulebook: Any, size: int, uow: type[UnitOfWork] = UnitOfWork
) -> EventGroups:
    """A grouper whose one group holds all `size` events (its leader waits for them)."""
    return EventGroups(
        lambda: uow(engine),
        grpc_server.context_from(rulebook, Clock()),
        GroupLimits(size, max_wait=30.0, groups=1),
    )


def _register(stub: RulesServiceStub) -> None:
    for n in range(1, FIRMS + 1):
        upsert(stub, profile(n, enterprise_id=uscc(n, GROUPED)))


def test_a_failed_commit_answers_every_caller_of_the_group_with_an_error(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any
) -> None:
    _register(one_by_one)
    sent = [_as(GROUPED, e) for e in (accident(1, "f1"), accident(2, "f2"), complaint(3, "f3"))]
    answers = _together(_groups(db_engine, rulebook, len(sent), _CommitFails), sent)
    assert all(isinstance(a, RuntimeError) for a in answers), answers
    assert _events(db_engine, GROUPED) == []  # nothing of the group stands


def test_an_event_failing_after_it_wrote_fails_alone_and_the_rest_apply(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """The group is rolled back and applied event by event: the failing one fails again,
    alone; the others are applied, each once, and answered as applied."""
    _register(one_by_one)
    real = register_handlers._snapshot

    def snapshot(view: Any) -> Any:  # the answer of firm 2's event: after its writes
        if view.profile.enterprise_id == uscc(2, GROUPED):
            raise RuntimeError("injected after the writes")
        return real(view)

    monkeypatch.setattr(register_handlers, "_snapshot", snapshot)
    sent = [_as(GROUPED, e) for e in (accident(1, "g1"), accident(2, "g2"), complaint(3, "g3"))]
    answers = _together(_groups(db_engine, rulebook, len(sent)), sent)
    assert isinstance(answers[1], RuntimeError)
    assert [a.duplicate for a in (answers[0], answers[2])] == [False, False]
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-g1", "-g3"]


def test_each_event_of_a_group_is_audited_as_its_own_callers(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any
) -> None:
    _register(one_by_one)
    sent = [_as(GROUPED, e) for e in (accident(1, "h1"), accident(2, "h2"), complaint(3, "h3"))]
    callers = ["booking-service", "inspector-a", "inspector-b"]
    answers = _together(_groups(db_engine, rulebook, len(sent)), sent, callers)
    assert not any(isinstance(a, Exception) for a in answers), answers
    with db_engine.connect() as conn:
        for n, caller in enumerate(callers, start=1):
            chain = uscc(n, GROUPED)
            query = select(audit_log.c.caller).where(
                audit_log.c.chain == chain, audit_log.c.entity != "firm_profile"
            )
            found = set(conn.execute(query).scalars()) - {"anonymous"}  # the upserts
            assert found == {caller}, chain


class _Held:
    """The register's write lock (SQLite) or `table` (PostgreSQL) held from another
    connection for `seconds`."""

    def __init__(self, engine: Engine, table: str, seconds: float) -> None:
        self.engine, self.table, self.seconds = engine, table, seconds
        self.held = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Held:
        self.thread.start()
        assert self.held.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.thread.join(60)

    def _run(self) -> None:
        if self.engine.dialect.name == "sqlite":
            raw = sqlite3.connect(str(self.engine.url.database), isolation_level=None)
            raw.execute("BEGIN IMMEDIATE")
            self.held.set()
            time.sleep(self.seconds)
            raw.execute("ROLLBACK")
            raw.close()
            return
        other = make_engine(self.engine.url.render_as_string(hide_password=False))
        with other.connect() as conn:
            conn.execute(text(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE"))
            self.held.set()
            time.sleep(self.seconds)
            conn.rollback()
        other.dispose()


def test_one_callers_short_deadline_does_not_fail_the_others_of_its_group(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any
) -> None:
    """Review 20, F3: the group's work was bounded by its soonest deadline, so a patient
    caller failed with the impatient one while the database was briefly locked."""
    _register(one_by_one)
    sent = [_as(GROUPED, e) for e in (complaint(1, "d1"), accident(2, "d2"))]
    groups = _groups(db_engine, rulebook, len(sent))
    groups.calls._last_size = 2  # calls have been coming together: its leader waits for more
    answers: dict[int, Any] = {}

    def call(n: int, seconds: float) -> None:
        try:
            with deadline_in(seconds):
                answers[n] = groups.report(event_to_dict(sent[n]), "x")
        except Exception as exc:
            answers[n] = exc

    with _Held(db_engine, "firms", 1.5):
        threads = [threading.Thread(target=call, args=a) for a in ((0, 0.5), (1, 30.0))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    # the impatient caller led the group: over gRPC its client stops waiting at its
    # deadline, and its event may still commit (a resent event_id is then a replay)
    assert not isinstance(answers[1], Exception), answers[1]
    assert "-d2" in [e["event_id"] for e in _events(db_engine, GROUPED)]


def _alone(monkeypatch: Any) -> list[Any]:
    """The events applied one by one (after a group gave up), as they are."""
    alone: list[Any] = []
    real = register_handlers.apply_reported
    monkeypatch.setattr(
        register_handlers, "apply_reported", lambda *a, **k: alone.append(a) or real(*a, **k)
    )
    return alone


def test_a_stalled_database_fails_the_group_at_once_not_event_by_event(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """Review 20, F2: a statement timeout inside the group sent every event of it back to
    its own transaction, one after another, each waiting out the stall again."""
    if db_engine.dialect.name == "sqlite":
        pytest.skip("a table lock that lets the group's first reads through is PostgreSQL's")
    _register(one_by_one)
    alone = _alone(monkeypatch)
    url = db_engine.url.render_as_string(hide_password=False)
    stalled = make_engine(url, timeouts=DbTimeouts(statement=1.0))
    sent = [_as(GROUPED, complaint(1 + n % FIRMS, f"st{n}")) for n in range(4)]
    groups = EventGroups(
        lambda: UnitOfWork(stalled),
        grpc_server.context_from(rulebook, Clock()),
        GroupLimits(len(sent), max_wait=30.0, groups=1),
    )
    with _Held(db_engine, "decisions", 8):
        answers = _together(groups, sent)
    stalled.dispose()
    assert all(isinstance(a, Exception) and UnitOfWork.unavailable(a) for a in answers), answers
    assert alone == []  # no event was tried again on its own
    assert _events(db_engine, GROUPED) == []


def test_a_connection_lost_inside_the_groups_write_fails_the_group_at_once(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """Review 24 F2: the pipeline's cleanup read `.info` of the connection SQLAlchemy had
    just invalidated; its PendingRollbackError hid the lost connection, so the group was
    redone one event at a time (review 20 F2 again) instead of failing as unavailable."""
    if db_engine.dialect.name == "sqlite":
        pytest.skip("the write pipeline and a backend to terminate are PostgreSQL's")
    _register(one_by_one)
    alone = _alone(monkeypatch)
    write = bulk_reevaluation.BatchRegister.write_events

    def cut(self: Any, applied: Any) -> None:  # a restart or failover just before the write
        pid = self._connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with db_engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            other.commit()
        return write(self, applied)

    monkeypatch.setattr(bulk_reevaluation.BatchRegister, "write_events", cut)
    sent = [_as(GROUPED, complaint(1 + n % FIRMS, f"cut{n}")) for n in range(3)]
    groups = _groups(db_engine, rulebook, len(sent))
    groups.calls._last_size = 2  # its leader waits for the others (calls have come together)
    answers = _together(groups, sent)
    assert all(isinstance(a, Exception) and UnitOfWork.unavailable(a) for a in answers), answers
    assert alone == []  # no event was tried again on its own
    assert _events(db_engine, GROUPED) == []


def test_a_group_that_loses_a_deadlock_is_applied_call_by_call_not_unavailable(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """Review 36 F2: PostgreSQL broke a deadlock by rolling the group back (40P01), which
    counts as "unavailable", so every event of the group was answered "the database is
    unavailable" on a healthy database. A real deadlock here: another transaction holds
    the audit chains' heads the group's seal needs and waits for a firm the group locked;
    PostgreSQL picks the group (the other waits 10 s before it looks). Each event is then
    applied alone and answered."""
    if db_engine.dialect.name == "sqlite":
        pytest.skip("one writer at a time: SQLite has no deadlock to lose")
    _register(one_by_one)
    alone = _alone(monkeypatch)
    write = bulk_reevaluation.BatchRegister.write_events
    holding, done = threading.Event(), threading.Event()

    def other() -> None:
        with db_engine.connect() as conn:
            conn.exec_driver_sql("SET LOCAL deadlock_timeout = '10s'")
            conn.exec_driver_sql("SELECT 1 FROM audit_chains FOR UPDATE").all()
            holding.set()
            conn.exec_driver_sql("SELECT 1 FROM firms FOR UPDATE").all()  # the group's
            conn.rollback()
        done.set()

    def crossed(self: Any, applied: Any) -> None:
        if not holding.is_set():  # the group's first try only
            threading.Thread(target=other, daemon=True).start()
            assert holding.wait(30)
        return write(self, applied)

    monkeypatch.setattr(bulk_reevaluation.BatchRegister, "write_events", crossed)
    sent = [_as(GROUPED, complaint(1 + n % FIRMS, f"dl{n}")) for n in range(3)]
    groups = _groups(db_engine, rulebook, len(sent))
    groups.calls._last_size = 2  # its leader waits for the others (calls have come together)
    answers = _together(groups, sent)
    assert done.wait(30)
    assert not any(isinstance(a, Exception) for a in answers), answers
    assert len(alone) == len(sent)  # the group gave up; each event was applied alone
    assert len(_events(db_engine, GROUPED)) == len(sent)


def test_a_lapsed_entry_is_expired_and_audited_alike_in_a_group_and_alone(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any
) -> None:
    """Review 24 F1: an event whose decision expires a lapsed white-list entry was audited
    alone as a create of the event with no decision and then its update, and the firm in
    two updates (the expiry's flush split the write); a group wrote one of each."""
    for head in (ONE_BY_ONE, GROUPED):
        for n in (1, 2):  # granted a year and a month ago: lapsed today
            upsert(one_by_one, profile(n, enterprise_id=uscc(n, head)), as_of="2025-05-30")
    sent = [profile_updated(1, "x1", profile(1, name="改名企业1")), accident(2, "x2")]
    callers = ["monitor", "monitor"]
    alone = _together(_groups(db_engine, rulebook, 1), [_as(ONE_BY_ONE, e) for e in sent], callers)
    grouped = _groups(db_engine, rulebook, len(sent))
    grouped.calls._last_size = 2  # its leader waits for the other (calls have come together)
    together = _together(grouped, [_as(GROUPED, e) for e in sent], callers)
    assert not any(isinstance(a, Exception) for a in (*alone, *together)), (alone, together)
    renamed = {f"{GROUPED}-x{n}": f"{ONE_BY_ONE}-x{n}" for n in (1, 2)}
    rows = _rows(db_engine, GROUPED, 2, ONE_BY_ONE, renamed)
    assert rows == _rows(db_engine, ONE_BY_ONE, 2, ONE_BY_ONE)
    # what the events did (so the comparison above covers it): firm 1 stays on the white
    # list under a new entry; firm 2's accident takes it off, its lapsed entry expired
    # (the feed in the order a lapsed entry's expiry always had)
    assert [c["kind"] for c in rows["1"]["feed"]][-3:] == [
        "event_applied",
        "whitelist_expired",
        "whitelist_granted",
    ]
    assert [c["kind"] for c in rows["2"]["feed"]][-3:] == [
        "event_applied",
        "whitelist_expired",  # at its own end, before the decision
        "decision_changed",
    ]
    for n in ("1", "2"):  # the event's row written once; the firm's once by each call
        updated = [a["entity"] for a in rows[n]["audit"] if a["action"] != "create"]
        assert updated.count("firm") == 2 and "event" not in updated, updated


def test_a_groups_audit_ids_are_taken_after_its_chain_heads_lock(
    one_by_one: RulesServiceStub, db_engine: Engine, rulebook: Any
) -> None:
    """PostgreSQL (review 29 N1): a group takes its audit rows' ids from the sequence only
    once its chains' heads are locked (`_before_seal`: the lock, then nextval, in one
    pipeline), so a chain's ids rise along its links. Another transaction holds a head
    the group needs and, once the group waits on it, takes an id: the group's must be
    larger."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks and sequences taken in a pipeline are PostgreSQL's")
    _register(one_by_one)
    chain = uscc(1, GROUPED)
    held, taken = threading.Event(), {}

    def hold() -> None:
        with db_engine.connect() as conn, db_engine.connect() as watch:
            lock = "SELECT 1 FROM audit_chains WHERE chain = :c FOR UPDATE"
            conn.execute(text(lock), {"c": chain})
            held.set()
            waited = time.monotonic() + 30
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
            while not watch.execute(text(waiting)).scalar() and time.monotonic() < waited:
                time.sleep(0.01)  # until the group waits on the head
            watch.rollback()
            next_id = "SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))"
            taken["id"] = conn.execute(text(next_id)).scalar()
            conn.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    sent = [_as(GROUPED, complaint(1, "ids1")), _as(GROUPED, complaint(2, "ids2"))]
    groups = _groups(db_engine, rulebook, len(sent))
    groups.calls._last_size = 2  # its leader waits for the other: one group of both
    answers = _together(groups, sent)
    holder.join(60)
    assert not any(isinstance(a, Exception) for a in answers), answers
    newest = "SELECT max(id) FROM audit_log WHERE chain = :c"
    with db_engine.connect() as conn:
        assert conn.execute(text(newest), {"c": chain}).scalar() > taken["id"]
