"""A stalled rules service must not stop booking's own writes (review 57 D4).

Booking runs as `serve` wires it: the gRPC server, the outbox worker woken by each write
that leaves an event, one rules client for both. Rules sits behind a TCP proxy the test
stalls (connections open, no byte moves), and booking's rules timeout is long, so the
worker's delivery of a finding waits on rules for all of it. On SQLite the outbox used to
make that call inside its write transaction, holding the process's write lock: every
other write (UpsertExpert, RecordVisit, CreateOrder, none of which asks rules) queued
behind the call and ran out of its deadline. Now the call is made with no transaction
open, so they are answered while the worker still waits; once rules flows again the
findings reach it, once each and in the order written.

No time is asserted: each write gets a deadline well inside the rules timeout, which only
a write that waited on the worker's call would run out of.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest

from services.booking.adapters.rules_client import RulesClient
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.service_layer.outbox import OutboxWorker
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.server import Limits
from tests.booking_env import Pair, ledger_visit, running_pair
from tests.faults import TcpProxy, wait_until
from tests.integration.conftest import PG_ADMIN_URL

RULES_TIMEOUT = 60.0  # booking's rules timeout here: only a call waiting on rules takes it
WRITE_DEADLINE = 10.0  # each of booking's own writes: far inside it


@dataclass
class Served:
    pair: Pair
    proxy: TcpProxy
    rules: RulesClient
    booking: booking_pb2_grpc.BookingServiceStub
    firm: str
    token: str

    def order(self, key: str, days: tuple[int, int]) -> str:
        placed = self.booking.CreateOrder(
            self.pair.order_request(self.token, key=key, days=days), timeout=WRITE_DEADLINE
        )
        assert placed.status == bpb.ORDER_STATUS_DISPATCHED
        return str(placed.order_id)

    def visit(self, order_id: str, text: str) -> str:
        done = self.booking.RecordVisit(ledger_visit(order_id, text), timeout=WRITE_DEADLINE)
        return str(done.tickets[0].ticket_id)


@contextmanager
def served(tmp_path: Path, kind: str) -> Iterator[Served]:
    """Booking (`kind` database) as `serve` runs it, its rules calls through a proxy."""
    with running_pair(tmp_path, kind, pg_admin_url=PG_ADMIN_URL) as pair:
        firm = pair.register_firm(1)
        pair.expert("E1", ["fire_crowded"], ["稠城街道"])
        token = pair.issue(firm).token
        proxy = TcpProxy(("127.0.0.1", pair.rules_port))
        rules = RulesClient(proxy.url_host, timeout=RULES_TIMEOUT)
        rules.warm_clauses()  # the clause catalogue: RecordVisit needs no rules call
        ctx = replace(pair.ctx, rules=rules)
        engine = pair.booking_engine
        worker = OutboxWorker(lambda: SqlUnitOfWork(engine), rules)
        running = booking_grpc.build(
            ctx, engine, address="127.0.0.1:0", limits=Limits(8, 8), on_outbox=worker.wake
        )
        running.server.start()
        worker.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        try:
            yield Served(
                pair, proxy, rules, booking_pb2_grpc.BookingServiceStub(channel), firm, token
            )
        finally:
            proxy.flow()
            worker.stop()
            channel.close()
            running.server.stop(None)
            rules.close()
            proxy.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_booking_writes_go_on_while_the_outbox_waits_on_a_stalled_rules(
    tmp_path: Path, kind: str
) -> None:
    with served(tmp_path, kind) as s:
        first_order, second_order = s.order("a", (1, 2)), s.order("b", (3, 4))
        s.proxy.stall()
        first = s.visit(first_order, "第一次检查：无台账")  # its finding wakes the worker
        wait_until(lambda: s.rules.waiting() == 1, timeout=30)  # which now waits on rules

        # booking's own writes, none asking rules, while the worker's call hangs
        expert = s.booking.UpsertExpert(
            bpb.UpsertExpertRequest(
                expert=bpb.Expert(
                    expert_id="E2",
                    name="新专家",
                    domains=["fire_crowded"],
                    regions=["稠城街道"],
                    max_visits_per_day=2,
                    active=True,
                )
            ),
            timeout=WRITE_DEADLINE,
        )
        assert expert.expert_id == "E2"
        second = s.visit(second_order, "第二次检查：仍无台账")
        assert s.order("c", (5, 6))
        assert s.rules.waiting() == 1  # the worker's call is still the one waiting

        # rules flows again: both findings reach it, in the order written, once each
        s.proxy.flow()

        def applied() -> list[str]:
            history = s.pair.rules_status(s.firm).history
            return [h.event_id for h in reversed(history) if h.kind == "decision" and h.event_id]

        wait_until(lambda: len(applied()) >= 2, timeout=120)
        assert applied() == [f"booking-{first}-found", f"booking-{second}-found"]
