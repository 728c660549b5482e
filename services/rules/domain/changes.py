"""The change feed: what other systems hear about a firm, in the order it happened.

A change is recorded in the transaction that makes it (adapters/feed.py) and gets its
feed position only once it is committed and picked up, so a follower reading positions
in order never skips a change that committed late. Positions only grow; per firm they
follow commit order, because every writer of a firm holds the firm's row lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import FieldViolation, ValidationError


class ChangeKind(StrEnum):
    DECISION_CHANGED = "decision_changed"  # status, colour or white-list blockers changed
    WHITELIST_GRANTED = "whitelist_granted"
    WHITELIST_EXTENDED = "whitelist_extended"
    WHITELIST_EXPIRED = "whitelist_expired"
    WHITELIST_REVOKED = "whitelist_revoked"
    INSPECTION_ALLOWED = "inspection_allowed"
    INSPECTION_DENIED = "inspection_denied"
    EVENT_APPLIED = "event_applied"


# Within one transaction: the event first, then what it caused.
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
    position: int | None = None  # the feed cursor, set when a committed change is picked up


_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def subject_token(region: str) -> str:
    """A NATS subject token for a region: itself when it is plain ASCII letters, digits,
    `_` or `-`, otherwise `x` + the hex of its UTF-8 bytes (稠城街道 →
    xe7a8a0e59f8ee8a197e98193): reversible and free of `.`, `*`, `>` and spaces."""
    if _SAFE_TOKEN.match(region):
        return region
    return "x" + region.encode("utf-8").hex()


def parse_cursor(text: str, field_name: str = "after_cursor") -> int:
    """A cursor is the decimal position of the last change a follower has; empty is 0."""
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValidationError(
            [
                FieldViolation(
                    field_name, f"must be a cursor returned by the feed, got {text[:20]!r}"
                )
            ]
        )
    return int(text)
