"""Booking as several replicas, and booking reaching several rules replicas.

* The racing scenarios of test_outbox_and_dispatch.py (the dispatch slot, rechecks of
  one order, one ticket rechecked at once) with the racers spread over two booking
  servers, each with its own connection pool on the same database.
* Two outbox workers (one per replica) delivering the same backlog: every event reaches
  rules once per id, each firm's in order.
* Booking given two rules replicas (`--rules host:p1,host:p2`): one is stopped in the
  middle, and no call a user makes fails or is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from services.booking.adapters.orm import outbox
from services.booking.adapters.rules_client import RulesClient
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.service_layer.outbox import deliver_pending
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.db import make_engine
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server as rules_grpc
from tests.booking_env import Pair
from tests.integration.booking import test_outbox_and_dispatch as races
from tests.integration.rules.test_replicas import RoundRobin
from tests.support import RULESETS


@pytest.fixture
def spread(pair: Pair) -> Iterator[Pair]:
    """The pair, its booking stub now alternating between two booking replicas."""
    url = pair.booking_engine.url.render_as_string(hide_password=False)
    engine = make_engine(url)
    server, port = booking_grpc.create_server(pair.ctx, engine, max_workers=16)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    first = pair.booking
    pair.booking = RoundRobin([first, booking_pb2_grpc.BookingServiceStub(channel)])  # type: ignore[assignment]
    yield pair
    pair.booking = first
    channel.close()
    server.stop(None)
    engine.dispose()


def test_dispatch_slot_across_replicas(spread: Pair) -> None:
    races.test_concurrent_dispatches_never_double_book_a_slot(spread)


def test_rechecks_of_one_order_across_replicas(spread: Pair) -> None:
    races.test_rechecks_racing_on_one_order_close_it(spread)


def test_one_ticket_rechecked_at_once_across_replicas(spread: Pair) -> None:
    races.test_the_same_ticket_rechecked_twice_at_once_is_verified_once(spread)


def test_two_outbox_workers_deliver_each_event_once_in_order(spread: Pair) -> None:
    for e in range(1, 5):  # an expert takes two visits a day: one each is plenty
        spread.expert(f"E{e}", ["fire_crowded"], ["稠城街道"])
    tickets: dict[str, list[str]] = {}
    for n in range(80, 84):
        firm = spread.register_firm(n)
        token = spread.issue(firm).token
        tickets[firm] = races._visit(
            spread, firm, token, [("GEN:ledger", bpb.SEVERITY_GENERAL)] * 3
        )
    second = make_engine(spread.booking_engine.url.render_as_string(hide_password=False))
    workers = [
        threading.Thread(target=deliver_pending, args=(UnitOfWork(e), spread.ctx.rules))
        for e in (spread.booking_engine, second, spread.booking_engine, second)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    deliver_pending(UnitOfWork(spread.booking_engine), spread.ctx.rules)  # whatever was held
    second.dispose()
    with spread.booking_engine.connect() as conn:
        left = conn.execute(select(outbox.c.event_id).where(outbox.c.delivered_at.is_(None))).all()
    assert left == []
    for firm, ids in tickets.items():
        status = spread.rules_status(firm)
        assert {h.hazard_id for h in status.profile.hazards} == set(ids)
        caused = [h.event_id for h in status.history if h.kind == "decision" and h.event_id]
        assert sorted(caused) == sorted(f"booking-{t}-found" for t in ids)  # applied once each


def test_booking_keeps_working_when_one_rules_replica_is_stopped(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    pair = sqlite_pair
    second, port = rules_grpc.create_server(
        load_rulebook(RULESETS), engine=pair.rules_engine, today=pair.clock
    )
    second.start()
    both = RulesClient(f"127.0.0.1:{pair.rules_port},127.0.0.1:{port}", timeout=5)
    pair.ctx.rules.close()
    object.__setattr__(pair.ctx, "rules", both)  # the running server's context (frozen)
    for e in range(1, 7):
        pair.expert(f"E{e}", ["fire_crowded"], ["稠城街道"])
    done: list[str] = []
    for n in range(90, 96):
        if n == 93:
            pair.rules_server.stop(None)  # one replica goes away mid-run
        firm = pair.register_firm(n) if n < 93 else _register_on(pair, port, n)
        token = pair.issue(firm).token
        done += races._visit(pair, firm, token, [("GEN:ledger", bpb.SEVERITY_GENERAL)])
    report = deliver_pending(UnitOfWork(pair.booking_engine), both)
    assert report.delivered == len(done) and not report.waiting
    both.close()
    second.stop(None)


def _register_on(pair: Pair, port: int, n: int) -> str:
    """Register through the replica still running (the pair's own stub points at the
    stopped one)."""
    from services.common._generated.rules.v1 import rules_pb2_grpc
    from services.rules.entrypoints.convert import profile_from_json
    from tests.support import profile

    data = profile(n)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        rules_pb2_grpc.RulesServiceStub(channel).UpsertEnterprise(
            rpb.UpsertEnterpriseRequest(
                profile=profile_from_json(data), as_of=pair.clock.today.isoformat()
            ),
            timeout=10,
        )
    return str(data["enterprise_id"])
