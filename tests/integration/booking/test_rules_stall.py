"""A stalled rules service must not starve booking (review 49 F3).

Booking reaches rules through a TCP proxy the test stalls: connections stay open and no
byte moves (a partition, a hung server), so every rules call would wait out booking's
rules timeout. Booking runs with small pools (4 threads for database calls) so that the
old behaviour shows at once: calls waiting on rules held every thread, and CreateOrder and
the phone page, which never ask rules, queued behind them for the whole timeout.

Now at most `max_calls` calls wait on rules at once (the rest are refused UNAVAILABLE at
once), and after the first timeout the breaker refuses every rules call at once until
its open time is up; then one call probes, and rules answering closes it.

Bounds are relative to the configured rules timeout (long on purpose: nothing here may
take that long unless it waits on rules); the breaker's clock is a fake one the test
moves, so no assertion rests on a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
from sqlalchemy import select

from services.booking.adapters.orm import outbox
from services.booking.adapters.rules_client import RulesClient
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer.outbox import OutboxWorker
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.http_server import start_http
from services.common.server import Limits
from tests.booking_env import Pair, running_pair
from tests.faults import TcpProxy, wait_until
from tests.integration.booking.test_outbox_and_dispatch import _visit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stalling:
    """Booking (gRPC and the phone page) whose rules calls go through `proxy`."""

    pair: Pair
    proxy: TcpProxy
    rules: RulesClient
    clock: FakeClock
    booking: booking_pb2_grpc.BookingServiceStub
    web: httpx.Client
    firm: str
    token: str

    def issue(self, timeout: float) -> grpc.Future:
        return self.booking.IssueQrCode.future(
            bpb.IssueQrCodeRequest(enterprise_id=self.firm), timeout=timeout
        )

    def order(self, key: str, timeout: float) -> bpb.Order:
        return self.booking.CreateOrder(
            self.pair.order_request(self.token, key=key), timeout=timeout
        )


@contextmanager
def stalling(tmp_path: Path, *, timeout: float, **client: Any) -> Iterator[Stalling]:
    with running_pair(tmp_path) as pair:
        firm = pair.register_firm(1)
        pair.expert("E1", ["fire_crowded"], ["稠城街道"])
        token = pair.issue(firm).token
        proxy = TcpProxy(("127.0.0.1", pair.rules_port))
        clock = FakeClock()
        rules = RulesClient(proxy.url_host, timeout=timeout, clock=clock, **client)
        rules.warm_clauses()
        ctx = replace(pair.ctx, rules=rules)
        running = booking_grpc.build(
            ctx, pair.booking_engine, address="127.0.0.1:0", limits=Limits(4, 4)
        )
        running.server.start()
        http = start_http(create_web_app(ctx, pair.booking_engine))
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        web = httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=timeout * 4)
        try:
            yield Stalling(
                pair,
                proxy,
                rules,
                clock,
                booking_pb2_grpc.BookingServiceStub(channel),
                web,
                firm,
                token,
            )
        finally:
            proxy.flow()
            web.close()
            http.stop()
            channel.close()
            running.server.stop(None)
            rules.close()
            proxy.close()


def _code(future: grpc.Future) -> grpc.StatusCode:
    try:
        future.result()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_calls_that_need_no_rules_are_served_while_rules_calls_hang(tmp_path: Path) -> None:
    """The first wave, before any timeout: 8 IssueQrCode (4 database threads) and 50
    public /verify (the web pages' 40 threads) while rules stalls. Two wait on rules, the
    others are refused UNAVAILABLE / 503 long before the rules timeout, and CreateOrder and
    the phone page answer while the two are still waiting."""
    timeout = 30.0  # booking's rules timeout here: only a call waiting on rules takes it
    with stalling(tmp_path, timeout=timeout, max_calls=2) as s:
        s.proxy.stall()
        issues = [s.issue(timeout * 4) for _ in range(8)]
        with ThreadPoolExecutor(50) as pool:
            verifies: list[Future[httpx.Response]] = [
                pool.submit(s.web.get, f"/verify/JC-{i:032d}") for i in range(50)
            ]
            wait_until(lambda: s.rules.waiting() == 2, timeout=timeout / 2)

            # the phone page and CreateOrder: answered while the two still wait on rules
            page = s.web.get(f"/q/{s.token}", timeout=timeout / 2)
            assert page.status_code == 200
            placed = s.order("during-stall", timeout=timeout / 2)
            assert placed.status == bpb.ORDER_STATUS_DISPATCHED

            # everything but the two waiting was refused, well before the rules timeout
            pending = issues + verifies
            wait_until(lambda: sum(not f.done() for f in pending) == 2, timeout=timeout / 2)
            assert s.rules.waiting() == 2  # the two are still waiting on rules
            refused_issues = [f for f in issues if f.done()]
            refused_pages = [f for f in verifies if f.done()]
            assert {_code(f) for f in refused_issues} <= {grpc.StatusCode.UNAVAILABLE}
            assert {f.result().status_code for f in refused_pages} <= {503}
            assert all(messages.PAGE_UNAVAILABLE[0] in f.result().text for f in refused_pages)

            # rules flows again: the two that waited get their answers from it
            s.proxy.flow()
            issued = [_code(f) for f in issues]
            checked = [f.result().status_code for f in verifies]
        # answered by rules: a code issued, or "no such inspection code" (404)
        assert issued.count(grpc.StatusCode.OK) + checked.count(404) == 2, (issued, checked)


def test_after_a_timeout_the_breaker_refuses_at_once_then_closes_when_rules_answers(
    tmp_path: Path,
) -> None:
    timeout = 6.0  # booking's rules timeout here
    with stalling(tmp_path, timeout=timeout, breaker_seconds=30) as s:
        (ticket_id,) = _visit(s.pair, s.firm, s.token, [("GEN:ledger", bpb.SEVERITY_GENERAL)])
        s.proxy.stall()

        # the first call waits out the rules timeout, and opens the breaker
        assert _code(s.issue(timeout * 4)) == grpc.StatusCode.UNAVAILABLE
        assert set(s.rules.breaker_states().values()) == {"open"}

        # now every rules call is refused at once: well inside half the rules timeout
        refused = [s.issue(timeout / 2) for _ in range(12)]
        assert {_code(f) for f in refused} == {grpc.StatusCode.UNAVAILABLE}
        with ThreadPoolExecutor(12) as pool:
            pages = list(
                pool.map(
                    lambda i: s.web.get(f"/verify/JC-{i:032d}", timeout=timeout / 2), range(12)
                )
            )
        assert {p.status_code for p in pages} == {503}
        assert s.order("while-open", timeout=timeout / 2).order_id  # no rules: served

        # the outbox worker tries, is refused, and backs off
        worker = OutboxWorker(
            lambda: SqlUnitOfWork(s.pair.booking_engine), s.rules, idle_seconds=0.1
        )
        worker.start()
        try:
            wait_until(lambda: _delivery(s) == (False, True), timeout=timeout * 4)

            # rules answers again; until the open time is up, the breaker still refuses
            s.proxy.flow()
            assert _code(s.issue(timeout / 2)) == grpc.StatusCode.UNAVAILABLE
            s.clock.now += 30  # the open time is up: one call probes, rules answers
            wait_until(lambda: _code(s.issue(timeout)) == grpc.StatusCode.OK, timeout=60)
            assert set(s.rules.breaker_states().values()) == {"closed"}
            for _ in range(3):
                assert _code(s.issue(timeout)) == grpc.StatusCode.OK
            assert s.web.get(f"/verify/JC-{0:032d}").status_code == 404  # asked: no such code

            # and the outbox delivers what waited (after its own backoff, at most a minute)
            wait_until(lambda: _delivery(s)[0], timeout=120)
        finally:
            worker.stop()
        hazards = {h.hazard_id for h in s.pair.rules_status(s.firm).profile.hazards}
        assert hazards == {ticket_id}


def _delivery(s: Stalling) -> tuple[bool, bool]:
    """(every outbox message delivered, some attempt made)."""
    with s.pair.booking_engine.connect() as conn:
        rows = conn.execute(select(outbox.c.delivered_at, outbox.c.attempts)).all()
    return all(r.delivered_at is not None for r in rows), any(r.attempts for r in rows)
