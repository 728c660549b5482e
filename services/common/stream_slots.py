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

A write stream's slot is given back as soon as gRPC reports its call ended (`CallSlot`,
its `ended` registered with `context.add_callback`), not when its handler next looks; a
follower's is held until its thread has ended, the call's end waking the thread (review
61 R61-2, `Followers`). A stream asked for while no slot is free waits a moment for one
(`GRACE_SECONDS`): a client that cancels a stream and opens the next at once may be
heard opening it before the server has heard it cancel, and would otherwise be refused
for the stream it just left. Since a waiting stream holds the thread its call runs on,
only a few wait at once (`waiting`; for followers only a caller that holds a slot,
`holders_only`: review 61 R61-3).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from services.common.errors import PreconditionFailed, RateLimited

# how long a stream asked for while no slot is free waits for one to be given back (a
# client that cancels its stream and reconnects at once may be heard reconnecting first)
GRACE_SECONDS = 1.0


class CallerShares:
    """`limit` long-lived streams of one kind at once, and one caller at most half of
    them (at least one): a caller that keeps opening streams (a leaky client) is refused
    before it holds every slot. `enter(caller)` before, `leave(caller)` after, or `hold`.
    The refusals say why (`busy`: every slot taken; `crowded`: the caller's share) and
    what to do instead."""

    def __init__(
        self,
        what: str,
        limit: int,
        busy: str,
        crowded: str,
        *,
        grace: float = 0.0,
        waiting: int | None = None,
        holders_only: bool = False,
    ) -> None:
        """`grace`: how long a stream asked for when no slot is free waits for one to be
        given back before it is refused (a client that cancels a stream and opens the
        next at once may be heard opening it before the server has heard it cancel).
        `waiting`: how many such streams may wait at once (None: any); the others are
        refused at once (a waiting stream holds the thread its call runs on).
        `holders_only`: only a caller that holds a slot itself waits (the stream it is
        leaving may be that slot); any other is refused at once."""
        self.what = what
        self.limit = limit
        self.per_caller = max(1, limit // 2)
        self._busy, self._crowded = busy, crowded
        self._grace = grace
        self._most_waiting = waiting
        self._holders_only = holders_only
        self._waiting = 0
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
            if self._refusal(caller) is not None and self._may_wait(caller):
                self._waiting += 1
                try:
                    self._lock.wait_for(lambda: self._refusal(caller) is None, self._grace)
                finally:
                    self._waiting -= 1
            if (refused := self._refusal(caller)) is not None:
                raise refused
            self._open[caller or ""] += 1

    def _may_wait(self, caller: str | None) -> bool:
        """Whether one more stream, of `caller`, may wait for a slot now. Under the lock."""
        if self._grace <= 0:
            return False
        if self._holders_only and not self._open[caller or ""]:
            return False
        return self._most_waiting is None or self._waiting < self._most_waiting

    def waiting_count(self) -> int:
        """Streams waiting for a slot now (tests, logs)."""
        with self._lock:
            return self._waiting

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


class CallSlot:
    """A slot held for one call, given back once: when gRPC reports the call ended
    (`ended`: register it with `context.add_callback`), unless the handler is then doing
    the work the slot stands for (`begin` … `done`: a stream's database write, which
    still commits), and then as that work ends; at the latest when the handler returns
    (`release`). So a client that cancels a stream and opens the next at once finds its
    slot free, while a stream's database worker is never counted free while it writes."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._ended = False
        self._busy = False
        self._wake: Callable[[], None] = lambda: None

    def ended(self) -> None:
        """The call has ended (cancelled, past its deadline, or done): give the slot
        back unless at work, and wake the handler (`waking`) to see it."""
        with self._lock:
            self._ended = True
            busy, wake = self._busy, self._wake
        if not busy:
            self._release()
        wake()

    def waking(self, wake: Callable[[], None]) -> None:
        """What wakes the handler from its wait (for the client's next message) when the
        call ends; called at once when it has ended already."""
        with self._lock:
            self._wake = wake
            ended = self._ended
        if ended:
            wake()

    def begin(self) -> bool:
        """Before the work the slot stands for: False when the call has ended (then do
        not start it: its caller, having gone, cannot learn of it)."""
        with self._lock:
            if self._ended:
                return False
            self._busy = True
            return True

    def done(self) -> None:
        """After that work: the slot is given back now if the call ended meanwhile."""
        with self._lock:
            self._busy = False
            ended = self._ended
        if ended:
            self._release()

    def release(self) -> None:
        """The handler returns: the slot is given back (once, however often called)."""
        self._release()


class StreamSlots(CallerShares):
    """Admission of `what` write streams, each holding a database worker: at most half
    the workers' worth and never more than `most`; `enter(caller)` before, `leave(caller)`
    after, or `hold`. A stream asked for while no slot is free waits up to `grace` seconds
    for one, one stream at a time, and only where a database worker is left for the unary
    calls while it waits (it holds one: 3 or more workers)."""

    def __init__(self, what: str, db_workers: int, most: int, grace: float | None = None) -> None:
        """`grace`: None for GRACE_SECONDS."""
        limit = max(0, min(most, db_workers // 2))
        super().__init__(
            what,
            limit,
            "retry later, or send more events on a stream already open",
            "send more events on a stream already open",
            grace=GRACE_SECONDS if grace is None else grace,
            waiting=1 if db_workers - limit >= 2 else 0,
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
