"""Token buckets keyed by caller, QR token or remote address (thread-safe, in memory).

Per process: a deployment with several processes behind a balancer multiplies the
limits by the process count, which is the usual trade for needing no shared store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float

    @classmethod
    def per_minute(cls, count: float, burst: float | None = None) -> Rate:
        return cls(count / 60.0, burst if burst is not None else count)


class RateLimiter:
    """`check(key)` → (allowed, seconds to wait); idle buckets are forgotten."""

    def __init__(
        self, rate: Rate, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def check(self, key: str, cost: float = 1.0, rate: Rate | None = None) -> tuple[bool, float]:
        """`rate`: this key's own rate (a batch caller's, from the tokens file)."""
        rate = rate or self.rate
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (rate.burst, now))
            tokens = min(rate.burst, tokens + (now - last) * rate.per_second)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                allowed, wait = True, 0.0
            else:
                self._buckets[key] = (tokens, now)
                allowed, wait = False, (cost - tokens) / rate.per_second
            if len(self._buckets) > self._max_keys:
                self._forget_full(now)
        return allowed, wait

    def peek(self, key: str, cost: float = 1.0) -> tuple[bool, float]:
        """`check(key, cost)`'s answer without taking anything: whether the key has
        `cost` left now, else the seconds until it has."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.rate.burst, now))
        tokens = min(self.rate.burst, tokens + (now - last) * self.rate.per_second)
        if tokens >= cost:
            return True, 0.0
        return False, (cost - tokens) / self.rate.per_second

    def refund(self, key: str, cost: float = 1.0) -> None:
        """Give back what `check(key, cost)` took, for work that was not done after all
        (never beyond the burst)."""
        with self._lock:
            if key in self._buckets:
                tokens, last = self._buckets[key]
                self._buckets[key] = (min(self.rate.burst, tokens + cost), last)

    def _forget_full(self, now: float) -> None:
        full = [
            k
            for k, (t, last) in self._buckets.items()
            if t + (now - last) * self.rate.per_second >= self.rate.burst
        ]
        for key in full:
            del self._buckets[key]
