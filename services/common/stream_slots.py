"""How many long-lived write streams a server process admits, in all and per caller.

A write stream (the rules service's ReportEventStream) holds one of the process's
database workers for as long as it stays open, idle or not. Left unbounded, a few open
streams would take every worker from the unary calls, which would then wait out their
deadlines on a server that still reports SERVING; and one caller could keep every slot
from the other feeders. So a process admits at most half of its database workers'
worth of streams (and never more than `most`), and one caller at most half of those
(at least one): the rest of the workers always serve unary calls.
"""

from __future__ import annotations

import threading
from collections import Counter

from services.common.errors import PreconditionFailed, RateLimited


class StreamSlots:
    """Admission of `what` streams: `enter(caller)` before, `leave(caller)` after."""

    def __init__(self, what: str, db_workers: int, most: int) -> None:
        self.what = what
        self.db_workers = db_workers
        self.limit = max(0, min(most, db_workers // 2))
        self.per_caller = max(1, self.limit // 2)
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def enter(self, caller: str | None) -> None:
        """Take a slot for `caller` (None: a server without tokens, where callers are not
        told apart), or raise: PreconditionFailed when this process holds no stream at
        all (fewer than 2 database workers), RateLimited when the slots, or this caller's
        share of them, are taken."""
        if self.limit == 0:
            raise PreconditionFailed(
                f"this server has {self.db_workers} database worker(s), too few to hold a "
                f"{self.what} open (it needs --db-workers 2 or more); send the events one "
                "by one (ReportEvent)"
            )
        with self._lock:
            if sum(self._open.values()) >= self.limit:
                raise RateLimited(
                    f"at most {self.limit} {self.what} streams per process; retry later, "
                    "or send more events on a stream already open",
                    retry_after=5,
                )
            if caller is not None and self._open[caller] >= self.per_caller:
                raise RateLimited(
                    f"at most {self.per_caller} {self.what} stream(s) per caller at once; "
                    "send more events on a stream already open",
                    retry_after=5,
                )
            self._open[caller or ""] += 1

    def leave(self, caller: str | None) -> None:
        with self._lock:
            self._open[caller or ""] -= 1
            if self._open[caller or ""] <= 0:
                del self._open[caller or ""]
