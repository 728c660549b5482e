"""Records the booking register keeps besides orders and tickets (mapped by adapters/orm.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple


@dataclass
class FirmCard:
    """A firm as booking knows it: copied from the rules register when its code is issued."""

    enterprise_id: str
    name: str
    region: str
    qr_key_id: str = ""
    qr_serial: str = ""  # the current code; any other serial is revoked
    qr_issued_at: datetime | None = None
    # the mobile the firm signs in with (set by booking.admin or the visiting expert)
    sign_in_phone: str = ""


EXPERT_FIELDS = (
    "name",
    "phone",
    "domains",
    "regions",
    "slots",
    "max_visits_per_day",
    "active",
    "conflicts",
)  # what an upsert replaces, and what the trail records


@dataclass
class Expert:
    id: str
    name: str
    phone: str
    domains: list[str]
    regions: list[str]
    slots: list[str]
    max_visits_per_day: int
    active: bool
    conflicts: list[str]
    updated_at: datetime | None = None


@dataclass
class Assignment:
    """One booked half-day of one expert; (expert_id, slot) is unique in the database."""

    expert_id: str
    slot: str
    day: date
    order_id: str
    created_at: datetime
    id: int | None = None


class Offer(NamedTuple):
    """An expert eligible for an order, with their first free preferred half-day and
    fairness counters: what the register's candidate query answers (dispatch ranks them)."""

    expert_id: str
    slot: str  # the first of the order's preferred half-days the expert is free in
    local: bool  # serves the firm's region
    recent_visits: int  # in the fairness window
    last_assigned_at: datetime | None


@dataclass
class Visit:
    id: str
    order_id: str
    expert_id: str
    visited_on: date
    minutes_on_site: int
    created_at: datetime
    # the client's key for the visit form ("" = none): the same key again answers this
    # visit (service_layer/visits.py)
    idempotency_key: str = ""


@dataclass
class Photo:
    id: str
    ticket_id: str
    content_type: str
    size: int
    sha256: str
    content: bytes
    created_at: datetime
    purpose: str = "proof"  # proof | finding
    # a proof's: the key of the form it was sent with ("" none; None: stored before b0018)
    idempotency_key: str | None = ""


@dataclass
class OutboxMessage:
    """An event for the rules service, written in the same transaction as the change.

    Waiting until delivered (`next_attempt_at` set while it waits out a backoff); parked
    (`failed_at`) when the rules service refused it for good, which holds its firm's later
    messages until an operator requeues or discards it; discarded (`discarded_at`, with
    the operator's `discard_reason`, audited) when deliberately dropped, never sent;
    claimed (`claimed_until`, `claimed_by`) while a delivery waits on rules for it;
    failing (`failing_since`, `last_error`) from its first failed delivery on.
    Open (service_layer/outbox.py): neither delivered nor discarded."""

    event_id: str
    kind: str
    enterprise_id: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str = ""
    id: int | None = None
    discarded_at: datetime | None = None  # an operator dropped it (outbox --discard)
    discard_reason: str = ""
    # a delivery in flight (service_layer/outbox.py): no other sends it before this instant
    claimed_until: datetime | None = None
    claimed_by: str = ""  # whose claim: host, process and a token of the delivery
    # when its first failed delivery was recorded (cleared once delivered or requeued): a
    # firm held that long behind it is listed (service_layer/outbox.py, held_firms)
    failing_since: datetime | None = None


@dataclass
class IdempotentOrder:
    """(enterprise_id, idempotency_key) → the order it created."""

    enterprise_id: str
    idempotency_key: str
    order_id: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignInCode:
    """A one-time code sent to a firm's sign-in mobile: only its digest is kept."""

    id: str
    enterprise_id: str
    phone_digest: str
    code_digest: str
    created_at: datetime
    expires_at: datetime
    tries: int = 0
    used_at: datetime | None = None
    client: str = ""  # a digest of the requesting address, for its rate limit


@dataclass
class FirmSession:
    """A signed-in firm (30 days, one phone): only the digest of its secret is kept."""

    id: str
    enterprise_id: str
    phone_digest: str
    secret_digest: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
