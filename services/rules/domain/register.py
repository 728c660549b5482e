"""The register's records: firms, decisions, white-list entries, events, inspections.

Plain mutable dataclasses; the ORM maps them imperatively (adapters/orm.py), so this
module knows nothing of SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from . import labels


@dataclass
class Firm:
    enterprise_id: str
    name: str
    region: str
    profile: dict[str, Any]  # the JSON shape of domain.profile (profile_to_data)
    status: str = ""
    risk_level: str = ""
    decision_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class FirmRecord:
    """A record of one firm (a row of a `_firm_records` table, adapters/orm.py): its own
    id and the firm's."""

    id: str
    enterprise_id: str


@dataclass
class DecisionRecord(FirmRecord):
    decided_at: datetime
    as_of: date
    status: str
    risk_level: str
    ruleset_version: str
    cause: str
    whitelist_change: str  # granted | extended | revoked | expired | ""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class WhitelistEntry(FirmRecord):
    """One spell of a firm on the white list (无事不扰, docs/policy.md §3), granted by a
    WHITELIST decision: in force from `granted_on` to `valid_until` (as_of plus the
    policy's valid_months). Each later WHITELIST decision extends it (`decision_id` then
    names that one, `name`/`region` follow the firm); the first decision that is not
    closes it (`revoked_on`, `revoked_reason`), and one made after `valid_until` closes
    it as expired. Open while `revoked_on` is None, at most one a firm (a partial unique
    index)."""

    name: str
    region: str
    granted_on: date
    valid_until: date
    decision_id: str
    revoked_on: date | None = None
    revoked_reason: str = ""
    # the decisions that granted and that closed (revoked or expired) it, for the history;
    # None for entries from before migration 0008 that it could not match
    granted_decision_id: str | None = None
    closed_decision_id: str | None = None
    # how the entry is being closed, "expired" or "revoked" (reevaluation.EntryMove.kind),
    # set with revoked_on for the change feed to tell the two apart (adapters/feed.py);
    # not stored: "" on an entry read back ("revoked_reason" holds the words)
    closed_as: str = field(default="", compare=False, repr=False)

    def listed_on(self, day: date) -> bool:
        """Whether the firm is on the white list on `day` by this entry: the one rule
        ListWhitelist (its query says the same), the gate and ListWhitelistSizes apply.
        From `granted_on` to `valid_until`, until the day it was closed (`revoked_on`,
        the first day off the list). A closing day is never after the day the closure
        was recorded (reevaluation.move_entry): a revocation as of tomorrow (a record
        dated tomorrow) takes the firm off today, so for today and later days only an
        open entry lists a firm, and ListWhitelistSizes counts today as ListWhitelist
        lists it (review 53 N5: it counted a firm revoked as of tomorrow as listed
        today). A grant as of tomorrow lists the firm from tomorrow: on the list, no
        routine visit is made, so the list never runs ahead of what holds today."""
        closed = self.revoked_on is not None and self.revoked_on <= day
        return self.granted_on <= day <= self.valid_until and not closed

    def in_force_from(self, day: date) -> bool:
        """Open, and in force on `day` or after it: not lapsed (`valid_until`) before it.
        What a revoking event dated `day` revokes (register_handlers `_decision`)."""
        return self.revoked_on is None and day <= self.valid_until


@dataclass(frozen=True)
class HistoryEntry:
    """One item of a firm's history (rules.v1.HistoryItem), newest first.

    kind: decision | event | whitelist_granted | whitelist_revoked. An `event` item is an
    event that caused no decision (a complaint): no decision fields.
    """

    recorded_at: datetime
    kind: str
    decision_id: str = ""
    status: str = ""
    risk_level: str = ""
    as_of: date | None = None
    ruleset_version: str = ""
    reason: str = ""
    event_id: str = ""
    event_kind: str = ""
    entry: WhitelistEntry | None = None

    @classmethod
    def of_decision(cls, d: Any, event_id: str = "", event_kind: str = "") -> HistoryEntry:
        """The `decision` item of `d` (a DecisionRecord, or a row with the decisions table's
        columns), naming the event that caused it ("": none); its reason is the decision's
        cause and the white-list change it made."""
        return cls(
            recorded_at=d.decided_at,
            kind="decision",
            decision_id=d.id,
            status=d.status,
            risk_level=d.risk_level,
            as_of=d.as_of,
            ruleset_version=d.ruleset_version,
            reason=d.cause + labels.whitelist_change(d.whitelist_change),
            event_id=event_id,
            event_kind=event_kind,
        )

    @classmethod
    def of_event(cls, e: EventItem) -> HistoryEntry:
        """The `event` item of an event that caused no decision."""
        return cls(e.received_at, "event", reason=e.summary, event_id=e.event_id, event_kind=e.kind)


@dataclass(frozen=True)
class EventItem:
    """What a history shows of an event that caused no decision (`id` None: not written
    yet, the newest)."""

    event_id: str
    kind: str
    summary: str
    received_at: datetime
    id: int | None


@dataclass
class EventRecord:
    source: str
    event_id: str
    enterprise_id: str
    kind: str
    occurred_on: date
    detail: dict[str, Any]
    received_at: datetime
    summary: str = ""
    decision_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)  # the first answer, for replays
    id: int | None = None
    # SHA-256 of the event's canonical form (domain.events.fingerprint): a repeated
    # event_id is a replay only with the same content. None: recorded before 0006.
    fingerprint: str | None = None


@dataclass
class InspectionRecord(FirmRecord):
    authority: str
    kind: str
    planned_on: date
    year: int
    counted: bool
    allowed: bool
    joint: bool
    joint_id: str
    reason_code: str
    reason: str
    grounds: str
    requested_by: str
    created_at: datetime
    inspection_code: str | None = None
    idempotency_key: str | None = None  # unique per requested_by: a retry's first verdict
    yearly_count: int | None = None  # the verdict's counts (None: recorded before 0007)
    yearly_cap: int | None = None


@dataclass
class ReevaluationRun:
    id: str
    as_of: date
    started_at: datetime
    processed: int = 0
    last_enterprise_id: str = ""
    finished_at: datetime | None = None
    skipped: list[str] = field(default_factory=list)  # firms whose stored profile is invalid
    # firms re-evaluated whose stored profile a person must settle: a retired fact key the
    # data migration could not map, or a hazard citing a clause no loaded edition has
    attention: list[str] = field(default_factory=list)
    # `reevaluate --all --processes N`: a run split into ranges of firm ids is a parent
    # record (no cursor of its own) and one record per range, each with its own cursor,
    # naming the parent and the last id of its range (None: no end)
    parent_id: str | None = None
    upto: str | None = None
    # how the run decides (decision.register_day), fixed when it starts: True, its day was
    # today or later then, so a firm with a record dated the day after is decided as of
    # that day; False, a past day, every firm decided as of it exactly. A run resumes only
    # under the mode it started with (review 53 N11). None: recorded before migration
    # 0016, mode unknown: never resumed (a new run starts)
    raised: bool | None = None
    ahead: int = 0  # firms decided for the day after the run's (a record dated that day)
