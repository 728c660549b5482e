"""SQLAlchemy tables of the booking register and the imperative mapping of the domain.

Invariants live in the schema: an expert's half-day is booked at most once
(uq_assignments_expert_slot); a firm's idempotency key makes at most one order.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import registry, relationship

from services.booking.domain import records
from services.booking.domain.experts import EXPERT_ID_MAX
from services.booking.domain.orders import Order, OrderTransition, mask_phone
from services.booking.domain.staff import StaffAccount, StaffSession
from services.booking.domain.tickets import Ticket, TicketTransition
from services.common import columns
from services.common.audit import Audited, AuditTrail, audit_tables
from services.common.db import new_metadata, once

metadata = new_metadata()

FIRM_CHAIN = "firm:"  # audit chain keys (below): a firm's, an expert's
EXPERT_CHAIN = "expert:"
CHAIN_LENGTH = 80  # "expert:" and an expert id of up to 64 characters
mapper_registry = registry(metadata=metadata)


def _expert_id(name: str = "expert_id", *, references: str = "", **kw: Any) -> Column[Any]:
    """An expert's id (up to EXPERT_ID_MAX characters); `references` adds the foreign key."""
    keys = [ForeignKey(references)] if references else []
    return Column(name, String(EXPERT_ID_MAX), *keys, **kw)


def _transitions(subject: str, of: str) -> Table:
    """The history of a record that moves by a state machine (an order, a ticket)."""
    return Table(
        f"{subject}_transitions",
        metadata,
        columns.serial_id(),
        columns.record_ref(f"{subject}_id", references=f"{of}.id", index=True),
        columns.instant("at"),
        Column("actor", String(100), nullable=False),
        Column("from_status", String(16), nullable=False),
        Column("to_status", String(16), nullable=False),
        columns.note("reason"),
    )


firm_cards = Table(
    "firm_cards",
    metadata,
    columns.firm_id(primary_key=True),
    columns.firm_name(),
    columns.region(),
    Column("qr_key_id", String(16), nullable=False, server_default=""),
    Column("qr_serial", String(32), nullable=False, server_default=""),
    columns.instant("qr_issued_at", nullable=True),
    Column("sign_in_phone", String(20), nullable=False, server_default=""),
)

firm_sign_in_codes = Table(
    "firm_sign_in_codes",
    metadata,
    columns.record_id(),
    columns.firm_id(),
    columns.digest("phone_digest"),
    columns.digest("code_digest"),
    columns.instant("created_at"),
    columns.instant("expires_at"),
    Column("tries", Integer, nullable=False, server_default="0"),
    columns.instant("used_at", nullable=True),
    Column("client", String(64), nullable=False, server_default=""),
    Index("ix_firm_sign_in_codes_firm", "enterprise_id", "created_at"),
    Index("ix_firm_sign_in_codes_client", "client", "created_at"),
)

firm_sessions = Table(
    "firm_sessions",
    metadata,
    columns.record_id(),
    columns.firm_id(index=True),
    columns.digest("phone_digest"),
    columns.digest("secret_digest"),
    columns.instant("created_at"),
    columns.instant("expires_at"),
    columns.instant("ended_at", nullable=True),
)

experts = Table(
    "experts",
    metadata,
    _expert_id("id", primary_key=True),
    Column("name", String(50), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("domains", JSON, nullable=False),
    Column("regions", JSON, nullable=False),
    Column("slots", JSON, nullable=False),
    Column("max_visits_per_day", Integer, nullable=False),
    columns.flag("active"),
    Column("conflicts", JSON, nullable=False),
    columns.instant("updated_at", nullable=True),
)

orders = Table(
    "orders",
    metadata,
    columns.record_id(),
    columns.firm_id(references="firm_cards.enterprise_id"),
    columns.firm_name("enterprise_name"),
    columns.region(),
    Column("item_codes", JSON, nullable=False),
    Column("preferred_slots", JSON, nullable=False),
    Column("contact_name", String(50), nullable=False),
    Column("contact_phone", String(20), nullable=False),
    Column("note", Text, nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    columns.instant("created_at"),
    _expert_id(references="experts.id", nullable=True),
    Column("slot", String(16), nullable=True),
    columns.note("dispatch_note"),
    columns.instant("updated_at", nullable=True),
    Column("clause_refs", JSON, nullable=False, server_default="[]"),
    UniqueConstraint("enterprise_id", "idempotency_key", name="uq_orders_idempotency"),
    Index("ix_orders_status", "status", "created_at"),
)

order_transitions = _transitions("order", "orders")

assignments = Table(
    "assignments",
    metadata,
    columns.serial_id(),
    _expert_id(references="experts.id", nullable=False),
    Column("slot", String(16), nullable=False),
    columns.day("day"),
    # checked at the commit (migration b0009): CreateOrder books before it writes the order
    columns.record_ref("order_id", references="orders.id", unique=True, deferred=True),
    columns.instant("created_at"),
    UniqueConstraint("expert_id", "slot", name="uq_assignments_expert_slot"),
)

visits = Table(
    "visits",
    metadata,
    columns.record_id(),
    columns.record_ref("order_id", references="orders.id", unique=True),
    _expert_id(nullable=False),
    columns.day("visited_on"),
    Column("minutes_on_site", Integer, nullable=False),
    columns.instant("created_at"),
    # RecordVisitRequest.idempotency_key (b0017): NULL for visits recorded before it
    Column("idempotency_key", String(64), nullable=True),
)

tickets = Table(
    "tickets",
    metadata,
    columns.record_id(),
    columns.record_ref("order_id", references="orders.id", index=True),
    columns.record_ref("visit_id", references="visits.id"),
    columns.firm_id(index=True),
    Column("clause_ref", String(48), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("description", Text, nullable=False),
    columns.day("found_on"),
    columns.day("due_on"),
    Column("status", String(16), nullable=False),
    _expert_id(nullable=False),
    columns.instant("created_at"),
    columns.note("proof_note"),
    columns.record_ref("proof_photo_id", nullable=True),
    columns.day("verified_on", nullable=True),
    columns.flag("closed_late", server_default="0"),
    columns.day("overdue_reported_for", nullable=True),
    columns.day("proof_submitted_on", nullable=True),  # migrations b0010, b0011
)

ticket_transitions = _transitions("ticket", "tickets")

photos = Table(
    "photos",
    metadata,
    columns.record_id(),
    columns.record_ref("ticket_id", references="tickets.id", index=True),
    Column("content_type", String(16), nullable=False),
    Column("size", Integer, nullable=False),
    columns.digest("sha256"),
    Column("content", LargeBinary, nullable=False),
    columns.instant("created_at"),
    Column("purpose", String(16), nullable=False, server_default="proof"),
    # the proof form's idempotency key (b0018): NULL for finding photos, older proofs
    Column("idempotency_key", String(64), nullable=True),
)

# a message not yet done with: neither delivered nor discarded (a parked one is still open:
# it holds its firm's later messages until it is retried or discarded)
OUTBOX_OPEN = "delivered_at IS NULL AND discarded_at IS NULL"

outbox = Table(
    "outbox",
    metadata,
    columns.serial_id(),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    columns.firm_id(),
    Column("payload", JSON, nullable=False),
    columns.instant("created_at"),
    Column("attempts", Integer, nullable=False),
    columns.instant("next_attempt_at", nullable=True),
    columns.instant("delivered_at", nullable=True),
    columns.instant("failed_at", nullable=True),
    columns.note("last_error"),
    # migration b0012: a message an operator chose to drop (`booking outbox --discard`)
    columns.instant("discarded_at", nullable=True),
    columns.note("discard_reason"),
    # migration b0014: a delivery's claim on the message while it waits on rules, held with
    # no transaction open (service_layer/outbox.py): until when, and whose
    columns.instant("claimed_until", nullable=True),
    Column("claimed_by", String(128), nullable=False, server_default=""),
    # migration b0015: when its first failed delivery was recorded (a held firm's since)
    columns.instant("failing_since", nullable=True),
    Index("ix_outbox_pending", "delivered_at", "failed_at", "id"),
    # each firm's messages not yet done, in the order written (b0012): a firm's head is one
    # seek, and so is the next firm's (the heads of every firm, whatever waits behind them)
    Index(
        "ix_outbox_open",
        "enterprise_id",
        "id",
        sqlite_where=text(OUTBOX_OPEN),
        postgresql_where=text(OUTBOX_OPEN),
    ),
)

# staff pages (migration b0005): accounts with their lockout state, and sessions (only
# digests of the cookie secret and of its CSRF token)
staff_accounts = Table(
    "staff_accounts",
    metadata,
    Column("username", String(40), primary_key=True),
    Column("display_name", String(50), nullable=False),
    Column("role", String(16), nullable=False),
    columns.region(server_default=""),
    _expert_id(nullable=False, server_default=""),
    Column("password_hash", String(200), nullable=False),
    columns.flag("active"),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    columns.instant("locked_until", nullable=True),
    columns.instant("password_changed_at", nullable=True),
    columns.instant("created_at", nullable=True),
)

staff_sessions = Table(
    "staff_sessions",
    metadata,
    columns.digest("id_digest", primary_key=True),
    columns.digest("csrf_digest"),
    Column("username", String(40), nullable=False, server_default="", index=True),
    columns.instant("created_at"),
    columns.instant("last_seen_at", index=True),
)

staff_sign_in_failures = Table(
    "staff_sign_in_failures",
    metadata,
    columns.serial_id(),
    columns.digest("address_digest"),
    columns.instant("at"),
    Index("ix_staff_sign_in_failures_address_at", "address_digest", "at"),
)

# a chain per firm and per expert (migration b0008): writers of different firms and experts
# never wait on one head row; keys are "firm:<enterprise id>", "expert:<expert id>"
audit_log, audit_head = audit_tables(metadata, chains=True, chain_length=CHAIN_LENGTH)

# What dispatch asks of an expert, one row per offered half-day, domain, region and
# conflict, copied from the expert's own columns above whenever an expert is written
# (adapters/expert_offers.py; migration b0007), so that a query finds an order's
# candidates without reading every expert's whole offer.
expert_slots = Table(
    "expert_slots",
    metadata,
    _expert_id(references="experts.id", primary_key=True),
    Column("slot", String(16), primary_key=True),
    columns.day("day"),
)

expert_domains = Table(
    "expert_domains",
    metadata,
    _expert_id(references="experts.id", primary_key=True),
    Column("domain", String(64), primary_key=True),
)

expert_regions = Table(
    "expert_regions",
    metadata,
    _expert_id(references="experts.id", primary_key=True),
    Column("region", String(100), primary_key=True),
)

expert_conflicts = Table(
    "expert_conflicts",
    metadata,
    _expert_id(references="experts.id", primary_key=True),
    Column("enterprise_id", String(18), primary_key=True),
)

# dispatch's per-expert counts: visits on a day, in the fairness window, the latest
Index("ix_assignments_expert_day", assignments.c.expert_id, assignments.c.day)
Index("ix_assignments_expert_created", assignments.c.expert_id, assignments.c.created_at)


def _serial_digest(value: str) -> str:
    """QR serials are half of a credential: the trail keeps a digest, never the serial."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16] if value else ""


def _masked(phone: str) -> str:
    return mask_phone(phone) if phone else ""


AUDITED = {
    records.FirmCard: Audited(
        "firm",
        "enterprise_id",
        ("name", "region", "qr_key_id", "qr_serial", "sign_in_phone"),
        {"qr_serial": _serial_digest, "sign_in_phone": _masked},
        chain_field="enterprise_id",
        chain_prefix=FIRM_CHAIN,
    ),
    records.Expert: Audited(
        "expert",
        "id",
        records.EXPERT_FIELDS,
        {"phone": mask_phone, "slots": len},
        chain_field="id",
        chain_prefix=EXPERT_CHAIN,
    ),
    Order: Audited(
        "order",
        "id",
        (
            "enterprise_id",
            "status",
            "item_codes",
            "expert_id",
            "slot",
            "contact_phone",
            "dispatch_note",
        ),
        {"contact_phone": mask_phone},
        chain_field="enterprise_id",
        chain_prefix=FIRM_CHAIN,
    ),
    # an expert's bookings and visits on the expert's chain (dispatch holds the expert's
    # row lock while it books one; a visit has no firm column)
    records.Assignment: Audited(
        "assignment",
        "order_id",
        ("expert_id", "slot"),
        chain_field="expert_id",
        chain_prefix=EXPERT_CHAIN,
    ),
    records.Visit: Audited(
        "visit",
        "id",
        ("order_id", "expert_id", "visited_on", "minutes_on_site"),
        chain_field="expert_id",
        chain_prefix=EXPERT_CHAIN,
    ),
    Ticket: Audited(
        "ticket",
        "id",
        (
            "order_id",
            "enterprise_id",
            "clause_ref",
            "severity",
            "status",
            "due_on",
            "verified_on",
            "closed_late",
            "proof_photo_id",
            "overdue_reported_for",
            "proof_submitted_on",  # the day a closure's lateness is judged by
        ),
        chain_field="enterprise_id",
        chain_prefix=FIRM_CHAIN,
    ),
    # photos (a ticket's, no firm column) and staff accounts, rare writes: the global chain
    records.Photo: Audited(
        "photo", "id", ("ticket_id", "content_type", "size", "sha256", "purpose")
    ),
    # no password hash, no lockout counters: who the person is and what they may do
    StaffAccount: Audited(
        "staff_account",
        "username",
        ("display_name", "role", "region", "expert_id", "active", "password_changed_at"),
    ),
}
AUDIT = AuditTrail(audit_log, audit_head, AUDITED)
# An outbox message's deliveries are not audited (each would add an entry); what an
# operator decides about one is (requeue, discard: service_layer/outbox.py), on its firm's
# chain, through AUDIT.changed(…, spec=OUTBOX_DECISIONS).
OUTBOX_DECISIONS = Audited(
    "outbox_message",
    "event_id",
    ("failed_at", "discarded_at", "discard_reason"),
    chain_field="enterprise_id",
    chain_prefix=FIRM_CHAIN,
)


def _map() -> None:
    """Map the domain dataclasses onto the tables."""
    mapper_registry.map_imperatively(records.FirmCard, firm_cards)
    mapper_registry.map_imperatively(records.Expert, experts)
    _map_with_history(Order, orders, OrderTransition, order_transitions)
    mapper_registry.map_imperatively(records.Assignment, assignments)
    mapper_registry.map_imperatively(records.Visit, visits)
    _map_with_history(Ticket, tickets, TicketTransition, ticket_transitions)
    mapper_registry.map_imperatively(records.Photo, photos)
    mapper_registry.map_imperatively(records.OutboxMessage, outbox)
    mapper_registry.map_imperatively(records.SignInCode, firm_sign_in_codes)
    mapper_registry.map_imperatively(records.FirmSession, firm_sessions)
    mapper_registry.map_imperatively(StaffAccount, staff_accounts)
    mapper_registry.map_imperatively(StaffSession, staff_sessions)


def _map_with_history(record: type, table: Table, transition: type, history: Table) -> None:
    """A record that moves by a state machine, its transitions loaded with it in order."""
    mapper_registry.map_imperatively(transition, history)
    mapper_registry.map_imperatively(
        record,
        table,
        properties={
            "history": relationship(
                transition, order_by=history.c.id, cascade="all, delete-orphan", lazy="selectin"
            )
        },
    )


start_mappers = once(_map)  # once per process, before serving (services/common/db.py)
