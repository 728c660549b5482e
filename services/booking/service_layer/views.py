"""The read side (as cosmicpython's views.py): what the phone page shows, each page read
in one unit of work, and what the rules service says about a clause or an inspection
code. The supervisors' dashboard has its own: dashboard_views.py.

Pages only read; every change goes through a use case (orders.py, tickets.py …).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import structlog

from services.booking.domain import messages, order_history
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import (
    ENDED_ORDERS,
    OPEN_STATUSES,
    Order,
    OrderTransition,
    mask_phone,
)
from services.booking.domain.records import FirmCard
from services.booking.domain.rules_service import InspectionInfo, RulesRejected
from services.booking.domain.tickets import FirmNotice, TicketStatus
from services.booking.service_layer.guidance import edition_replaced
from services.booking.service_layer.ports import BookingContext, RulesPort, ask_rules
from services.booking.service_layer.qr_codes import firm_for_token, session_owner, visible
from services.booking.service_layer.unit_of_work import UnitOfWork

LANDING_ORDERS = 50  # the newest orders the landing page lists
FIRM_TICKETS = 1000
MAX_UNKNOWN_REFS = 1000  # refs the rules service did not know, remembered (Guidance)
_log = structlog.get_logger("views")


class Guidance:
    """(clause text, guidance) from the rules service's catalogue (cached by the client);
    ("", "") when unknown or while the rules service cannot be reached. After a failure
    it does not ask again for `retry_after` seconds, so pages do not each wait for it;
    nor, for as long, about a ref the rules service did not know (each miss makes the
    client fetch the whole catalogue again, and an order form's refs come from its URL)."""

    def __init__(self, rules: RulesPort, retry_after: float = 60.0) -> None:
        self._rules = rules
        self._retry_after = retry_after
        self._retry_at = 0.0
        self._unknown: dict[str, float] = {}  # ref → when it may be asked about again
        self._lock = threading.Lock()

    def __call__(self, clause_ref: str) -> tuple[str, str]:
        """(text, guidance) of the clause; a clause the catalogue answered it does not
        know (a ruleset change removed it after a finding cited it) is said to be gone
        (messages.CLAUSE_GONE, with the ticket's own guidance); ("", "") while the
        catalogue cannot be had."""
        answered, found = self._find(clause_ref)
        if found is None and answered:
            return messages.CLAUSE_GONE, messages.CLAUSE_GONE_GUIDANCE
        return found or ("", "")

    def texts(self, refs: Iterable[str]) -> dict[str, str]:
        """Each clause ref's text (gone, or "" while unknown: `__call__`), as a ticket's
        page shows it."""
        return {ref: self(ref)[0] for ref in dict.fromkeys(refs)}

    def known(self, refs: Iterable[str]) -> list[str]:
        """`refs` without those the rules service's catalogue does not know (a crafted or
        edited link's: their text would never come, review 54 D8); every one of them
        while the catalogue cannot be had (nothing to tell them by)."""
        return [ref for ref in refs if self._find(ref) != (True, None)]

    def _find(self, clause_ref: str) -> tuple[bool, tuple[str, str] | None]:
        """(whether the catalogue answered, the clause's (text, guidance) or None when
        it does not know the clause)."""
        with self._lock:
            if time.monotonic() < self._retry_at:
                return False, None  # failed a moment ago: do not ask again yet
            if time.monotonic() < self._unknown.get(clause_ref, 0.0):
                return True, None  # unknown a moment ago: nor about it
        try:
            found = self._rules.clause(clause_ref)
        except Exception:  # the rules service is unreachable and nothing is cached
            _log.warning("clause guidance unavailable", clause_ref=clause_ref)
            with self._lock:
                self._retry_at = time.monotonic() + self._retry_after
            return False, None
        if found is None and self._retry_after > 0:
            with self._lock:
                if len(self._unknown) >= MAX_UNKNOWN_REFS:
                    self._unknown.clear()
                self._unknown[clause_ref] = time.monotonic() + self._retry_after
        return True, found


def firm(uow: UnitOfWork, ctx: BookingContext, token: str) -> FirmCard:
    """The QR token's firm (PermissionDenied for a forged, edited or revoked token)."""
    with uow:
        return firm_for_token(uow, ctx, token)


def landing(uow: UnitOfWork, ctx: BookingContext, access: FirmAccess) -> dict[str, Any]:
    """The firm's page. Anyone with the QR token: the firm's name and the menu. The
    firm's own session (`access.session_firm`) also: its open and closed tickets
    (reminders, overdue: as its ticket page says, `Ticket.firm_notice`), its newest
    orders with their experts, those under way apart from those that ended (closed,
    cancelled), as its tickets are."""
    today = ctx.today()
    with uow:
        card = firm_for_token(uow, ctx, access.token)
        if not access.signed_in_as(card.enterprise_id):
            return {
                "firm": card,
                "today": today,
                "signed_in": False,
                "menu": list(ctx.menu.values()),
            }
        tickets = list(uow.register.tickets(enterprise_id=card.enterprise_id, limit=FIRM_TICKETS))
        orders = list(uow.register.orders(enterprise_id=card.enterprise_id, limit=LANDING_ORDERS))
        names = _names(uow, (o.expert_id for o in orders))
    waiting = sorted(
        (t for t in tickets if t.status != TicketStatus.VERIFIED), key=lambda t: (t.due_on, t.id)
    )
    return {
        "firm": card,
        "today": today,
        "open_tickets": waiting,
        "done_tickets": [t for t in tickets if t.status == TicketStatus.VERIFIED],
        "reminders": [t for t in waiting if t.firm_notice(today) == FirmNotice.DUE_SOON],
        "overdue": [t for t in waiting if t.firm_notice(today) == FirmNotice.OVERDUE],
        "orders": [o for o in orders if o.status not in ENDED_ORDERS],
        "past_orders": [o for o in orders if o.status in ENDED_ORDERS],
        "names": names,
        "menu": list(ctx.menu.values()),
        "signed_in": True,
    }


def order_page(
    uow: UnitOfWork, ctx: BookingContext, access: FirmAccess, order_id: str, guidance: Guidance
) -> dict[str, Any]:
    """One of the firm's orders. With the QR token alone: the public confirmation
    (number and status); for the firm's session also the expert, items, contact, the
    clauses that motivated it (with their texts, as on a ticket's page), the tickets it
    raised and its history as the firm reads it (`history`: domain/order_history.py,
    experts by name, no reason why one cannot come). `cancellable`: SUBMITTED or
    DISPATCHED (the page offers to cancel it, or to sign in to cancel it)."""
    with uow:
        card = firm_for_token(uow, ctx, access.token)
        order = visible(card, uow.register.order(order_id), "order", order_id)
        cancellable = order.status in OPEN_STATUSES  # the firm may cancel it (signed in)
        if not access.signed_in_as(card.enterprise_id):
            return {"firm": card, "order": order, "signed_in": False, "cancellable": cancellable}
        raised = [
            t
            for t in uow.register.tickets(enterprise_id=card.enterprise_id, limit=FIRM_TICKETS)
            if t.order_id == order.id
        ]
        names = _names(uow, [order.expert_id])
        history = _firm_history(uow, order)
    return {
        "firm": card,
        "order": order,
        "history": history,
        "today": ctx.today(),
        "expert_name": names.get(order.expert_id or "", ""),
        "phone": mask_phone(order.contact_phone),
        "items": [ctx.menu[c].name if c in ctx.menu else c for c in order.item_codes],
        "tickets": raised,
        "clause_texts": guidance.texts(order.clause_refs),  # outside the transaction
        "signed_in": True,
        "cancellable": cancellable,
    }


def cancel_page(
    uow: UnitOfWork, ctx: BookingContext, access: FirmAccess, order_id: str
) -> dict[str, Any]:
    """The signed-in firm's order on its cancel page: what is being cancelled (number,
    status, expert and half-day, items) and whether it still can be (SUBMITTED or
    DISPATCHED: `cancellable`)."""
    with uow:
        card = session_owner(uow, ctx, access)
        order = visible(card, uow.register.order(order_id), "order", order_id)
        names = _names(uow, [order.expert_id])
    return {
        "firm": card,
        "order": order,
        "expert_name": names.get(order.expert_id or "", ""),
        "items": [ctx.menu[c].name if c in ctx.menu else c for c in order.item_codes],
        "cancellable": order.status in OPEN_STATUSES,
    }


def ticket_page(
    uow: UnitOfWork,
    ctx: BookingContext,
    access: FirmAccess,
    ticket_id: str,
    guidance: Guidance,
) -> dict[str, Any]:
    """One of the signed-in firm's tickets: deadline, expert, the clause and its guidance."""
    with uow:
        card = session_owner(uow, ctx, access)
        ticket = visible(card, uow.register.ticket(ticket_id), "ticket", ticket_id)
        names = _names(uow, [ticket.expert_id])
    text, advice = guidance(ticket.clause_ref)  # outside the transaction: a remote call
    today = ctx.today()
    # the catalogue `guidance` just read (never a call): its edition replaced, said so
    replaced = ctx.rules.replaced_edition(ticket.clause_ref.partition(":")[0], today)
    return {
        "firm": card,
        "ticket": ticket,
        "today": today,
        "days_left": (ticket.due_on - today).days,
        "expert_name": names.get(ticket.expert_id, ""),
        "clause_text": text,
        "guidance": advice,
        "superseded": edition_replaced(replaced[0], True, replaced[1]) if replaced else "",
    }


def inspection(ctx: BookingContext, code: str) -> InspectionInfo | None:
    """What an inspection code (行政检查码) stands for, None when it is not a genuine one;
    UNAVAILABLE while the rules service cannot be asked."""
    try:
        return ask_rules(lambda: ctx.rules.verify_code(code))
    except RulesRejected:
        return None


def _firm_history(uow: UnitOfWork, order: Order) -> list[OrderTransition]:
    """Inside the caller's transaction: the order's history as its firm reads it."""
    named = order_history.experts_named(order.history)
    return order_history.for_firm(order.history, uow.register.expert_names(named) if named else {})


def _names(uow: UnitOfWork, ids: Iterable[str | None]) -> dict[str, str]:
    """Expert names for display; an expert that no longer exists shows its id."""
    wanted = {i for i in ids if i}
    found = uow.register.expert_names(wanted) if wanted else {}
    return {i: found.get(i, i) for i in wanted}
