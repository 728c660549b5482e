"""Seed the demo city's booking history (services/common/demo_city.py) in one transaction.

`make run` calls this after the rules service has registered the same firms. It writes
the register directly, as the use cases would have left it a year on, in one unit of
work: firm cards (a visited firm's with the order's contact as its sign-in mobile, as
the expert would have confirmed on site), the 20 experts and the demo expert account's
(unless `make run` made it already), every order with its history (submitted →
dispatched → visited → closed), the booked half-days, the visits, every ticket with its
history (open → submitted → verified, late or on time; some still open past their
deadline) and its events for the rules service (found, verified, overdue) in the
outbox, recorded as delivered on the day each happened: the rules seeder applies the
same events, with the same ids, on those days (rules/service_layer/demo.py), as a year
of deliveries would have. One commit, no remote call per record: a few seconds on SQLite
for ~150 orders and ~800 tickets.

Idempotent: a register that already holds the city's first booking firm's orders is
left alone (a second `make run` adds nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from services.booking.domain import messages, qr
from services.booking.domain.events import hazard_found, hazard_verified, rectification_overdue
from services.booking.domain.findings import FindingInput, found_ticket
from services.booking.domain.orders import Order, OrderStatus
from services.booking.domain.records import Assignment, Expert, FirmCard, Visit
from services.booking.domain.slots import Slot
from services.booking.domain.tickets import TicketStatus
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.demo_city import City, DemoOrder, DemoTicket
from services.common.instants import SHANGHAI

DEMO_PHONE = "13900000000"
SLOT_DAYS = 14  # experts offer every half-day of the next two weeks
ON_SITE_MINUTES = 90


@dataclass(frozen=True)
class Seeded:
    firms: int
    experts: int
    orders: int
    tickets: int
    events: int


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), SHANGHAI)


def already_seeded(uow: UnitOfWork, city: City) -> bool:
    with uow:
        return bool(city.orders) and bool(
            uow.register.orders(enterprise_id=city.orders[0].enterprise_id, limit=1)
        )


def seed_city(uow: UnitOfWork, ctx: BookingContext, city: City) -> Seeded | None:
    """Write the city's history; None when it is there already."""
    if already_seeded(uow, city):
        return None
    slots = [
        str(Slot(city.today + timedelta(days=d), h))
        for d in range(1, SLOT_DAYS + 1)
        for h in ("AM", "PM")
    ]
    events = 0
    with uow:
        staff = [city.staff_expert] if city.staff_expert else []
        for e in [*city.experts, *staff]:
            if e in staff and uow.register.expert(e.expert_id) is not None:
                continue  # `make run` made the demo account's expert already (cli.py)
            uow.register.add(
                Expert(
                    e.expert_id,
                    e.name,
                    DEMO_PHONE,
                    list(e.domains),
                    list(e.regions),
                    slots,
                    2,
                    True,
                    [],
                    at(city.today, 8),
                )
            )
        booking = {o.enterprise_id for o in city.orders}
        visited = {o.enterprise_id for o in city.orders if o.visited}
        cards = [f for f in city.firms if f.enterprise_id in booking]
        for firm in cards:
            token, _ = qr.issue(ctx.keyring, firm.enterprise_id)
            card = FirmCard(firm.enterprise_id, firm.profile["name"], firm.profile["region"])
            card.qr_key_id, card.qr_serial = token.key_id, token.serial
            card.qr_issued_at = at(firm.registered_on, 9)
            if firm.enterprise_id in visited:  # the expert confirmed the order's contact
                card.sign_in_phone = DEMO_PHONE  # on site: the firm signs in with it
            uow.register.add(card)
        uow.flush()  # orders reference the cards and the experts
        for demo in city.orders:
            events += _order(uow, demo, city.today)
        uow.flush()
        _delivered_on_their_day(uow, {t.id for t in city.tickets()})
        uow.commit()
    return Seeded(len(cards), len(city.experts), len(city.orders), len(city.tickets()), events)


def _delivered_on_their_day(uow: UnitOfWork, tickets: set[str]) -> None:
    """The city's events as the outbox would hold them a year on: each delivered on the
    day it happened (the rules seeder applies them on those days: rules/service_layer/
    demo.py). Only the city's messages: their ids name its tickets."""
    for message in uow.register.pending_messages(uow.register.undelivered_count()):
        if message.event_id.split("-")[1] in tickets:
            occurred = date.fromisoformat(str(message.payload["occurred_on"]))
            message.created_at = message.delivered_at = at(occurred, 18)


def _order(uow: UnitOfWork, demo: DemoOrder, today: date) -> int:
    """One order and what followed it; the number of events queued."""
    slot = str(Slot(demo.slot_day, demo.half))
    order = Order(
        id=demo.id,
        enterprise_id=demo.enterprise_id,
        enterprise_name=demo.name,
        region=demo.region,
        item_codes=list(demo.item_codes),
        preferred_slots=[slot, str(Slot(demo.slot_day + timedelta(days=1), demo.half))],
        contact_name="联系人",
        contact_phone=DEMO_PHONE,
        note="",
        idempotency_key=f"demo-{demo.id}",
        status="",
        created_at=demo.created_at,
    )
    created = demo.created_at
    order.enter(OrderStatus.SUBMITTED.value, actor="firm", at=created, reason=messages.ORDER_TAKEN)
    if demo.cancelled:
        order.enter(
            OrderStatus.CANCELLED.value,
            actor="firm",
            at=created + timedelta(hours=2),
            reason=messages.CANCELLED_BY_FIRM,
        )
        uow.register.add(order)
        return 0
    expert = demo.expert_id or ""
    order.expert_id, order.slot = expert, slot
    dispatched = created + timedelta(minutes=1)
    order.enter(
        OrderStatus.DISPATCHED.value,
        actor="dispatcher",
        at=dispatched,
        reason=messages.DISPATCHED_TO.format(expert=expert, slot=slot),
    )
    uow.register.add(order)
    uow.register.add(Assignment(expert, slot, demo.slot_day, demo.id, dispatched))
    if not demo.visited:
        return 0
    visit = Visit(
        f"V{demo.id[1:]}", demo.id, expert, demo.slot_day, ON_SITE_MINUTES, at(demo.slot_day, 17)
    )
    uow.register.add(visit)
    order.enter(
        OrderStatus.VISITED.value,
        actor=expert,
        at=visit.created_at,
        reason=messages.VISIT_FINDINGS.format(n=len(demo.tickets)),
    )
    events = 0
    for found in demo.tickets:
        events += _ticket(uow, demo, visit, found, today)
    closed = [t.verified_on for t in demo.tickets]
    if all(closed):
        last = max((d for d in closed if d), default=demo.slot_day)
        reason = messages.ALL_VERIFIED if demo.tickets else messages.NO_FINDINGS
        order.enter(OrderStatus.CLOSED.value, actor=expert, at=at(last, 17), reason=reason)
    return events


def _ticket(uow: UnitOfWork, demo: DemoOrder, visit: Visit, found: DemoTicket, today: date) -> int:
    expert = visit.expert_id
    reported = FindingInput(found.clause_ref, found.severity, found.description)
    ticket = found_ticket(
        found.id,
        visit,
        demo.enterprise_id,
        reported,
        found.due_on,
        actor=expert,
        at=visit.created_at,
    )
    uow.register.add_event(hazard_found(ticket))
    events = 1
    if (overdue := found.overdue_on(today)) is not None:  # as the sweep would have
        ticket.overdue_reported_for = found.due_on
        uow.register.add_event(rectification_overdue(ticket, overdue))
        events += 1
    if found.proof_on is not None:
        ticket.proof_note = "已整改"
        ticket.proof_submitted_on = found.proof_on
        ticket.enter(
            TicketStatus.SUBMITTED.value, actor="firm", at=at(found.proof_on, 10), reason="已整改"
        )
    if found.verified_on is not None:
        ticket.enter(
            TicketStatus.VERIFIED.value,
            actor=expert,
            at=at(found.verified_on, 15),
            reason=messages.RECHECK_PASSED,
        )
        ticket.verified_on, ticket.closed_late = found.verified_on, ticket.verified_late()
        uow.register.add_event(hazard_verified(ticket, found.verified_on))
        events += 1
    uow.register.add(ticket)
    return events
