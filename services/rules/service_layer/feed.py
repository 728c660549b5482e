"""WatchChanges as a use case: replay from a cursor, then follow live changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from services.common.stream_slots import GRACE_SECONDS, CallerShares
from services.rules.adapters.feed import FeedHead, FeedStore
from services.rules.domain.changes import (
    Change,
    Cursor,
    ResyncCause,
    ResyncRequired,
    format_cursor,
    parse_cursor,
)

POLL_SECONDS = 0.5  # a replica sees another replica's commits within this
_RECONCILE = (
    "read the state you keep again (ListEnterprises, ListWhitelist) and follow from the "
    "feed_cursor of their first page"
)


# how long a follower asking for a slot waits for one to be given back: a follower that
# cancels its stream and reconnects at once (to resume from its cursor) may be heard
# reconnecting before the server has heard it cancel
SLOT_GRACE_SECONDS = GRACE_SECONDS


class Followers(CallerShares):
    """Bounds how many followers hold a server thread each (a stream is a thread): at
    most `limit` in a process, and one caller at most half of them (at least one), so a
    follower that leaks streams does not lock the other systems out (review 58 F4).

    A slot is held until the stream's thread has ended, not merely its call (review 61
    R61-2): the thread of a cancelled stream may still wait for the database, and a
    follower that cancels and reconnects in a loop would otherwise hold a thread for
    every stream it left. The thread sees the cancel at once wherever it waits (the
    feed's wait for news, the SQLite write lock), so the slot comes back soon.

    A stream asked for while no slot is free waits up to SLOT_GRACE_SECONDS, but only
    when its caller holds a slot itself (it may be reconnecting from a stream the server
    has not yet heard it cancel, the case the wait exists for) and only one at a time in
    a process: a waiting stream holds a thread of the pool Evaluate runs on, so a storm
    of refused followers must not take them (review 61 R61-3). Any other is refused at
    once with RESOURCE_EXHAUSTED and retry-after, and retries."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            "WatchChanges",
            limit,
            "retry later or subscribe on NATS JetStream",
            "one stream follows every region, or the regions of a county, at once; or "
            "subscribe on NATS JetStream",
            grace=SLOT_GRACE_SECONDS,
            waiting=1,
            holders_only=True,
        )


def _too_old(cursor: str, pruned: int, epoch: int) -> ResyncRequired:
    return ResyncRequired(
        f"cursor {cursor} is older than the feed's retention (changes up to position "
        f"{pruned} were pruned); {_RECONCILE}",
        ResyncCause.PRUNED,
        cursor,
        epoch,
    )


def _ahead(cursor: str, head: FeedHead) -> ResyncRequired:
    return ResyncRequired(
        f"cursor {cursor} is ahead of the feed, whose last change is at position "
        f"{head.last}: this feed never gave it (the database was restored from an older "
        f"backup, or the cursor is another deployment's); {_RECONCILE}",
        ResyncCause.AHEAD,
        cursor,
        head.epoch,
    )


def _other_epoch(cursor: str, epoch: int | None, head: FeedHead) -> ResyncRequired:
    return ResyncRequired(
        f"cursor {cursor} is of another feed (epoch {epoch}; this feed's is {head.epoch}): "
        "this feed's epoch was renewed after the cursor was given (its database was "
        "restored from a backup, or an operator ran renew-feed-epoch), or the cursor is "
        "another deployment's, and the changes after it may never come; "
        f"{_RECONCILE}",
        ResyncCause.OTHER_EPOCH,
        cursor,
        head.epoch,
    )


def _bare_beyond(cursor: str, head: FeedHead) -> ResyncRequired:
    return ResyncRequired(
        f"cursor {cursor} was given before this feed's cursors named its epoch, and it lies "
        f"beyond position {head.bare_limit}, the last this feed shares with the feed that "
        "gave it (the database was restored from a backup since, or it is a new database, "
        f"or the cursor is another deployment's); {_RECONCILE}",
        ResyncCause.BARE_BEYOND,
        cursor,
        head.epoch,
    )


def _renewed(head: FeedHead) -> ResyncRequired:
    """A stream ended by a renewed epoch (review 61 R61-6: it said "restored from a
    backup" after an operator's `renew-feed-epoch` on a live database). The cause stays
    RESTORED, the one callers know: the feed cannot tell a renewal for a restore it did
    not detect from one made for another reason, and a follower does the same either
    way (reads its state again)."""
    return ResyncRequired(
        f"this feed's epoch was renewed while you followed (it is now {head.epoch}): its "
        "database was restored from a backup, or an operator ran renew-feed-epoch; the "
        f"cursors it gave before no longer hold; {_RECONCILE}",
        ResyncCause.RESTORED,
        "",
        head.epoch,
    )


def current_cursor(store: FeedStore) -> str:
    """The cursor of the feed's last change, now (its epoch renewed first when the
    database was restored). Every change up to it has committed, so state read after this
    shows them all, and a follower that keeps that state follows the feed from here: a
    change after it, or committed and not yet positioned, gets a later position. The
    list RPCs answer with it on their first page (`feed_cursor`)."""
    head = store.read_head()
    return format_cursor(head.epoch, head.last)


def admitted(text: str, cursor: Cursor, head: FeedHead) -> int:
    """The position to follow after, for the cursor `text` (parsed: `cursor`), judged by
    the feed's `head`; FAILED_PRECONDITION for a cursor this feed cannot vouch for, since
    following it would silently skip changes:

    * a cursor of another epoch (the database restored since it was given, or another
      deployment's feed, which counts from 1 too: review 58 F1);
    * one beyond the last position given;
    * a bare position (given before cursors named the epoch: still accepted, CHANGELOG)
      beyond the last position this feed shares with the feed that gave it
      (`FeedHead.bare_limit`);
    * one below the pruned positions.

    An empty cursor starts after the pruned ones."""
    if cursor.epoch is not None and cursor.epoch != head.epoch:
        raise _other_epoch(text, cursor.epoch, head)
    if cursor.position > head.last:
        raise _ahead(text, head)
    if cursor.epoch is None and cursor.position > head.bare_limit:
        raise _bare_beyond(text, head)
    if text and cursor.position < head.pruned:
        raise _too_old(text, head.pruned, head.epoch)
    return max(cursor.position, head.pruned)


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
    services/common/regions.py region_filter). The cursor is judged first (`admitted`);
    each change comes with the feed's epoch, so its `cursor` names it. The stream ends
    with FAILED_PRECONDITION when the changes it would read next were pruned, or when the
    feed's epoch is renewed under it (a restore)."""
    cursor = parse_cursor(after_cursor)
    store.sequence()  # the cursor judged by every change committed so far
    head = store.head()
    after = admitted(after_cursor, cursor, head)
    epoch = head.epoch
    while active():
        store.sequence()  # any follower may position what has committed
        found = store.read(after, regions, batch)
        now = store.head()  # after the read: what was read is of this epoch, unpruned
        if now.epoch != epoch:
            raise _renewed(now)
        if now.pruned > after:  # pruned while we were reading
            raise _too_old(format_cursor(epoch, after), now.pruned, epoch)
        for change in found:
            yield replace(change, epoch=epoch)
            assert change.position is not None
            after = change.position
        if len(found) < batch:
            store.wait(POLL_SECONDS)
