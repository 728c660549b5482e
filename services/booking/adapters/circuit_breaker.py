"""A circuit breaker: after a dependency failed to answer, stop waiting on it for a while.

One breaker guards one remote endpoint (the rules client keeps one per rules replica).

- **closed**: calls go through. A call that finds the endpoint unreachable or stalled
  (the caller decides which failures count, and reports them with `failed`) opens it.
- **open** for `open_seconds`: `allow` says no at once, so a caller answers "unavailable,
  try again" instead of holding a thread for the endpoint's timeout.
- **half-open** once that time is up: the next `allow` lets exactly one call through (the
  probe) and refuses the others while it runs. The probe answering (`succeeded`) closes
  the breaker; failing (`failed`) opens it for another `open_seconds`; ending without
  telling either (`released`: its caller's own deadline cut it short) lets the next call
  probe.

Thread-safe. The clock is injected (monotonic seconds), so tests need no sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    def __init__(
        self, open_seconds: float = 5.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if open_seconds < 0:
            raise ValueError("open_seconds must not be negative")
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._reopen_at = 0.0  # OPEN: when the next call may probe

    @property
    def state(self) -> str:
        """closed, open or half-open (an open breaker whose time is up reads half-open)."""
        with self._lock:
            if self._state == OPEN and self._clock() >= self._reopen_at:
                return HALF_OPEN
            return self._state

    def blocked(self) -> bool:
        """Would `allow` refuse now? (Changes nothing: no probe is claimed.)"""
        with self._lock:
            if self._state == OPEN:
                return self._clock() < self._reopen_at
            return self._state == HALF_OPEN  # its one probe is running

    def allow(self) -> bool:
        """May a call go through now? True in the closed state, and for the one call that
        becomes the probe when the open time is up; that call must then report
        `succeeded` or `failed`, or the breaker stays half-open."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and self._clock() >= self._reopen_at:
                self._state = HALF_OPEN
                return True
            return False

    def succeeded(self) -> None:
        """The endpoint answered (any answer, errors included): close."""
        with self._lock:
            self._state = CLOSED

    def released(self) -> None:
        """The call ended without telling whether the endpoint answers (its caller's own
        deadline cut it short): the state stays as it was, and a probe is given back for
        the next call to make."""
        with self._lock:
            if self._state == HALF_OPEN:
                self._state = OPEN
                self._reopen_at = self._clock()

    def failed(self) -> None:
        """The endpoint was unreachable or did not answer in time: open (again); with
        `open_seconds` 0 the breaker is off and stays closed (review 50 N2: it went
        half-open, refusing every other call while its probe ran)."""
        with self._lock:
            if self.open_seconds == 0:
                self._state = CLOSED
                return
            self._state = OPEN
            self._reopen_at = self._clock() + self.open_seconds

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0: not open, or due)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._reopen_at - self._clock())
