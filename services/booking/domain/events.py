"""What booking tells the rules service (docs/policy.md §5), as plain records (pure).

Every finding, verification and overdue becomes one event, written to the outbox in the
same transaction as the change it reports; its id makes a redelivery harmless. Only the
rules client (adapters/rules_client.py) knows how the rules service spells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.common.vocabulary import Severity

from .tickets import Ticket


@dataclass(frozen=True)
class HazardFound:
    """A finding on a visit (MAJOR_HAZARD_FOUND or GENERAL_HAZARD_FOUND)."""

    event_id: str
    enterprise_id: str
    occurred_on: date
    hazard_id: str
    clause_ref: str
    severity: Severity
    due_on: date


@dataclass(frozen=True)
class HazardVerified:
    """A recheck passed (HAZARD_VERIFIED), on time or `late`."""

    event_id: str
    enterprise_id: str
    occurred_on: date
    hazard_id: str
    late: bool


@dataclass(frozen=True)
class RectificationOverdue:
    """A ticket passed its deadline unverified (RECTIFICATION_OVERDUE), once per deadline."""

    event_id: str
    enterprise_id: str
    occurred_on: date
    hazard_id: str


BookingEvent = HazardFound | HazardVerified | RectificationOverdue


def hazard_found(ticket: Ticket) -> HazardFound:
    return HazardFound(
        event_id=f"booking-{ticket.id}-found",
        enterprise_id=ticket.enterprise_id,
        occurred_on=ticket.found_on,
        hazard_id=ticket.id,
        clause_ref=ticket.clause_ref,
        severity=Severity(ticket.severity),
        due_on=ticket.due_on,
    )


def hazard_verified(ticket: Ticket, today: date) -> HazardVerified:
    return HazardVerified(
        event_id=f"booking-{ticket.id}-verified",
        enterprise_id=ticket.enterprise_id,
        occurred_on=today,
        hazard_id=ticket.id,
        late=ticket.closed_late,
    )


def rectification_overdue(ticket: Ticket, today: date) -> RectificationOverdue:
    return RectificationOverdue(
        event_id=f"booking-{ticket.id}-overdue-{ticket.due_on.isoformat()}",
        enterprise_id=ticket.enterprise_id,
        occurred_on=today,
        hazard_id=ticket.id,
    )
