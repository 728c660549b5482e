"""The change feed: what other systems hear about a firm, in the order it happened.

A change is recorded in the transaction that makes it (adapters/feed.py) and gets its
feed position only once it is committed and picked up, so a follower reading positions
in order never skips a change that committed late. Positions only grow; per firm they
follow commit order, because every writer of a firm holds the firm's row lock.

A feed also has an epoch (`feed_head.epoch`): a number of its own, made anew when its
database is restored from a backup (`restore`, a detected `pg_restore`, or
`renew-feed-epoch`), so a restored feed, which gives its positions again to other
changes, and another deployment's feed, which counts from 1 too, never take each
other's cursors for their own (review 58 F1). A cursor names both: see `Cursor`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import FieldViolation, PreconditionFailed, ValidationError


class ChangeKind(StrEnum):
    DECISION_CHANGED = "decision_changed"  # status, colour or white-list blockers changed
    WHITELIST_GRANTED = "whitelist_granted"
    WHITELIST_EXTENDED = "whitelist_extended"
    WHITELIST_EXPIRED = "whitelist_expired"
    WHITELIST_REVOKED = "whitelist_revoked"
    INSPECTION_ALLOWED = "inspection_allowed"
    INSPECTION_DENIED = "inspection_denied"
    EVENT_APPLIED = "event_applied"
    # a firm moved to another region (镇街): the old region's row, then the new one's,
    # each with the firm's state after the move (review 58 F2)
    REGION_LEFT = "region_left"
    REGION_JOINED = "region_joined"


# Within one transaction: the event first, then what it caused, the move last.
KIND_ORDER = {kind: i for i, kind in enumerate(ChangeKind)}
KIND_ORDER[ChangeKind.EVENT_APPLIED] = -1


@dataclass(frozen=True)
class Change:
    change_id: str  # unique; the JetStream message id
    kind: ChangeKind
    enterprise_id: str
    region: str
    recorded_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)  # the kind's fields, JSON-shaped
    position: int | None = None  # its feed position, set when a committed change is picked up
    epoch: int | None = None  # the feed's epoch when it was read (a cursor names both)

    @property
    def cursor(self) -> str:
        """What a follower resumes from: the epoch and the position (`format_cursor`)."""
        if self.position is None or self.epoch is None:
            return ""
        return format_cursor(self.epoch, self.position)


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def subject_token(region: str) -> str:
    """A NATS subject token for a region: itself when it is plain ASCII letters, digits,
    `_` or `-`, otherwise `x` + the hex of its UTF-8 bytes (稠城街道 →
    xe7a8a0e59f8ee8a197e98193): reversible and free of `.`, `*`, `>` and spaces."""
    if _SAFE_TOKEN.match(region):
        return region
    return "x" + region.encode("utf-8").hex()


# A cursor stays a decimal number, as the contract has always said (`Change.cursor`):
# the epoch times POSITIONS plus the position. Epochs lie in [EPOCH_LOW, EPOCH_HIGH), so
# every cursor with an epoch has 16 digits and stays below 2**53 (a follower that keeps
# it as a 64-bit integer, or as a JavaScript number, keeps it exactly); cursors given
# before feeds had epochs are bare positions, far below EPOCH_LOW * POSITIONS.
POSITIONS = 10**10  # positions per epoch: ten billion changes (centuries at a county's rate)
EPOCH_LOW, EPOCH_HIGH = 100_000, 900_000
_WITH_EPOCH = EPOCH_LOW * POSITIONS


@dataclass(frozen=True)
class Cursor:
    """Where a follower is: after `position` of the feed of `epoch`; `epoch` None for a
    bare position, a cursor handed out before feeds had epochs."""

    position: int
    epoch: int | None


def new_epoch(other_than: int | None = None) -> int:
    """A random epoch, never `other_than` (the one it replaces)."""
    while (epoch := EPOCH_LOW + secrets.randbelow(EPOCH_HIGH - EPOCH_LOW)) == other_than:
        pass
    return epoch


def format_cursor(epoch: int, position: int) -> str:
    if not EPOCH_LOW <= epoch < EPOCH_HIGH or not 0 <= position < POSITIONS:
        raise ValueError(f"no cursor for position {position} of epoch {epoch}")
    return str(epoch * POSITIONS + position)


def parse_cursor(text: str, field_name: str = "after_cursor") -> Cursor:
    """A cursor returned by the feed (decimal: `format_cursor`), or a bare position given
    before feeds had epochs; empty is the start. Any other text is INVALID_ARGUMENT naming
    `field_name`. Whether the feed ever gave it is the feed's to judge (service_layer)."""
    if not text:
        return Cursor(0, None)
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError(
            [
                FieldViolation(
                    field_name, f"must be a cursor returned by the feed, got {text[:20]!r}"
                )
            ]
        )
    value = int(text)
    if value < _WITH_EPOCH:
        return Cursor(value, None)
    return Cursor(value % POSITIONS, value // POSITIONS)


# A follower whose cursor the feed cannot vouch for must read the state it keeps again
# (the list RPCs) and follow from the cursor they answer with: FAILED_PRECONDITION with a
# google.rpc.ErrorInfo of this reason in ERROR_DOMAIN (stable, README "Change feed"), its
# metadata `cause` one of CAUSES, `cursor` the cursor refused (empty for a stream ended
# under its follower) and `epoch` the feed's epoch now. A client tells this refusal from
# the other FAILED_PRECONDITIONs by the reason, never by the message.
RESYNC_REQUIRED = "RESYNC_REQUIRED"
ERROR_DOMAIN = "rules.v1"


class ResyncCause(StrEnum):
    OTHER_EPOCH = "OTHER_EPOCH"  # another feed's cursor: restored since, or another deployment's
    AHEAD = "AHEAD"  # beyond the feed's last change
    BARE_BEYOND = "BARE_BEYOND"  # a bare position beyond what this feed shares with the old one
    PRUNED = "PRUNED"  # older than the retention (prune-changes)
    RESTORED = "RESTORED"  # the epoch renewed under an open stream (a restore, renew-feed-epoch)


class ResyncRequired(PreconditionFailed):
    """The feed cannot vouch for a follower's cursor (`ResyncCause`): following on would
    silently skip changes."""

    reason = RESYNC_REQUIRED
    domain = ERROR_DOMAIN

    def __init__(self, message: str, cause: ResyncCause, cursor: str, epoch: int) -> None:
        super().__init__(message)
        self.cause = cause
        self.metadata = {"cause": cause.value, "cursor": cursor, "epoch": str(epoch)}
