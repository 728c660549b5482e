"""WatchChanges as a use case: replay from a cursor, then follow live changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from services.common.errors import RateLimited
from services.rules.adapters.feed import FeedStore
from services.rules.domain.changes import Change, parse_cursor
from services.rules.domain.errors import PreconditionFailed

POLL_SECONDS = 0.5  # a replica sees another replica's commits within this


class Followers:
    """Bounds how many followers hold a server thread each (a stream is a thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def enter(self) -> None:
        if not self._slots.acquire(blocking=False):
            raise RateLimited(
                f"at most {self.limit} WatchChanges streams per process; retry later or "
                "subscribe on NATS JetStream",
                retry_after=5,
            )

    def leave(self) -> None:
        self._slots.release()


def _too_old(after: int, pruned: int) -> PreconditionFailed:
    return PreconditionFailed(
        f"cursor {after} is older than the feed's retention (changes up to {pruned} were "
        "pruned); start again from an empty cursor and reconcile with GetEnterpriseStatus"
    )


def _ahead(after: int, last: int) -> PreconditionFailed:
    return PreconditionFailed(
        f"cursor {after} is ahead of the feed, whose last change is {last}: this feed never "
        "gave it (the database was restored from an older backup, or the cursor is another "
        "deployment's); start again from an empty cursor and reconcile with "
        "GetEnterpriseStatus"
    )


def follow(
    store: FeedStore,
    after_cursor: str,
    regions: Sequence[str],
    active: Callable[[], bool],
    *,
    batch: int = 200,
) -> Iterator[Change]:
    """Every change after the cursor in feed order, then new ones as they commit, until
    `active()` turns false; `regions` (empty: all) are the stored names to follow (see
    services/common/regions.py region_filter). A cursor below the pruned position is
    FAILED_PRECONDITION, and so is one beyond the last position given: following it would
    silently skip every change until the feed caught up with it."""
    after = parse_cursor(after_cursor)
    pruned, last = store.bounds()
    if after_cursor and after < pruned:
        raise _too_old(after, pruned)
    if after > last:
        raise _ahead(after, last)
    after = max(after, pruned)
    while active():
        store.sequence()  # any follower may position what has committed
        found = store.read(after, regions, batch)
        if (pruned := store.pruned_through()) > after:  # pruned while we were reading
            raise _too_old(after, pruned)
        for change in found:
            yield change
            assert change.position is not None
            after = change.position
        if len(found) < batch:
            store.wait(POLL_SECONDS)
