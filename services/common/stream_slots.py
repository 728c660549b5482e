"""How many long-lived write streams a server process admits, in all and per caller.

A write stream (the rules service's ReportEventStream) holds one of the process's
database workers for as long as it stays open, idle or not. Left unbounded, a few open
streams would take every worker from the unary calls, which would then wait out their
deadlines on a server that still reports SERVING; and one caller could keep every slot
from the other feeders. So a process admits at most half of its database workers'
worth of streams (and never more than `most`), and one caller at most half of those
(at least one): the rest of the workers always serve unary calls.

The rules service's change-feed followers (WatchChanges, each holding a server thread)
are admitted by the same per-caller rule (`CallerShares`, review 58 F4).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from services.common.errors import PreconditionFailed, RateLimited


class CallerShares:
    """`limit` long-lived streams of one kind at once, and one caller at most half of
    them (at least one): a caller that keeps opening streams (a leaky client) is refused
    before it holds every slot. `enter(caller)` before, `leave(caller)` after, or `hold`.
    The refusals say why (`busy`: every slot taken; `crowded`: the caller's share) and
    what to do instead."""

    def __init__(
        self, what: str, limit: int, busy: str, crowded: str, *, grace: float = 0.0
    ) -> None:
        """`grace`: how long a stream asked for when no slot is free waits for one to be
        given back before it is refused (a client that cancels a stream and opens the
        next at once may be heard opening it before the server has heard it cancel)."""
        self.what = what
        self.limit = limit
        self.per_caller = max(1, limit // 2)
        self._busy, self._crowded = busy, crowded
        self._grace = grace
        self._open: Counter[str] = Counter()
        self._lock = threading.Condition()

    def _refusal(self, caller: str | None) -> RateLimited | None:
        """Why a slot for `caller` cannot be taken now (None: it can). Under the lock."""
        if sum(self._open.values()) >= self.limit:
            return RateLimited(
                f"at most {self.limit} {self.what} streams per process; {self._busy}",
                retry_after=5,
            )
        if caller is not None and self._open[caller] >= self.per_caller:
            return RateLimited(
                f"at most {self.per_caller} {self.what} stream(s) per caller at once; "
                f"{self._crowded}",
                retry_after=5,
            )
        return None

    def enter(self, caller: str | None) -> None:
        """Take a slot for `caller` (None: a server without tokens, where callers are not
        told apart), or raise RateLimited when the slots, or this caller's share of them,
        are taken (and stay so for the grace)."""
        with self._lock:
            self._lock.wait_for(lambda: self._refusal(caller) is None, timeout=self._grace)
            if (refused := self._refusal(caller)) is not None:
                raise refused
            self._open[caller or ""] += 1

    def leave(self, caller: str | None) -> None:
        with self._lock:
            self._open[caller or ""] -= 1
            if self._open[caller or ""] <= 0:
                del self._open[caller or ""]
            self._lock.notify_all()

    def hold(self, caller: str | None) -> Callable[[], None]:
        """`enter(caller)`, and the slot's release: call it as often as you like (when
        the call ends, and again when its handler returns), it gives the slot back once."""
        self.enter(caller)
        released = threading.Lock()

        def release() -> None:
            if released.acquire(blocking=False):
                self.leave(caller)

        return release

    def open_count(self) -> int:
        """Slots held now (tests, logs)."""
        with self._lock:
            return sum(self._open.values())


class StreamSlots(CallerShares):
    """Admission of `what` write streams, each holding a database worker: at most half
    the workers' worth and never more than `most`; `enter(caller)` before, `leave(caller)`
    after."""

    def __init__(self, what: str, db_workers: int, most: int) -> None:
        super().__init__(
            what,
            max(0, min(most, db_workers // 2)),
            "retry later, or send more events on a stream already open",
            "send more events on a stream already open",
        )
        self.db_workers = db_workers

    def enter(self, caller: str | None) -> None:
        """As `CallerShares.enter`, and PreconditionFailed when this process holds no
        stream at all (fewer than 2 database workers)."""
        if self.limit == 0:
            raise PreconditionFailed(
                f"this server has {self.db_workers} database worker(s), too few to hold a "
                f"{self.what} open (it needs --db-workers 2 or more); send the events one "
                "by one (ReportEvent)"
            )
        super().enter(caller)
