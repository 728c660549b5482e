"""Admission (issue 13, defects 4 and 9): calls that need no database are served while
every database call hangs, and past the concurrency limit a call is refused at once with
RESOURCE_EXHAUSTED and the rate limiter's retry-after trailer.

The database "hangs" because the test holds SQLite's write lock: register writes wait on
it (the busy timeout) until the test lets go. Bounded by timeouts; no durations asserted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import make_engine
from services.common.server import Limits
from services.rules.adapters import migrate
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.faults import wait_until
from tests.support import profile


@contextmanager
def rules_server(
    rulebook: Rulebook, path: Path, limits: Limits
) -> Iterator[rules_pb2_grpc.RulesServiceStub]:
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    server, port = grpc_server.create_server(rulebook, engine=engine, limits=limits)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield rules_pb2_grpc.RulesServiceStub(channel)
    finally:
        channel.close()
        server.stop(None)
        engine.dispose()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the database's write lock: every writer waits."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _upsert(stub: rules_pb2_grpc.RulesServiceStub, n: int) -> grpc.Future:
    request = pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n)))
    return stub.UpsertEnterprise.future(request, timeout=120)


def _evaluate(stub: rules_pb2_grpc.RulesServiceStub, n: int) -> pb.Decision:
    request = pb.EvaluateRequest(profile=profile_from_json(profile(n)), as_of="2026-06-30")
    return stub.Evaluate(request, timeout=20)


def _outcome(call: grpc.Future) -> str:
    try:
        call.result(timeout=120)
        return "OK"
    except grpc.RpcError as exc:
        return str(exc.code().name)


def test_evaluations_are_served_while_every_database_call_hangs(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    path = tmp_path / "rules.db"
    with rules_server(rulebook, path, Limits(workers=2, db_workers=2)) as stub:
        with write_lock(path):
            stuck = [_upsert(stub, n) for n in range(1, 5)]  # two run, two queue behind
            for n in range(10, 16):
                assert _evaluate(stub, n).enterprise_id
            assert not any(call.done() for call in stuck)
        assert [_outcome(call) for call in stuck] == ["OK"] * 4


def test_past_the_concurrency_limit_calls_are_refused_with_retry_after(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    path = tmp_path / "rules.db"
    with rules_server(rulebook, path, Limits(workers=2, db_workers=2, max_concurrent=3)) as stub:
        with write_lock(path):
            calls = [_upsert(stub, n) for n in range(1, 9)]
            refused = wait_until(lambda: [c for c in calls if c.done()], timeout=60)
            for call in refused:
                with pytest.raises(grpc.RpcError) as info:
                    call.result()
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert dict(info.value.trailing_metadata() or ())["retry-after"] == "1"
        outcomes = [_outcome(call) for call in calls]
    assert outcomes.count("OK") >= 3 and "RESOURCE_EXHAUSTED" in outcomes
    assert set(outcomes) == {"OK", "RESOURCE_EXHAUSTED"}


def test_a_call_waiting_for_the_sqlite_lock_gives_up_at_its_deadline(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    path = tmp_path / "rules.db"
    engine = make_engine(f"sqlite:///{path}")  # no timeouts: SQLite would wait 30 s
    migrate.upgrade(engine)
    running = grpc_server.build(rulebook, engine=engine, address="127.0.0.1:0", limits=Limits())
    running.server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            with write_lock(path):
                late = stub.UpsertEnterprise.future(
                    pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(2))), timeout=1
                )
                assert _outcome(late) == "DEADLINE_EXCEEDED"
                # the server stopped waiting for the lock at the deadline, not 30 s later
                wait_until(lambda: running.pools.db.held == 0, timeout=20)
            assert _outcome(_upsert(stub, 3)) == "OK"
    finally:
        running.server.stop(None)
        engine.dispose()
