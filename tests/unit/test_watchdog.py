"""The database watchdog (services/common/db.py): it cuts a connection held past its
deadline and leaves a released one alone, and a checkout's watch wakes its thread only
when that watch is due before every other (a wake at every checkout cost a thread switch
per database call)."""

from __future__ import annotations

import threading
import time
from typing import Any

from services.common.db import Watchdog


class _Connection:
    """Stands for a DB-API connection (cutting it fails, which the watchdog ignores)."""

    def fileno(self) -> int:
        raise OSError("no socket")  # _interrupt's failure is suppressed; fire() still marks


class _CountingCondition:
    """threading.Condition, counting notify() calls."""

    def __init__(self) -> None:
        self._inner = threading.Condition()
        self.notified = 0

    def __enter__(self) -> Any:
        return self._inner.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._inner.__exit__(*exc)

    def wait(self, timeout: float | None = None) -> bool:
        return self._inner.wait(timeout)

    def notify(self) -> None:
        self.notified += 1
        self._inner.notify()


def test_a_watch_due_later_than_another_does_not_wake_the_thread() -> None:
    dog = Watchdog()
    cond = _CountingCondition()
    dog._cond = cond  # type: ignore[assignment]
    dog.watch(_Connection(), 60.0)
    first = cond.notified
    for _ in range(20):
        dog.watch(_Connection(), 120.0)
    assert cond.notified == first  # none of them is due before the first
    dog.watch(_Connection(), 30.0)
    assert cond.notified == first + 1  # due sooner: the thread must wait less


def test_connections_held_past_their_deadline_are_cut_and_released_ones_are_not() -> None:
    dog = Watchdog()
    held = [dog.watch(_Connection(), 0.05 + n * 0.01) for n in range(5)]
    released = [dog.watch(_Connection(), 0.05) for _ in range(3)]
    later = dog.watch(_Connection(), 30.0)
    for guard in released:
        guard.cancel()
    deadline = time.monotonic() + 5
    while not all(g.fired for g in held) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(g.fired for g in held)
    assert not any(g.fired for g in released)
    assert not later.fired
