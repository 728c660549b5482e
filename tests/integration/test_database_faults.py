"""A sick database, as the services see it (issue 13, defects 3 and 4, point 12).

PostgreSQL sits behind a TCP proxy the test controls: it goes away (every connection
closed, new ones refused) or stalls (connections open, no bytes). Calls must answer
UNAVAILABLE (or the caller's DEADLINE_EXCEEDED), never INTERNAL and never hang; health
turns NOT_SERVING; calls that need no database go on; everything recovers. Every wait is
bounded; nothing asserts a duration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from services.common import db
from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import DbTimeouts, make_engine
from services.common.server import Limits
from services.rules.adapters import migrate
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.faults import TcpProxy, pg_database, through, wait_until
from tests.integration.conftest import PG_ADMIN_URL
from tests.support import complaint_event, profile, uscc

RULES = grpc_server.SERVICE_NAME


@dataclass
class Behind:
    """A rules server whose PostgreSQL is reached through `proxy`."""

    proxy: TcpProxy
    engine: Engine
    stub: rules_pb2_grpc.RulesServiceStub
    health: health_pb2_grpc.HealthStub
    pools: common_server.CallPools

    def status(self) -> int:
        request = health_pb2.HealthCheckRequest(service=RULES)
        return int(self.health.Check(request, timeout=10).status)


@pytest.fixture
def behind_proxy(rulebook: Rulebook) -> Iterator[Behind]:
    target = make_url(PG_ADMIN_URL)
    with pg_database(PG_ADMIN_URL, "faults") as url:
        direct = make_engine(url)
        migrate.upgrade(direct)
        direct.dispose()
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        engine = make_engine(
            through(url, proxy), pool_size=4, timeouts=DbTimeouts(statement=3, connect=2, pool=2)
        )
        running = grpc_server.build(
            rulebook, engine=engine, address="127.0.0.1:0", limits=Limits(4, 4)
        )
        running.server.start()
        watcher = common_server.watch_database(
            engine, running.health, [RULES], interval=0.2, probe_timeout=1
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        try:
            yield Behind(
                proxy,
                engine,
                rules_pb2_grpc.RulesServiceStub(channel),
                health_pb2_grpc.HealthStub(channel),
                running.pools,
            )
        finally:
            watcher.set()
            channel.close()
            running.server.stop(None)
            proxy.close()
            engine.dispose()


def _status(stub: rules_pb2_grpc.RulesServiceStub, n: int, timeout: float = 10) -> object:
    return stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(n)), timeout=timeout
    )


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_a_database_that_goes_away_answers_unavailable_then_recovers(
    behind_proxy: Behind,
) -> None:
    b = behind_proxy
    b.stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(1))), timeout=30
    )
    b.proxy.down()
    for call in (
        lambda: b.stub.ReportEvent(complaint_event(1, "while-down"), timeout=30),
        lambda: _status(b.stub, 1, timeout=30),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
        assert dict(info.value.trailing_metadata() or ()).get("retry-after")
    wait_until(lambda: b.status() == health_pb2.HealthCheckResponse.NOT_SERVING)
    b.proxy.up()
    wait_until(lambda: _code(lambda: _status(b.stub, 1)) == grpc.StatusCode.OK)
    wait_until(lambda: b.status() == health_pb2.HealthCheckResponse.SERVING)
    b.stub.ReportEvent(complaint_event(1, "after"), timeout=30)
    assert _code(lambda: b.stub.ReportEvent(complaint_event(1, "while-down"), timeout=30)) in (
        grpc.StatusCode.OK,  # nothing of the refused call was kept: it applies now
    )


def test_a_stalled_database_gives_answers_not_hangs_and_evaluations_go_on(
    behind_proxy: Behind,
) -> None:
    b = behind_proxy
    b.stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(1))), timeout=30
    )
    b.proxy.stall()  # connections stay open, no byte moves: a partition, a stuck server
    stuck = [
        b.stub.GetEnterpriseStatus.future(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=2
        )
        for _ in range(6)
    ] + [b.stub.ReportEvent.future(complaint_event(1, f"stalled-{i}"), timeout=2) for i in range(6)]
    for n in range(10, 14):  # no database needed: answered while the others hang
        decision = b.stub.Evaluate(
            pb.EvaluateRequest(profile=profile_from_json(profile(n)), as_of="2026-06-30"),
            timeout=20,
        )
        assert decision.enterprise_id == uscc(n)
    codes = {_code(lambda c=call: c.result(timeout=60)) for call in stuck}
    assert codes <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE}, codes
    wait_until(lambda: b.status() == health_pb2.HealthCheckResponse.NOT_SERVING)
    # the server gave up on the stalled calls too: nothing is left holding a thread
    wait_until(lambda: b.pools.db.held == 0, timeout=60)
    # without a deadline of its own a call still ends, bounded by the statement timeout
    assert _code(lambda: _status(b.stub, 1, timeout=60)) in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
    b.proxy.flow()
    wait_until(lambda: _code(lambda: _status(b.stub, 1)) == grpc.StatusCode.OK)
    wait_until(lambda: b.status() == health_pb2.HealthCheckResponse.SERVING)


def _pings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every checkout ping, counted (the real ping still runs)."""
    seen: list[object] = []
    real = db._alive

    def counted(dbapi_connection: object) -> None:
        seen.append(dbapi_connection)
        real(dbapi_connection)

    monkeypatch.setattr(db, "_alive", counted)
    return seen


def test_a_connection_that_just_answered_is_not_pinged_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under load every call checked out a connection and paid a `SELECT 1` round trip
    first; a connection back in the pool for less than PING_AFTER_IDLE is trusted."""
    pings = _pings(monkeypatch)
    with pg_database(PG_ADMIN_URL, "pings") as url:
        engine = make_engine(url, pool_size=1, timeouts=DbTimeouts(statement=3))
        try:
            for _ in range(5):
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("SELECT 2").scalar() == 2
            assert pings == []  # a new connection, then one that had just answered
            monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
            time.sleep(0.01)
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 3").scalar() == 3
            assert len(pings) == 1  # idle past the window: pinged
        finally:
            engine.dispose()


def test_an_idle_connection_that_died_is_replaced_before_the_call_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ping's purpose: a pooled connection whose backend went away while idle (a
    restart, a failover, an idle timeout) costs the next call nothing."""
    pings = _pings(monkeypatch)
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    with pg_database(PG_ADMIN_URL, "pings") as url:
        engine = make_engine(url, pool_size=1, timeouts=DbTimeouts(statement=3))
        try:
            with engine.connect() as conn:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            killer = make_engine(url)
            with killer.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                other.commit()
            killer.dispose()
            time.sleep(0.01)
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
            assert len(pings) == 1
        finally:
            engine.dispose()


def test_a_pool_taken_by_calls_for_a_moment_is_load_not_a_sick_database(
    rulebook: Rulebook,
) -> None:
    """Review 57 N1: with every pooled connection taken for a moment (here held by the
    test; in the review, a database capped at a few connections under 16 callers) a
    call waits for one and answers UNAVAILABLE after the pool timeout, and the health
    probe, which waits for one too, fails; but the database answers, and one failed
    probe no longer turns health NOT_SERVING (it did, and health flapped). Held past
    `failures` probes, it does."""
    with pg_database(PG_ADMIN_URL, "pool") as url:
        engine = make_engine(url, pool_size=2, timeouts=DbTimeouts(statement=5, pool=1))
        migrate.upgrade(engine)
        running = grpc_server.build(
            rulebook, engine=engine, address="127.0.0.1:0", limits=Limits(4, 4)
        )
        running.server.start()
        watcher = common_server.watch_database(
            engine, running.health, [RULES], interval=0.1, probe_timeout=0.5
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        stub = rules_pb2_grpc.RulesServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=RULES)
        held: list[Connection] = []

        def take_every_connection() -> None:
            for _ in range(4):  # pool_size 2 + max_overflow 2
                held.append(engine.connect())
                held[-1].exec_driver_sql("SELECT 1")

        def give_them_back() -> None:
            while held:
                held.pop().close()

        seen: list[int] = []

        def probe_failed(logged: list[dict[str, object]]) -> bool:
            seen.append(health.Check(request, timeout=10).status)
            events = {e["event"] for e in logged}
            return bool({"database probe failed", "database unreachable"} & events)

        try:
            wait_until(lambda: _code(lambda: _status(stub, 1)) == grpc.StatusCode.NOT_FOUND)
            with structlog.testing.capture_logs() as logged:
                take_every_connection()
                assert _code(lambda: _status(stub, 1)) == grpc.StatusCode.UNAVAILABLE
                wait_until(lambda: probe_failed(logged), interval=0.01)
                give_them_back()
                wait_until(lambda: _code(lambda: _status(stub, 1)) == grpc.StatusCode.NOT_FOUND)
                for _ in range(10):  # the next probes
                    seen.append(health.Check(request, timeout=10).status)
                    time.sleep(0.05)
            assert set(seen) == {health_pb2.HealthCheckResponse.SERVING}
            take_every_connection()  # for good: a pool that never frees is no moment
            wait_until(
                lambda: (
                    health.Check(request, timeout=10).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                )
            )
            give_them_back()
            wait_until(
                lambda: (
                    health.Check(request, timeout=10).status
                    == health_pb2.HealthCheckResponse.SERVING
                )
            )
        finally:
            give_them_back()
            watcher.set()
            channel.close()
            running.server.stop(None)
            engine.dispose()
