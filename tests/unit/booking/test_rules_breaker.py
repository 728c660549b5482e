"""The rules client's guards against a stalled rules service (review 49 F3): a circuit
breaker per replica, and a bound on the calls waiting on rules at once.

No servers, no sleeps: the breaker's clock is a fake one the test moves, and the
replicas' stubs are fakes that answer, refuse, time out or block as a test tells them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from services.booking.adapters.circuit_breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from services.booking.adapters.rules_client import RulesClient
from services.booking.domain.rules_service import RulesRejected, RulesUnavailable
from services.common._generated.rules.v1 import rules_pb2 as pb
from tests.faults import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------- the breaker


def test_a_breaker_opens_on_a_failure_and_refuses_until_its_time_is_up() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5.0, clock=clock)
    assert breaker.state == CLOSED and breaker.allow() and not breaker.blocked()
    breaker.succeeded()
    assert breaker.state == CLOSED

    breaker.failed()
    assert breaker.state == OPEN and breaker.blocked()
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(5.0)
    clock.advance(4.9)
    assert not breaker.allow() and breaker.state == OPEN
    assert breaker.retry_in() == pytest.approx(0.1)


def test_a_half_open_breaker_lets_one_probe_through_and_closes_when_it_answers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5.0, clock=clock)
    breaker.failed()
    clock.advance(5.0)
    assert breaker.state == HALF_OPEN and not breaker.blocked()
    assert breaker.allow()  # the probe
    assert breaker.blocked() and not breaker.allow() and not breaker.allow()  # the others
    assert breaker.state == HALF_OPEN
    clock.advance(60)  # however long the probe takes, only it decides
    assert not breaker.allow()
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.allow() and breaker.allow()


def test_a_failed_probe_opens_the_breaker_for_another_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3.0, clock=clock)
    breaker.failed()
    clock.advance(3.0)
    assert breaker.allow()
    clock.advance(2.0)  # the probe ran 2 s, then timed out
    breaker.failed()
    assert breaker.state == OPEN and not breaker.allow()
    assert breaker.retry_in() == pytest.approx(3.0)  # from the probe's failure
    clock.advance(3.0)
    assert breaker.allow()


def test_a_breaker_is_thread_safe_one_probe_among_many_callers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1.0, clock=clock)
    breaker.failed()
    clock.advance(1.0)
    start = threading.Barrier(16)
    allowed: list[bool] = []

    def ask() -> None:
        start.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert allowed.count(True) == 1 and len(allowed) == 16


# ---------------------------------------------------------------- the client


class Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"fake {self._code.name}"


class FakeStub:
    """A replica: `behaviour(request)` answers or raises; every call is counted."""

    def __init__(self, behaviour: Callable[[Any], Any]) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(request: Any, timeout: float, metadata: Any) -> Any:
            self.calls += 1
            return self.behaviour(request)

        return call


def answers(request: Any) -> Any:
    return pb.Inspection(inspection_code="JC-1", enterprise_name="厂")


def stalls(request: Any) -> Any:
    raise Failed(grpc.StatusCode.DEADLINE_EXCEEDED)


def client_of(*stubs: FakeStub, clock: FakeClock, **options: Any) -> RulesClient:
    address = ",".join(f"127.0.0.1:{9 + i}" for i in range(len(stubs)))
    client = RulesClient(address, clock=clock, **options)
    for replica, stub in zip(client._replicas, stubs, strict=True):
        replica.stub = stub  # type: ignore[assignment]
    return client


def test_after_a_timeout_calls_fail_fast_without_asking_then_one_probe_closes_it() -> None:
    clock = FakeClock()
    replica = FakeStub(stalls)
    client = client_of(replica, clock=clock, breaker_seconds=5.0)

    with pytest.raises(RulesUnavailable) as first:
        client.verify_code("JC-1")
    assert first.value.status == "DEADLINE_EXCEEDED" and replica.calls == 1

    for _ in range(10):  # refused at once: the replica is not asked
        with pytest.raises(RulesUnavailable) as refused:
            client.verify_code("JC-1")
        assert refused.value.status == "UNAVAILABLE" and refused.value.unreachable
        assert refused.value.retry_after is not None and 1 <= refused.value.retry_after <= 5
    assert replica.calls == 1
    assert client.breaker_states() == {"127.0.0.1:9": OPEN}

    clock.advance(5.0)
    replica.behaviour = answers  # rules is back
    found = client.verify_code("JC-1")  # the probe
    assert found is not None and found.code == "JC-1" and replica.calls == 2
    assert client.breaker_states() == {"127.0.0.1:9": CLOSED}
    for _ in range(3):
        assert client.verify_code("JC-1") is not None
    assert replica.calls == 5


def test_a_refusal_the_replica_answers_is_an_answer_not_a_failure() -> None:
    clock = FakeClock()

    def not_found(request: Any) -> Any:
        raise Failed(grpc.StatusCode.NOT_FOUND)

    replica = FakeStub(not_found)
    client = client_of(replica, clock=clock)
    for _ in range(3):
        assert client.verify_code("JC-404") is None  # NOT_FOUND: no such code
        with pytest.raises(RulesRejected):
            client.whitelist_sizes("义乌市", "2026-01", "2026-02")
    assert replica.calls == 6 and client.breaker_states() == {"127.0.0.1:9": CLOSED}


def test_a_stalled_replica_is_skipped_while_the_other_answers() -> None:
    clock = FakeClock()
    stalled, healthy = FakeStub(stalls), FakeStub(answers)
    client = client_of(stalled, healthy, clock=clock, breaker_seconds=5.0)
    for _ in range(8):
        assert client.verify_code("JC-1") is not None
    assert stalled.calls == 1  # timed out once (that call went on to the other), then skipped
    assert healthy.calls == 8
    assert client.breaker_states() == {"127.0.0.1:9": OPEN, "127.0.0.1:10": CLOSED}

    clock.advance(5.0)
    stalled.behaviour = answers
    for _ in range(4):
        assert client.verify_code("JC-1") is not None
    assert stalled.calls >= 2  # probed, and back in the rotation
    assert client.breaker_states() == {"127.0.0.1:9": CLOSED, "127.0.0.1:10": CLOSED}


def test_every_replica_open_refuses_at_once_with_the_earliest_probe_as_hint() -> None:
    clock = FakeClock()
    a, b = FakeStub(stalls), FakeStub(stalls)
    client = client_of(a, b, clock=clock, breaker_seconds=10.0)
    with pytest.raises(RulesUnavailable):
        client.verify_code("JC-1")  # both asked, both stalled
    assert (a.calls, b.calls) == (1, 1)
    clock.advance(4)
    with pytest.raises(RulesUnavailable) as refused:
        client.verify_code("JC-1")
    assert refused.value.status == "UNAVAILABLE"
    assert refused.value.retry_after == pytest.approx(6.0)
    assert (a.calls, b.calls) == (1, 1)


def test_no_more_than_max_calls_wait_on_a_stalled_rules_service_at_once() -> None:
    clock = FakeClock()
    release = threading.Event()

    def hangs(request: Any) -> Any:
        release.wait(60)  # stalled until the test lets it go
        return answers(request)

    replica = FakeStub(hangs)
    client = client_of(replica, clock=clock, max_calls=2, slot_wait=0.0)
    results: list[object] = []

    def ask() -> None:
        try:
            results.append(client.verify_code("JC-1"))
        except RulesUnavailable as exc:
            results.append(exc)

    waiting = [threading.Thread(target=ask) for _ in range(2)]
    for t in waiting:
        t.start()
    wait_until(lambda: replica.calls == 2, timeout=30)
    assert client.waiting() == 2

    for _ in range(5):  # past the bound: refused at once, the replica not asked
        with pytest.raises(RulesUnavailable) as refused:
            client.verify_code("JC-1")
        assert refused.value.status == "UNAVAILABLE"
    assert replica.calls == 2 and not results  # the two are still waiting

    release.set()
    for t in waiting:
        t.join(timeout=30)
    assert len(results) == 2 and all(not isinstance(r, Exception) for r in results)
    assert client.waiting() == 0
    assert client.verify_code("JC-1") is not None  # slots given back


def test_a_call_waits_briefly_for_a_slot_a_healthy_call_frees() -> None:
    clock = FakeClock()
    entered, release = threading.Event(), threading.Event()

    def first_hangs(request: Any) -> Any:
        if not entered.is_set():
            entered.set()
            release.wait(60)
        return answers(request)

    replica = FakeStub(first_hangs)
    client = client_of(replica, clock=clock, max_calls=1, slot_wait=60.0)
    holder = threading.Thread(target=client.verify_code, args=("JC-1",))
    holder.start()
    entered.wait(30)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(client.verify_code("JC-2")))
    waiter.start()
    release.set()  # the slot's holder answers: the waiter takes the slot
    holder.join(timeout=30)
    waiter.join(timeout=30)
    assert len(got) == 1 and got[0] is not None and replica.calls == 2


def test_a_waiter_gives_up_at_once_when_the_slot_holder_opens_the_breaker() -> None:
    clock = FakeClock()
    entered, release = threading.Event(), threading.Event()

    def stalls_when_released(request: Any) -> Any:
        entered.set()
        release.wait(60)
        raise Failed(grpc.StatusCode.DEADLINE_EXCEEDED)

    replica = FakeStub(stalls_when_released)
    client = client_of(replica, clock=clock, max_calls=1, slot_wait=600.0)
    got: list[BaseException] = []

    def hold() -> None:
        try:
            client.firm("x")
        except RulesUnavailable as exc:
            got.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(30)

    def wait_for_slot() -> None:
        try:
            client.verify_code("JC-2")
        except RulesUnavailable as exc:
            got.append(exc)

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    release.set()  # the holder times out: its breaker opens, the waiter is refused
    holder.join(timeout=30)
    waiter.join(timeout=30)  # not the 600 s slot wait
    assert not waiter.is_alive()
    assert [type(e) for e in got] == [RulesUnavailable, RulesUnavailable]
    assert {getattr(e, "status", "") for e in got} == {"DEADLINE_EXCEEDED", "UNAVAILABLE"}
    assert replica.calls == 1


def test_with_its_peer_open_a_replica_may_take_every_slot() -> None:
    """Review 50 F3: with one of two replicas down, the healthy one kept its half of the
    slots (2 of 4) and booking answered half the calls one replica alone would have."""
    clock = FakeClock()
    release = threading.Event()

    def hangs(request: Any) -> Any:
        release.wait(60)
        return answers(request)

    down, healthy = FakeStub(stalls), FakeStub(hangs)
    client = client_of(down, healthy, clock=clock, max_calls=4, slot_wait=0.0)
    healthy.behaviour = answers
    assert client.verify_code("JC-1") is not None  # `down` times out: its breaker opens
    assert client.breaker_states()["127.0.0.1:9"] == OPEN
    healthy.behaviour = hangs
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.verify_code("JC-1")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    wait_until(lambda: client.waiting() == 4, timeout=30)  # all four on the healthy one
    with pytest.raises(RulesUnavailable):  # and no more than max_calls
        client.verify_code("JC-1")
    release.set()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4 and down.calls == 1


class Refused(Failed):
    """UNAVAILABLE as a live rules process sends it: a retry hint in the trailers."""

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after", "1"),)


def test_a_live_servers_own_unavailable_opens_no_breaker() -> None:
    """Review 50 F4: rules' own "database busy, retry in 1 s" (or a draining process)
    opened the breaker, refusing every rules call for 5 s; a connection that fails does."""
    clock = FakeClock()

    def busy(request: Any) -> Any:
        raise Refused(grpc.StatusCode.UNAVAILABLE)

    replica = FakeStub(busy)
    client = client_of(replica, clock=clock, breaker_seconds=5.0)
    with pytest.raises(RulesUnavailable):
        client.verify_code("JC-1")
    assert client.breaker_states() == {"127.0.0.1:9": CLOSED}
    replica.behaviour = answers
    assert client.verify_code("JC-1") is not None  # asked again at once
    replica.behaviour = lambda request: (_ for _ in ()).throw(Failed(grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(RulesUnavailable):
        client.verify_code("JC-1")  # no answer from the server: the breaker opens
    assert client.breaker_states() == {"127.0.0.1:9": OPEN}


def test_a_breaker_of_zero_seconds_is_off() -> None:
    """Review 50 N2: `--rules-breaker-seconds 0` went half-open after a failure and refused
    every other call while its probe ran."""
    breaker = CircuitBreaker(0.0, clock=FakeClock())
    breaker.failed()
    assert breaker.state == CLOSED and not breaker.blocked() and breaker.allow()
