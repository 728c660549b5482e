"""The outbox keeps each firm's events in the order written, past a refusal (review 49 N5
left a parked event behind while its firm's later ones went on, so rules could judge a
firm on its later events alone, or see a hazard closed it never saw found).

Against a real rules service. A rules host whose clock lags refuses booking's events of
today for good (INVALID_ARGUMENT: occurred_on after its today): the firm's finding is
parked. Once the clock is fixed the firm's next finding must still wait behind it, other
firms' events must go on, and the operator's ways out (requeue, discard, audited) must
free the firm in order."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, text, update

from services.booking.adapters import migrate
from services.booking.adapters.orm import audit_head, audit_log, outbox
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.service_layer import outbox as box
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.audit import verify
from services.common.clock import now
from services.common.context import Principal, bind, call_scope
from services.common.errors import PreconditionFailed, ValidationError
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server as rules_grpc
from tests.booking_env import Clock, Pair
from tests.support import ROOT, RULESETS, uscc

MAJOR = ("FIRE35181:6.5", bpb.SEVERITY_MAJOR)
GENERAL = ("GEN:ledger", bpb.SEVERITY_GENERAL)
STAFF = Principal("staff-cli", frozenset({"booking.admin"}))


def _restart_rules(pair: Pair, clock: Clock) -> None:
    """The rules service again on its port, its days read from `clock`."""
    pair.rules_server.stop(None)
    server, _ = rules_grpc.create_server(
        load_rulebook(RULESETS),
        engine=pair.rules_engine,
        address=f"127.0.0.1:{pair.rules_port}",
        today=clock,
    )
    server.start()
    pair.rules_server = server


def _until_rules_answers(pair: Pair, firm: str, seconds: float = 30) -> None:
    """Wait until booking's rules client answers again (its breaker, opened while rules
    was down, lets calls through after a few seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            pair.ctx.rules.firm(firm)
            return
        except RulesUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _visit(
    pair: Pair, firm: str, token: str, key: str, day: int, findings: list[tuple[str, int]]
) -> list[str]:
    """An order of the firm (idempotency `key`, half-days `day` and `day`+1) and its visit;
    the tickets, one per finding."""
    placed = pair.booking.CreateOrder(pair.order_request(token, key=key, days=(day, day + 1)))
    assert placed.status == bpb.ORDER_STATUS_DISPATCHED
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(
            order_id=placed.order_id,
            findings=[
                bpb.FindingInput(clause_ref=ref, severity=sev, description="现场发现")
                for ref, sev in findings
            ],
        ),
        timeout=10,
    )
    return [t.ticket_id for t in visit.tickets]


def _deliver(pair: Pair, **kw: Any) -> box.DeliveryReport:
    return box.deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules, **kw)


def _hazards(pair: Pair, firm: str) -> dict[str, int]:
    return {h.hazard_id: h.status for h in pair.rules_status(firm).profile.hazards}


def _applied(pair: Pair, firm: str) -> list[str]:
    """The events rules applied to the firm, oldest first."""
    history = pair.rules_status(firm).history
    return [h.event_id for h in reversed(history) if h.kind == "decision" and h.event_id]


def _held_firm(pair: Pair) -> tuple[str, str, str, str, str]:
    """Firm F's major finding A refused for good by a rules host whose clock lags three
    days, parked; the clock fixed; then F's general finding B and firm G's finding C
    written. Returns (F, G, A, B, C)."""
    firm, other = pair.register_firm(110), pair.register_firm(111)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token, other_token = pair.issue(firm).token, pair.issue(other).token
    _restart_rules(pair, Clock(pair.clock.today - timedelta(days=3)))
    (found,) = _visit(pair, firm, token, "first", 1, [MAJOR])
    refused = _deliver(pair)
    assert (refused.delivered, refused.failed) == (0, 1)
    _restart_rules(pair, pair.clock)  # the clock is fixed
    (later,) = _visit(pair, firm, token, "second", 3, [GENERAL])
    (others,) = _visit(pair, other, other_token, "g", 5, [GENERAL])
    return firm, other, found, later, others


def test_a_refused_event_holds_its_firms_later_events_until_requeued(pair: Pair) -> None:
    firm, other, found, later, others = _held_firm(pair)
    report = _deliver(pair)
    assert (report.delivered, report.failed) == (1, 0)  # only the other firm's finding
    assert _hazards(pair, other) == {others: rpb.HAZARD_STATUS_OPEN}
    assert _hazards(pair, firm) == {}  # not judged on its later finding alone
    status = box.outbox_status(UnitOfWork(pair.booking_engine))
    assert status.waiting == 1 and [e for e, _ in status.parked] == [f"booking-{found}-found"]
    assert [(h.enterprise_id, h.event_id, h.behind) for h in status.held] == [
        (firm, f"booking-{found}-found", 1)
    ]
    assert status.held[0].error.startswith("INVALID_ARGUMENT")
    assert _deliver(pair).delivered == 0  # still held, pass after pass
    with call_scope():
        bind(STAFF)
        assert box.requeue_failed(UnitOfWork(pair.booking_engine)) == [f"booking-{found}-found"]
    done = _deliver(pair)
    assert (done.delivered, done.failed, done.waiting) == (2, 0, False)
    assert _hazards(pair, firm) == {found: rpb.HAZARD_STATUS_OPEN, later: rpb.HAZARD_STATUS_OPEN}
    assert _applied(pair, firm) == [f"booking-{found}-found", f"booking-{later}-found"]
    assert box.outbox_status(UnitOfWork(pair.booking_engine)).held == ()


def test_a_discarded_event_frees_its_firm_and_is_audited(pair: Pair) -> None:
    firm, _, found, later, _ = _held_firm(pair)
    _deliver(pair)
    event_id = f"booking-{found}-found"
    uow = UnitOfWork(pair.booking_engine)
    with pytest.raises(ValidationError):  # a reason is required
        box.discard(uow, event_id, "  ")
    with pytest.raises(PreconditionFailed):  # never refused: it goes in its turn
        box.discard(uow, f"booking-{later}-found", "不要了")
    with call_scope():
        bind(STAFF)
        done = box.discard(uow, event_id, "规则服务时钟错误期间被拒收，已由执法系统补录")
    assert (done.enterprise_id, done.freed) == (firm, 1)
    with pytest.raises(PreconditionFailed):  # once
        box.discard(uow, event_id, "again")
    report = _deliver(pair)
    assert report.delivered == 1
    assert _hazards(pair, firm) == {later: rpb.HAZARD_STATUS_OPEN}
    assert box.requeue_failed(UnitOfWork(pair.booking_engine)) == []  # dropped for good
    assert box.outbox_status(UnitOfWork(pair.booking_engine)) == box.OutboxStatus(0, (), ())
    with pair.booking_engine.connect() as conn:
        row = conn.execute(
            select(outbox.c.delivered_at, outbox.c.discarded_at, outbox.c.discard_reason).where(
                outbox.c.event_id == event_id
            )
        ).one()
        assert row[0] is None and row[1] is not None and row[2].startswith("规则服务时钟错误")
        entries = conn.execute(
            select(audit_log.c.caller, audit_log.c.before, audit_log.c.after, audit_log.c.chain)
            .where(audit_log.c.entity == "outbox_message", audit_log.c.entity_id == event_id)
            .order_by(audit_log.c.id)
        ).all()
        assert verify(conn, audit_log, audit_head).ok
    ((caller, before, after, chain),) = entries
    assert (caller, chain) == ("staff-cli", f"firm:{firm}")
    assert before["discarded_at"] is None and after["discard_reason"].startswith("规则服务")


def test_other_firms_flow_past_a_firm_whose_backlog_waits(pair: Pair) -> None:
    """A firm's earliest event waits out a long backoff with more of its events behind it
    than a pass takes: a firm written after it must still get through (before, the pass
    read the first `limit` undelivered events, all the waiting firm's)."""
    firm, other = pair.register_firm(120), pair.register_firm(121)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token, other_token = pair.issue(firm).token, pair.issue(other).token
    pair.rules_server.stop(None)
    waiting = _visit(pair, firm, token, "f", 1, [GENERAL] * 3)
    (others,) = _visit(pair, other, other_token, "g", 3, [GENERAL])
    assert _deliver(pair).waiting  # rules is down: the firm's first event backs off
    _restart_rules(pair, pair.clock)
    _until_rules_answers(pair, firm)
    with pair.booking_engine.begin() as conn:  # as after a few failures: a long backoff
        first = conn.execute(select(outbox.c.id).order_by(outbox.c.id).limit(1)).scalar_one()
        conn.execute(update(outbox).values(next_attempt_at=None))
        conn.execute(
            update(outbox)
            .where(outbox.c.id == first)
            .values(next_attempt_at=now() + timedelta(minutes=5))
        )
    report = _deliver(pair, limit=2)
    assert report.delivered == 1
    assert _hazards(pair, other) == {others: rpb.HAZARD_STATUS_OPEN}
    assert _hazards(pair, firm) == {}  # its later events did not overtake the first
    with pair.booking_engine.begin() as conn:  # the backoff is over
        conn.execute(update(outbox).values(next_attempt_at=None))
    assert _deliver(pair, limit=2).delivered == 2  # a pass takes at most `limit`
    assert _deliver(pair, limit=2).delivered == 1
    assert _applied(pair, firm) == [f"booking-{t}-found" for t in waiting]


def test_a_head_parked_by_another_replica_meanwhile_is_not_passed_by(pair: Pair) -> None:
    """While this worker talks to rules about another firm, a second replica parks this
    firm's first event: its second must not go out in this pass, which had read the
    firm's head before. (A guard for the per-delivery head lookup: the code before held
    the firm for the rest of such a pass too, and let the second go on the next.) On
    SQLite too, since no transaction is open while rules is asked (review 57 D4: the
    other replica's write used to wait on the lock this pass held through its call)."""
    firm, other = pair.register_firm(130), pair.register_firm(131)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token, other_token = pair.issue(firm).token, pair.issue(other).token
    (others,) = _visit(pair, other, other_token, "g", 1, [GENERAL])
    tickets = _visit(pair, firm, token, "f", 3, [GENERAL] * 2)
    real = pair.ctx.rules

    class OtherReplica:
        """Rules as this worker reaches it; while it delivers the other firm's event,
        another replica's worker is refused the firm's first one and parks it."""

        def report(self, payload: Any) -> None:
            if payload["enterprise_id"] == other:
                with pair.booking_engine.begin() as conn:
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.event_id == f"booking-{tickets[0]}-found")
                        .values(failed_at=now(), last_error="INVALID_ARGUMENT: elsewhere")
                    )
            real.report(payload)

    report = box.deliver_pending(UnitOfWork(pair.booking_engine), OtherReplica())  # type: ignore[arg-type]
    assert report.delivered == 1
    assert _hazards(pair, other) == {others: rpb.HAZARD_STATUS_OPEN}
    assert _hazards(pair, firm) == {}


def test_a_transient_refusal_holds_the_firm_until_its_retry(pair: Pair) -> None:
    """Rules answers RESOURCE_EXHAUSTED (overloaded, not down) to the firm's first event:
    it backs off and its second waits, while another firm's event goes. (A guard: the
    code before already held the firm here; the backlog test above is what it missed.)"""
    firm, other = pair.register_firm(140), pair.register_firm(141)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token, other_token = pair.issue(firm).token, pair.issue(other).token
    tickets = _visit(pair, firm, token, "f", 1, [GENERAL] * 2)
    (others,) = _visit(pair, other, other_token, "g", 3, [GENERAL])
    real = pair.ctx.rules
    busy = {f"booking-{tickets[0]}-found"}

    class Overloaded:
        def report(self, payload: Any) -> None:
            if payload["event_id"] in busy:
                raise RulesUnavailable("RESOURCE_EXHAUSTED", "too many calls")
            real.report(payload)

    report = box.deliver_pending(UnitOfWork(pair.booking_engine), Overloaded())  # type: ignore[arg-type]
    assert (report.delivered, report.waiting) == (1, True)
    assert _hazards(pair, other) == {others: rpb.HAZARD_STATUS_OPEN}
    assert _hazards(pair, firm) == {}
    busy.clear()
    with pair.booking_engine.begin() as conn:  # the backoff is over
        conn.execute(update(outbox).values(next_attempt_at=None))
    assert _deliver(pair).delivered == 2
    assert _applied(pair, firm) == [f"booking-{t}-found" for t in tickets]


def test_the_outbox_command_lists_held_firms_and_discards(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    firm, _, found, later, _ = _held_firm(pair)
    _deliver(pair)
    db = pair.booking_engine.url.render_as_string(hide_password=False)
    event_id = f"booking-{found}-found"

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "services.booking", "outbox", "--db", db, *extra]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    listing = run()
    assert "1 event(s) waiting for delivery; 1 refused by the rules service" in listing.stdout
    assert f"  {event_id}: INVALID_ARGUMENT" in listing.stdout
    assert "1 firm(s) held" in listing.stdout
    assert f"  {firm}: 1 event(s) held behind {event_id}" in listing.stdout
    assert run("--discard", event_id).returncode == 2  # no reason
    dropped = run("--discard", event_id, "--reason", "已人工补录")
    assert dropped.returncode == 0, dropped.stderr
    assert f"discarded {event_id}" in dropped.stdout and "1 later event(s)" in dropped.stdout
    again = run("--discard", event_id, "--reason", "已人工补录")
    assert again.returncode == 1 and again.stderr.startswith("refused:")
    assert "0 firm(s) held" not in again.stdout and "held behind" not in again.stdout
    assert _deliver(pair).delivered == 1
    assert _hazards(pair, firm) == {later: rpb.HAZARD_STATUS_OPEN}


# ---------------------------------------------------------------- the queries and b0012


def _fill(engine: Engine, delivered: int, open_per_firm: int, firms: int) -> None:
    """`delivered` events delivered long ago, then `open_per_firm` open ones per firm."""
    rows = [
        {
            "event_id": f"old-{n}",
            "kind": "EVENT_KIND_PENALTY",
            "enterprise_id": uscc(n % 50),
            "payload": {},
            "created_at": now(),
            "attempts": 1,
            "delivered_at": now(),
        }
        for n in range(delivered)
    ]
    rows += [
        {
            "event_id": f"new-{f}-{n}",
            "kind": "EVENT_KIND_PENALTY",
            "enterprise_id": uscc(f),
            "payload": {},
            "created_at": now(),
            "attempts": 0,
            "delivered_at": None,
        }
        for n in range(open_per_firm)
        for f in range(firms)
    ]
    with engine.begin() as conn:
        conn.execute(insert(outbox), rows)


def test_the_delivery_reads_only_the_open_events_through_indexes(engine: Engine) -> None:
    """A pass reads the firms' heads through `ix_outbox_open`, seeking from one firm's
    head to the next (no scan of the table, however many events were delivered before or
    wait behind a head: test_outbox_review_60 counts that), and a firm's head is one seek
    in `ix_outbox_open` (a delivery asks for it twice)."""
    from services.booking.adapters.repository import due_heads_query, firm_head_query

    migrate.upgrade(engine)
    _fill(engine, 5000, 3, 4)
    statements = {
        "heads": due_heads_query().params(now=now(), limit=200),
        "firm": firm_head_query().params(firm=uscc(1)),
    }
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE" if sqlite else "ANALYZE outbox"))
        for statement in statements.values():
            sql = statement.compile(engine, compile_kwargs={"literal_binds": True})
            if sqlite:
                steps = [r[3] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
                # the table, under its own name or the heads query's aliases of it
                reads = [s for s in steps if re.search(r" (outbox|walk|head_row) ", f"{s} ")]
                assert reads and all(s.startswith("SEARCH ") for s in reads), steps
                assert not [s for s in steps if "BLOOM FILTER" in s], steps  # built by a scan
            else:
                steps = list(conn.execute(text(f"EXPLAIN {sql}")).scalars())
                assert not [s for s in steps if "Seq Scan on outbox" in s], steps
            assert "ix_outbox_open" in "\n".join(steps), steps
    with UnitOfWork(engine) as uow:
        heads = uow.register.due_heads(now(), 200)
        assert [firm for firm, _ in heads] == [uscc(f) for f in range(4)]
        assert uow.register.firm_head(uscc(1)) == heads[1][1]


def test_b0012_goes_down_and_up_keeping_a_discarded_event_unsent(engine: Engine) -> None:
    migrate.upgrade(engine)
    _fill(engine, 2, 1, 2)
    with call_scope():
        bind(STAFF)
        with engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.event_id == "new-0-0")
                .values(failed_at=now(), last_error="NOT_FOUND: x")
            )
        box.discard(UnitOfWork(engine), "new-0-0", "重复事件")
    from alembic import command

    from services.common.migrations import alembic_config

    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "b0011")
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT event_id, last_error FROM outbox WHERE failed_at IS NOT NULL")
            ).all()
        )
    assert rows == {"new-0-0": "discarded: 重复事件"}  # parked: the old code skips it
    migrate.upgrade(engine)
    with UnitOfWork(engine) as uow:
        assert [m.event_id for m in uow.register.failed_messages()] == ["new-0-0"]
