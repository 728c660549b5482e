"""A delivery claims its message, asks rules with no transaction open, then records the
answer (review 57 D4). Two booking replicas (two engines on one database, as two
processes) must still send each firm's events once and in order: a claimed head holds its
firm on the other replica too; a delivery that outlived its claim reorders nothing and
does not record over the delivery that took its message over; a claim left by a process
that died ends by itself; an operator cannot discard a message being sent; and a worker
told to stop records the delivery in flight and starts no other.

Rules is the real service; the replica under test reaches it through a wrapper that holds
one event's call until the test lets it go (a call stalled in the network)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from services.booking.adapters.orm import outbox
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.domain.rules_service import RulesRejected, RulesUnavailable
from services.booking.service_layer import outbox as box
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.clock import now
from services.common.context import Principal, bind, call_scope
from services.common.db import make_engine
from services.common.errors import PreconditionFailed
from tests.booking_env import Pair
from tests.faults import wait_until
from tests.integration.booking.test_outbox_firm_order import GENERAL, _applied, _hazards, _visit

STAFF = Principal("staff-cli", frozenset({"booking.admin"}))


class Held:
    """Rules as one replica reaches it: the call for `event_id` waits until `release`
    is set, then raises `answer` (None: goes on to rules)."""

    def __init__(self, rules: Any, event_id: str, answer: Exception | None = None) -> None:
        self.rules = rules
        self.event_id = event_id
        self.answer = answer
        self.calling = threading.Event()
        self.release = threading.Event()

    def report(self, payload: Mapping[str, Any]) -> None:
        if payload["event_id"] == self.event_id:
            self.calling.set()
            assert self.release.wait(60)
            if self.answer is not None:
                raise self.answer
        self.rules.report(payload)


@contextmanager
def other_replica(pair: Pair) -> Iterator[Engine]:
    """A second booking process's engine on the same database (its own pool; on SQLite
    its own write gate, as another process has)."""
    engine = make_engine(pair.booking_engine.url.render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()


def _firm_with_two(pair: Pair, n: int) -> tuple[str, list[str]]:
    firm = pair.register_firm(n)
    token = pair.issue(firm).token
    tickets = _visit(pair, firm, token, f"k{n}", 1, [GENERAL] * 2)
    return firm, [f"booking-{t}-found" for t in tickets]


def _row(engine: Engine, event_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.event_id == event_id)).one()


def test_a_claimed_head_holds_its_firm_on_the_other_replica(pair: Pair) -> None:
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    firm, (first, second) = _firm_with_two(pair, 150)
    other = pair.register_firm(151)
    (others,) = _visit(pair, other, pair.issue(other).token, "g", 5, [GENERAL])
    held = Held(pair.ctx.rules, first)
    with ThreadPoolExecutor(1) as pool, other_replica(pair) as engine:
        running = pool.submit(box.deliver_pending, UnitOfWork(pair.booking_engine), held)
        assert held.calling.wait(30)  # this replica waits on rules for the firm's head
        claimed = _row(engine, first)
        assert claimed.claimed_until is not None and claimed.claimed_by
        report = box.deliver_pending(UnitOfWork(engine), pair.ctx.rules)
        assert (report.delivered, report.failed) == (1, 0)  # only the other firm's event
        assert _hazards(pair, other) == {others: rpb.HAZARD_STATUS_OPEN}
        assert _hazards(pair, firm) == {}  # neither the claimed head nor what follows it
        held.release.set()
        done = running.result(timeout=60)
    assert done.delivered == 2  # its head, then the firm's next one
    assert _applied(pair, firm) == [first, second]
    assert _row(pair.booking_engine, first).claimed_by == ""  # released


@pytest.mark.parametrize(
    "late", [None, RulesRejected("INVALID_ARGUMENT", "late")], ids=["ok", "refused"]
)
def test_a_delivery_that_outlived_its_claim_reorders_nothing(
    pair: Pair, late: Exception | None
) -> None:
    """The claim runs out while this replica still waits on rules (as a call longer than
    the claim would): the other replica sends the head again, and the firm's next event;
    this replica's late answer, an acknowledgement (a replay at rules) or a refusal, then
    changes nothing."""
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    firm, (first, second) = _firm_with_two(pair, 160)
    held = Held(pair.ctx.rules, first, late)
    with ThreadPoolExecutor(1) as pool, other_replica(pair) as engine:
        running = pool.submit(box.deliver_pending, UnitOfWork(pair.booking_engine), held)
        assert held.calling.wait(30)
        with engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.event_id == first)
                .values(claimed_until=now() - timedelta(seconds=1))
            )
        assert box.deliver_pending(UnitOfWork(engine), pair.ctx.rules).delivered == 2
        held.release.set()
        done = running.result(timeout=60)
    assert (done.delivered, done.failed) == (0, 0)
    row = _row(pair.booking_engine, first)
    assert row.delivered_at is not None and row.failed_at is None  # not parked over
    assert _applied(pair, firm) == [first, second]  # each once, in order


def test_a_claim_left_by_a_process_that_died_ends_by_itself(pair: Pair) -> None:
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    firm, (first, second) = _firm_with_two(pair, 170)
    with pair.booking_engine.begin() as conn:  # claimed, then the process was killed
        conn.execute(
            update(outbox)
            .where(outbox.c.event_id == first)
            .values(claimed_until=now() + timedelta(minutes=5), claimed_by="gone:1:0123")
        )
    report = box.deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert report.delivered == 0 and _hazards(pair, firm) == {}
    with pair.booking_engine.begin() as conn:  # its claim has run out
        conn.execute(
            update(outbox)
            .where(outbox.c.event_id == first)
            .values(claimed_until=now() - timedelta(seconds=1))
        )
    report = box.deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert report.delivered == 2
    assert _applied(pair, firm) == [first, second]


def test_a_message_being_sent_again_cannot_be_discarded(pair: Pair) -> None:
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    firm, (first, _second) = _firm_with_two(pair, 180)
    busy = Held(pair.ctx.rules, first, RulesUnavailable("RESOURCE_EXHAUSTED", "busy"))
    busy.release.set()
    assert box.deliver_pending(UnitOfWork(pair.booking_engine), busy).waiting  # refused now
    with pair.booking_engine.begin() as conn:  # its backoff is over
        conn.execute(update(outbox).values(next_attempt_at=None))
    held = Held(pair.ctx.rules, first)
    with ThreadPoolExecutor(1) as pool, call_scope():
        bind(STAFF)
        running = pool.submit(box.deliver_pending, UnitOfWork(pair.booking_engine), held)
        assert held.calling.wait(30)
        with pytest.raises(PreconditionFailed) as refused:
            box.discard(UnitOfWork(pair.booking_engine), first, "不要了")
        assert str(refused.value) == messages.OUTBOX_BEING_SENT.format(ref=messages.quoted(first))
        held.release.set()
        assert running.result(timeout=60).delivered == 2
        with pytest.raises(PreconditionFailed):  # delivered meanwhile
            box.discard(UnitOfWork(pair.booking_engine), first, "不要了")
    assert _row(pair.booking_engine, first).discarded_at is None
    assert _hazards(pair, firm)


def test_a_stopped_worker_records_the_delivery_in_flight_and_starts_no_other(
    pair: Pair,
) -> None:
    """SIGTERM stops the worker (cli.py's on_stop) while it waits on rules: the answer
    is recorded (nothing left claimed), and the firm's next event is left for later."""
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    firm, (first, second) = _firm_with_two(pair, 190)
    held = Held(pair.ctx.rules, first)
    worker = box.OutboxWorker(lambda: UnitOfWork(pair.booking_engine), held)  # type: ignore[arg-type]
    worker.start()
    with ThreadPoolExecutor(1) as pool:
        assert held.calling.wait(30)
        stopping = pool.submit(worker.stop)
        wait_until(lambda: worker.stopping)
        held.release.set()
        stopping.result(timeout=60)
    delivered, waiting = _row(pair.booking_engine, first), _row(pair.booking_engine, second)
    assert delivered.delivered_at is not None and delivered.claimed_until is None
    assert waiting.delivered_at is None and waiting.attempts == 0 and not waiting.claimed_by
    assert _applied(pair, firm) == [first]
