"""The rules client waits on rules no longer than booking's own caller does: a call made
within a caller's deadline (`context.deadline_in`, which booking's gRPC server sets per
call from the call's deadline) gets the smaller of the client's timeout and the time the
caller has left; a call without one (the pages, the command line, the outbox worker) keeps
the fixed timeout. Once the caller's time is up the client stops, and the breaker does
not count that against the replica.

No servers: the replicas' stubs are fakes that record the timeout each call was given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from services.booking.adapters.circuit_breaker import CLOSED, OPEN
from services.booking.domain.rules_service import RulesUnavailable
from services.common.context import deadline_in
from services.common.errors import DeadlineExceeded
from tests.unit.booking.test_rules_breaker import Failed, FakeClock, answers, client_of, stalls

TIMEOUT = 5.0


class TimedStub:
    """A replica that records the timeout of every call, then answers or raises."""

    def __init__(self, behaviour: Callable[[Any], Any]) -> None:
        self.behaviour = behaviour
        self.timeouts: list[float] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(request: Any, timeout: float, metadata: Any) -> Any:
            self.timeouts.append(timeout)
            return self.behaviour(request)

        return call


def test_without_a_callers_deadline_the_fixed_timeout_is_used() -> None:
    replica = TimedStub(answers)
    client = client_of(replica, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    client.verify_code("JC-1")
    assert replica.timeouts == [TIMEOUT]


def test_a_caller_with_less_time_left_bounds_the_call() -> None:
    replica = TimedStub(answers)
    client = client_of(replica, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    with deadline_in(1.5):
        client.verify_code("JC-1")
    [timeout] = replica.timeouts
    assert 0 < timeout <= 1.5


def test_a_caller_with_more_time_left_keeps_the_fixed_timeout() -> None:
    replica = TimedStub(answers)
    client = client_of(replica, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    with deadline_in(60):
        client.verify_code("JC-1")
    assert replica.timeouts == [TIMEOUT]


def test_a_caller_whose_time_is_up_is_not_served_and_rules_is_not_asked() -> None:
    replica = TimedStub(answers)
    client = client_of(replica, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    with deadline_in(0), pytest.raises(DeadlineExceeded):
        client.verify_code("JC-1")
    assert replica.timeouts == [] and client.waiting() == 0


def test_a_call_cut_by_the_callers_deadline_opens_no_breaker_and_asks_no_other_replica() -> None:
    first, second = TimedStub(stalls), TimedStub(answers)
    client = client_of(first, second, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    with deadline_in(1.0), pytest.raises(DeadlineExceeded):
        client.verify_code("JC-1")
    assert len(first.timeouts) == 1 and second.timeouts == []  # the caller has given up
    assert set(client.breaker_states().values()) == {CLOSED}
    assert client.waiting() == 0
    client.verify_code("JC-1")  # the next caller is served by the next replica
    assert second.timeouts == [TIMEOUT]


def test_a_stall_past_the_fixed_timeout_still_opens_the_breaker() -> None:
    replica = TimedStub(stalls)
    client = client_of(replica, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    with deadline_in(60), pytest.raises(RulesUnavailable) as info:
        client.verify_code("JC-1")
    assert info.value.status == "DEADLINE_EXCEEDED"
    assert client.breaker_states() == {"127.0.0.1:9": OPEN}


def test_a_probe_cut_by_its_callers_deadline_leaves_the_next_call_to_probe() -> None:
    clock = FakeClock()
    replica = TimedStub(stalls)
    client = client_of(replica, clock=clock, timeout=TIMEOUT, breaker_seconds=5.0)  # type: ignore[arg-type]
    with pytest.raises(RulesUnavailable):
        client.verify_code("JC-1")  # a real stall: open
    clock.advance(5.0)
    with deadline_in(1.0), pytest.raises(DeadlineExceeded):
        client.verify_code("JC-1")  # the probe, cut short by its caller
    replica.behaviour = answers
    assert client.verify_code("JC-1") is not None  # probes again at once, and closes
    assert client.breaker_states() == {"127.0.0.1:9": CLOSED}


def test_a_refusal_the_replica_answers_is_still_its_own_status() -> None:
    def not_found(request: Any) -> Any:
        raise Failed(grpc.StatusCode.NOT_FOUND)

    replica = TimedStub(not_found)
    client = client_of(replica, clock=FakeClock(), timeout=TIMEOUT)  # type: ignore[arg-type]
    with deadline_in(1.0):
        assert client.verify_code("JC-404") is None
