"""grpc.health.v1 Watch streams (review 40 F1): they run on threads of their own, so open
watchers never take the workers of the calls that need no database, and when the server
drains each ends, OK, right after the NOT_SERVING it is sent, so that no watcher holds
the drain or the server's stop until the end of the grace period; a new Watch is then
refused UNAVAILABLE with a retry hint. A real rules server (no register database)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.server import HEALTH_WATCH, Limits
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.rules.test_event_stream import _drain, _wait_until
from tests.support import profile

SERVING, NOT_SERVING = (
    health_pb2.HealthCheckResponse.SERVING,
    health_pb2.HealthCheckResponse.NOT_SERVING,
)


@pytest.fixture
def running(rulebook: Rulebook) -> Iterator[tuple[Any, grpc.Channel]]:
    """A rules server with two workers for the calls that need no database."""
    built = grpc_server.build(
        rulebook, engine=None, address="127.0.0.1:0", limits=Limits(workers=2, db_workers=2)
    )
    built.server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{built.port}")
    try:
        yield built, channel
    finally:
        channel.close()
        built.server.stop(None)


def _watch(channel: grpc.Channel) -> tuple[Any, list[int]]:
    """An open Watch, its first answer read; the statuses it gets are appended."""
    call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=120)
    seen = [next(call).status]
    return call, seen


def test_open_watchers_leave_the_workers_to_the_other_calls(
    running: tuple[Any, grpc.Channel],
) -> None:
    """Twice as many watchers as workers: a health Check and an Evaluate still answer."""
    _, channel = running
    watchers = [_watch(channel) for _ in range(4)]
    assert [seen for _, seen in watchers] == [[SERVING]] * 4
    check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert check.status == SERVING
    decision = rules_pb2_grpc.RulesServiceStub(channel).Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(profile(1))), timeout=30
    )
    assert decision.enterprise_id
    for call, _ in watchers:
        call.cancel()


def test_a_drain_ends_each_watcher_after_its_not_serving(
    running: tuple[Any, grpc.Channel],
) -> None:
    built, channel = running
    watchers = [_watch(channel) for _ in range(3)]
    thread, logged = _drain(built)
    for call, seen in watchers:
        seen.extend(r.status for r in call)  # ends without an error: the stream closed OK
        assert seen == [SERVING, NOT_SERVING]
        assert call.code() == grpc.StatusCode.OK
    thread.join(120)
    assert not thread.is_alive()
    assert not [e for e in logged if "end of the grace period" in e["event"]]


def test_a_draining_server_refuses_a_new_watch(running: tuple[Any, grpc.Channel]) -> None:
    built, channel = running
    built.pools.draining.set()  # as drain() does first
    with pytest.raises(grpc.RpcError) as refused:
        _watch(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "1") in (refused.value.trailing_metadata() or ())


def test_a_watcher_its_caller_cancels_is_logged_cancelled(
    running: tuple[Any, grpc.Channel], monkeypatch: Any
) -> None:
    """The line of a Watch its client ended says CANCELLED: the cancel arrives while the
    server's watcher waits for the next status, and grpc then ends the watcher's
    generator quietly, which alone would read as OK (review 41 F1: cancelling right
    after the first answer raced with its sending, which logged CANCELLED either way)."""
    _, channel = running
    blocked, real_next = threading.Event(), grpc_health._Watcher._next

    def next_status(self: Any) -> Any:
        if not self._responses:
            blocked.set()  # about to wait for the next status
        return real_next(self)

    monkeypatch.setattr(grpc_health._Watcher, "_next", next_status)
    with structlog.testing.capture_logs() as logged:
        call, _ = _watch(channel)
        assert blocked.wait(30)
        call.cancel()
        _wait_until(
            lambda: any(e.get("method") == HEALTH_WATCH for e in logged), "the Watch's line"
        )
    (line,) = [e for e in logged if e.get("method") == HEALTH_WATCH]
    assert line["status"] == "CANCELLED"


def test_a_watch_past_the_watchers_threads_is_refused_not_left_waiting(
    rulebook: Rulebook, monkeypatch: Any
) -> None:
    """With every Watch thread taken, a new Watch is RESOURCE_EXHAUSTED with a retry
    hint (it waited, unanswered, for a thread to free); Check still answers, and once a
    watcher leaves a new Watch is served."""
    monkeypatch.setattr("services.common.server.HEALTH_WATCHERS", 2)
    built = grpc_server.build(
        rulebook, engine=None, address="127.0.0.1:0", limits=Limits(workers=2, db_workers=2)
    )
    built.server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{built.port}")
    try:
        first, second = _watch(channel), _watch(channel)
        with pytest.raises(grpc.RpcError) as refused:
            _watch(channel)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ("retry-after", "5") in (refused.value.trailing_metadata() or ())
        check = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
        assert check.status == SERVING
        first[0].cancel()
        _wait_until(lambda: built.pools.watches.held < 2, "a watcher's thread freed")
        third, seen = _watch(channel)
        assert seen == [SERVING]
        for call in (second[0], third):
            call.cancel()
    finally:
        channel.close()
        built.server.stop(None)
