"""What re-evaluating one stored firm changes, as plain values.

The batch re-evaluation (service_layer/reevaluation.py) reads firms and their open
white-list entries as these values, decides, and hands the outcomes to the batch writer
(adapters/bulk_reevaluation.py), which writes a batch's rows with multi-row statements.
`move_entry` moves an entry exactly as the per-call handlers move an ORM record
(service_layer/register_handlers.py `_moved`, without a revoking event); a test compares
the rows both ways write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.rules.domain import labels
from services.rules.domain.decision import Decision, Status

EXPIRED_REASON = labels.ENTRY_EXPIRED  # words only: an expiry is the move's kind, "expired"
FAILED_PREFIX = "重新评估未通过："


@dataclass(frozen=True, slots=True)
class StoredFirm:
    """A firm of the register as stored: its profile (JSON shape) and its last decision."""

    enterprise_id: str
    name: str
    region: str
    profile: dict[str, Any]
    status: str
    risk_level: str
    decision_id: str | None
    decided_on: date | None = None  # its last decision's as_of
    # the profile's JSON text as read (empty: not known), left out of comparisons: a read
    # of the same row again can tell it unchanged without parsing it (`BatchRegister`)
    stored: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """A white-list entry not yet revoked or expired (at most one per firm)."""

    id: str
    enterprise_id: str
    name: str
    region: str
    granted_on: date
    valid_until: date
    decision_id: str
    revoked_reason: str = ""


@dataclass(frozen=True, slots=True)
class EntryMove:
    """An open entry closed (`expired`, `revoked`) or `extended`, with its new values."""

    entry: OpenEntry
    kind: str
    decision_id: str  # the deciding decision: it closes the entry, or the entry names it
    revoked_on: date | None = None
    revoked_reason: str = ""
    valid_until: date | None = None  # extended: the new end
    name: str = ""  # extended: the firm's name and region, copied again
    region: str = ""


@dataclass(frozen=True, slots=True)
class Reevaluated:
    """One firm's outcome: the new decision and what it moves."""

    firm: StoredFirm
    decision: Decision
    decision_id: str
    decided_at: datetime
    cause: str
    whitelist_change: str
    name: str  # from the stored profile (the firm's columns follow it)
    region: str
    profile: dict[str, Any] | None  # the profile re-stored, when it differs from the stored one
    expired: EntryMove | None = None
    moved: EntryMove | None = None  # revoked or extended
    granted: OpenEntry | None = None


# (whitelist_change, expired, revoked-or-extended, granted): `move_entry`'s answer
Moves = tuple[str, EntryMove | None, EntryMove | None, OpenEntry | None]


def move_entry(
    decision: Decision,
    decision_id: str,
    entry: OpenEntry | None,
    name: str,
    region: str,
    enterprise_id: str,
    new_id: Callable[[], str],
    *,
    today: date,
    by_event: bool = False,
) -> Moves:
    """(whitelist_change, expired, revoked-or-extended, granted) for one decision: an
    entry past its end expires first; a non-white-list decision revokes the open entry;
    a white-list decision extends it, or grants a new one (its id from `new_id`).

    `by_event`: the decision is a revoking event's, which revokes the entry (the register
    judged it in force on the event's day: register_handlers `_decision`), even one that
    lapsed before the decision's day: a penalty dated while the entry was valid and
    reported after its end revokes it, not expires it (review 53 N4). Such a revocation
    is dated on the entry's last day (the white list as it stood is not rewritten).

    An entry never moves back in time: an extension never shortens it, and a revocation
    dated before the entry's grant (a decision of an earlier day than one that granted
    it ahead) closes it on its grant day, so it never was in force. An entry is never
    closed on a day after `today` (the server's day; a decision as of tomorrow, for a
    record dated tomorrow, closes it today): its closing day is the first day it is off
    the list (WhitelistEntry.listed_on), and what is closed is off the list at once, for
    ListWhitelist, the gate and ListWhitelistSizes alike (review 53 N5). The register
    refuses decisions older than a firm's current one; this keeps the white list whole
    even so."""
    day = decision.as_of
    change, expired = "", None
    if entry is not None and entry.valid_until < day and not by_event:
        expired = EntryMove(
            entry,
            "expired",
            decision_id,
            revoked_on=_closing_day(entry, entry.valid_until, today),
            revoked_reason=EXPIRED_REASON,
        )
        entry, change = None, "expired"
    whitelisted = decision.status is Status.WHITELIST
    if entry is not None and not whitelisted:
        reason = FAILED_PREFIX + "；".join(b.reason for b in decision.whitelist_blockers)
        closed_on = _closing_day(entry, min(day, entry.valid_until), today)
        return "revoked", None, EntryMove(entry, "revoked", decision_id, closed_on, reason), None
    if not whitelisted:
        return change, expired, None, None
    if entry is not None:
        extended = EntryMove(
            entry,
            "extended",
            decision_id,
            valid_until=max(entry.valid_until, decision.valid_until),
            name=name,
            region=region,
        )
        return "extended", None, extended, None
    granted = OpenEntry(
        new_id(), enterprise_id, name, region, day, decision.valid_until, decision_id
    )
    return "granted", expired, None, granted


def _closing_day(entry: OpenEntry, day: date, today: date) -> date:
    """The day `entry` closes on when a decision closes it on `day`: never after `today`,
    never before its grant (then it never was in force)."""
    return max(entry.granted_on, min(day, today))
