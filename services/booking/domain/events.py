"""What booking tells the rules service (docs/policy.md §5), as plain records (pure).

Every finding, verification, new deadline (a failed recheck's) and overdue becomes one
event, written to the outbox in the same transaction as the change it reports; its id
makes a redelivery harmless. Only the rules client (adapters/rules_client.py) knows how
the rules service spells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.common.vocabulary import Severity

from .tickets import Ticket, TicketStatus


@dataclass(frozen=True)
class TicketEvent:
    """What every event says: its id (a redelivery is harmless), the firm, the day, and
    the ticket it is about (the rules service's hazard id)."""

    event_id: str
    enterprise_id: str
    occurred_on: date
    hazard_id: str


@dataclass(frozen=True, kw_only=True)
class HazardFound(TicketEvent):
    """A finding on a visit (MAJOR_HAZARD_FOUND or GENERAL_HAZARD_FOUND)."""

    clause_ref: str
    severity: Severity
    due_on: date


@dataclass(frozen=True, kw_only=True)
class HazardVerified(TicketEvent):
    """A recheck passed (HAZARD_VERIFIED), on time or `late`."""

    late: bool


@dataclass(frozen=True)
class RectificationOverdue(TicketEvent):
    """A ticket passed its deadline unverified (RECTIFICATION_OVERDUE), once per deadline."""


@dataclass(frozen=True, kw_only=True)
class HazardDueChanged(TicketEvent):
    """A failed recheck gave the ticket a new deadline (HAZARD_DUE_CHANGED)."""

    due_on: date


BookingEvent = HazardFound | HazardVerified | RectificationOverdue | HazardDueChanged


def _about(ticket: Ticket, what: str, on: date) -> tuple[str, str, date, str]:
    return f"booking-{ticket.id}-{what}", ticket.enterprise_id, on, ticket.id


def hazard_found(ticket: Ticket) -> HazardFound:
    severity = Severity(ticket.severity)
    found = _about(ticket, "found", ticket.found_on)
    return HazardFound(
        *found, clause_ref=ticket.clause_ref, severity=severity, due_on=ticket.due_on
    )


def hazard_verified(ticket: Ticket, today: date) -> HazardVerified:
    return HazardVerified(*_about(ticket, "verified", today), late=ticket.closed_late)


def due_changed(ticket: Ticket, today: date) -> HazardDueChanged:
    """The ticket's deadline now (a failed recheck's, `today`). Its id counts the failed
    rechecks: each new deadline is its own event, even one on a day set before."""
    failed = sum(
        1
        for move in ticket.history
        if move.from_status == TicketStatus.SUBMITTED and move.to_status == TicketStatus.OPEN
    )
    return HazardDueChanged(*_about(ticket, f"due-{failed}", today), due_on=ticket.due_on)


def rectification_overdue(ticket: Ticket, today: date) -> RectificationOverdue:
    """Its id names the deadline: a new deadline that passes is reported again."""
    return RectificationOverdue(*_about(ticket, f"overdue-{ticket.due_on.isoformat()}", today))
