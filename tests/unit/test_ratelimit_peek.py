"""RateLimiter.peek: check's answer without taking anything (the refused-orders limit
looks before a call, and takes only for a refusal: service_layer/orders.py)."""

from __future__ import annotations

from services.common.ratelimit import Rate, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_peek_answers_as_check_would_and_takes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(per_second=1.0, burst=2), clock=clock)
    assert limiter.peek("k") == (True, 0.0)
    assert limiter.peek("k") == (True, 0.0)  # nothing taken
    limiter.check("k")
    limiter.check("k")
    allowed, wait = limiter.peek("k")
    assert not allowed and wait == 1.0
    assert limiter.check("k") == (False, 1.0)  # the same answer
    clock.now = 1.0
    assert limiter.peek("k") == (True, 0.0)
    assert limiter.check("k")[0]
