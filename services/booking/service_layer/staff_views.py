"""What the staff pages show (the read side): an inspector's recheck queue and ticket, an
expert's visits by day and the clause picker of a visit. Each page is read in one unit
of work; the role checks are service_layer/authz.py's, the same as over gRPC. Actions
go through the gRPC twins' handlers (tickets.recheck_ticket, visits.record_visit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from services.booking.domain import messages
from services.booking.domain.orders import Order, OrderStatus, mask_phone
from services.booking.domain.records import Photo
from services.booking.domain.rules_service import PickableClause, search_clauses
from services.booking.domain.slots import parse_slot
from services.booking.domain.tickets import Ticket, TicketStatus, default_due
from services.booking.service_layer import authz
from services.booking.service_layer.guidance import edition_replaced
from services.booking.service_layer.ports import BookingContext, ask_rules
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.booking.service_layer.views import Guidance
from services.common.context import Principal
from services.common.errors import NotFound, PermissionDenied
from services.common.regions import region_filter

QUEUE_LIMIT = 500
DUE_SOON_DAYS = 7
VISIT_DAYS_BACK = 14  # past visits listed on the expert's page
_VISITED = frozenset({OrderStatus.VISITED.value, OrderStatus.CLOSED.value})  # with tickets


@dataclass(frozen=True)
class QueueFilter:
    region: str = ""  # a 镇街 or county ('' = every region the person may see)
    due_soon: bool = False  # due within DUE_SOON_DAYS
    overdue: bool = False  # past the deadline only


def _area(p: Principal, ctx: BookingContext, wanted: str) -> tuple[str, ...]:
    """The 镇街 a queue covers: the person's region, narrowed by the filter."""
    own = authz.inspector_regions(p, ctx.regions)
    asked = region_filter(ctx.regions, wanted)
    if own and asked:
        both = tuple(r for r in asked if r in own)
        if not both:
            raise PermissionDenied(messages.REGION_OUTSIDE_AREA)
        return both
    return asked or own


def recheck_queue(
    uow: UnitOfWork,
    ctx: BookingContext,
    p: Principal,
    f: QueueFilter,
    guidance: Guidance | None = None,
) -> dict[str, Any]:
    """Proofs waiting for a recheck in the person's region, overdue first, then by
    deadline: the QUEUE_LIMIT most urgent that pass the filters (`more`: there are
    others, which the region and deadline filters narrow down to), with the text of
    each one's clause from `guidance` (a rule named by a word is shown by it, never by
    its code: review 59 F4)."""
    if not p.has("booking.inspector", "booking.admin"):
        raise PermissionDenied(messages.QUEUE_FOR_INSPECTORS)
    today = ctx.today()
    area = _area(p, ctx, f.region)
    due_by = [today - timedelta(days=1)] if f.overdue else []  # overdue: due before today
    due_by += [today + timedelta(days=DUE_SOON_DAYS)] if f.due_soon else []
    with uow:
        rows = list(
            uow.register.tickets(
                status=TicketStatus.SUBMITTED.value,
                regions=area,
                due_by=min(due_by, default=None),
                by_deadline=True,  # a submitted ticket is overdue iff due before today
                limit=QUEUE_LIMIT + 1,
            )
        )
        names = uow.register.firm_names({t.enterprise_id for t in rows[:QUEUE_LIMIT]})
    shown = rows[:QUEUE_LIMIT]
    texts = guidance.texts(t.clause_ref for t in shown) if guidance else {}  # outside: remote
    return {
        "tickets": shown,
        "clause_texts": texts,
        "more": len(rows) > QUEUE_LIMIT,
        "firm_names": names,
        "today": today,
        "area": area,
        "own_region": p.region,
    }


@dataclass
class StaffTicket:
    ticket: Ticket
    firm_name: str
    region: str
    expert_name: str
    finding_photos: list[str] = field(default_factory=list)
    clause_text: str = ""
    guidance: str = ""
    superseded: str = ""  # the clause's edition was replaced: guidance.edition_replaced


def _may_see(
    p: Principal,
    ctx: BookingContext,
    ticket: Ticket,
    order: Order | None,
    what: str = "ticket",
    ref: str = "",
) -> None:
    """A ticket out of the person's reach (authz.reach: another region's for an
    inspector, another expert's finding for an expert) is answered as an unknown `what`
    named `ref` (NotFound, the 404 page: reach-notfound); one in reach that the person
    may not recheck (a supervisor) PermissionDenied."""
    region = order.region if order is not None else ""
    reach = authz.reach(p, ctx.regions)
    authz.require_reach(reach, ticket.expert_id, region, what, ref or ticket.id)
    if not authz.may_recheck(p, ticket):
        raise PermissionDenied(messages.ONLY_RECHECKERS)


def staff_ticket(
    uow: UnitOfWork, ctx: BookingContext, p: Principal, ticket_id: str, guidance: Guidance
) -> StaffTicket:
    """A ticket as the recheck page shows it: the finding beside the firm's proof."""
    with uow:
        ticket = uow.register.ticket(ticket_id)
        if ticket is None:
            raise NotFound(messages.no_such("ticket", ticket_id))
        order = uow.register.order(ticket.order_id)
        _may_see(p, ctx, ticket, order)
        names = uow.register.expert_names([ticket.expert_id])
        found = StaffTicket(
            ticket,
            order.enterprise_name if order else ticket.enterprise_id,
            order.region if order else "",
            names.get(ticket.expert_id, ticket.expert_id),
            uow.register.photos_of(ticket.id, "finding"),
        )
    found.clause_text, found.guidance = guidance(ticket.clause_ref)  # a remote call: outside
    # the catalogue `guidance` just read (never a call): its edition replaced, said as the
    # firm's ticket page says it (views.ticket_page)
    replaced = ctx.rules.replaced_edition(ticket.clause_ref.partition(":")[0], ctx.today())
    if replaced:
        found.superseded = edition_replaced(replaced[0], True, replaced[1])
    return found


def named_ticket(
    uow: UnitOfWork, ctx: BookingContext, p: Principal, ticket_id: str
) -> tuple[Ticket, str] | None:
    """A ticket the person may see, with its firm's name: what a confirmation after a
    recheck names (the id comes from the redirect's query, so a ticket the person may
    not see, or none, is None and the confirmation names nothing)."""
    with uow:
        ticket = uow.register.ticket(ticket_id)
        order = uow.register.order(ticket.order_id) if ticket is not None else None
        if ticket is None:
            return None
        try:
            _may_see(p, ctx, ticket, order)
        except (PermissionDenied, NotFound):
            return None
        return ticket, order.enterprise_name if order else ticket.enterprise_id


@dataclass
class ExpertFindings:
    """The tickets an expert found that are not VERIFIED yet (review 59 F1): those whose
    proof waits for a recheck, which the expert may make (docs/booking.md), then those
    the firm still owes, each earliest deadline first."""

    waiting: list[Ticket]
    still_open: list[Ticket]
    firm_names: dict[str, str]
    more: bool  # more than FINDINGS_LIMIT of either
    today: date


FINDINGS_LIMIT = QUEUE_LIMIT


def my_findings(uow: UnitOfWork, ctx: BookingContext, p: Principal) -> ExpertFindings:
    """The expert's own findings not yet verified (ExpertFindings)."""
    expert_id = _expert_id(p)
    with uow:
        waiting, still_open = (
            list(
                uow.register.tickets(
                    expert_id=expert_id,
                    status=status.value,
                    by_deadline=True,
                    limit=FINDINGS_LIMIT + 1,
                )
            )
            for status in (TicketStatus.SUBMITTED, TicketStatus.OPEN)
        )
        shown = waiting[:FINDINGS_LIMIT] + still_open[:FINDINGS_LIMIT]
        names = uow.register.firm_names({t.enterprise_id for t in shown})
    return ExpertFindings(
        waiting[:FINDINGS_LIMIT],
        still_open[:FINDINGS_LIMIT],
        names,
        max(len(waiting), len(still_open)) > FINDINGS_LIMIT,
        ctx.today(),
    )


def staff_photo(uow: UnitOfWork, ctx: BookingContext, p: Principal, photo_id: str) -> Photo:
    """A finding or proof photo of a ticket the person may see."""
    with uow:
        photo = uow.register.photo(photo_id)
        ticket = uow.register.ticket(photo.ticket_id) if photo else None
        if photo is None or ticket is None:
            raise NotFound(messages.no_such("photo", photo_id))
        _may_see(p, ctx, ticket, uow.register.order(ticket.order_id), "photo", photo_id)
        return photo


@dataclass
class VisitRow:
    order: Order
    day: date | None
    slot_label: str
    items: list[str]
    clauses: list[tuple[str, str]]  # (clause ref, text) that motivated the order
    tickets: list[Ticket] = field(default_factory=list)  # the visit's findings, if any


@dataclass
class ExpertVisits:
    days: list[tuple[date | None, list[VisitRow]]]
    waiting: int  # the expert's findings whose proof waits for a recheck
    more_waiting: bool  # more than FINDINGS_LIMIT of them


def my_visits(
    uow: UnitOfWork, ctx: BookingContext, p: Principal, guidance: Guidance
) -> ExpertVisits:
    """The expert's visits by day: those to come, and the last two weeks', a recorded
    one with the tickets it raised; and how many of the expert's findings wait for a
    recheck (their list: my_findings)."""
    expert_id = _expert_id(p)
    since = ctx.today() - timedelta(days=VISIT_DAYS_BACK)
    with uow:
        everyone = list(uow.register.orders_of_expert(expert_id))
        visited_on = uow.register.visit_days(o.id for o in everyone)
        # by the visit's day once recorded, else the half-day's (review 59 F11)
        orders = [
            o for o in everyone if (d := visited_on.get(o.id) or _slot_day(o)) is None or d >= since
        ]
        visited = [o.id for o in orders if o.status in _VISITED]
        found: dict[str, list[Ticket]] = {}
        for t in uow.register.tickets_of_orders(visited):
            found.setdefault(t.order_id, []).append(t)
        waiting = len(
            uow.register.tickets(
                expert_id=expert_id,
                status=TicketStatus.SUBMITTED.value,
                limit=FINDINGS_LIMIT + 1,
            )
        )
    # guidance: a remote call
    rows = [_visit_row(ctx, o, guidance, visited_on.get(o.id)) for o in orders]
    for row in rows:
        row.tickets = sorted(found.get(row.order.id, ()), key=lambda t: (t.created_at, t.id))
    rows.sort(key=lambda r: (r.day or date.max, r.order.slot or "", r.order.id))
    days: dict[date | None, list[VisitRow]] = {}
    for row in rows:
        days.setdefault(row.day, []).append(row)
    return ExpertVisits(list(days.items()), min(waiting, FINDINGS_LIMIT), waiting > FINDINGS_LIMIT)


def _expert_id(p: Principal) -> str:
    if not p.has("booking.expert") or not p.expert_id:
        raise PermissionDenied(messages.PAGES_FOR_EXPERTS)
    return p.expert_id


def _slot_day(order: Order) -> date | None:
    try:
        return parse_slot(order.slot or "").day
    except ValueError:
        return None


def _visit_row(
    ctx: BookingContext, order: Order, guidance: Guidance, visited_on: date | None = None
) -> VisitRow:
    """An order on the expert's page: under the day of its visit once recorded (an
    expert may come before the booked half-day: review 59 F11), else of its half-day,
    which its label names either way."""
    try:
        slot = parse_slot(order.slot or "")
        day, label = slot.day, slot.label
    except ValueError:
        day, label = None, ""
    day = visited_on or day
    refs = [str(r) for r in getattr(order, "clause_refs", None) or ()]  # when orders carry them
    return VisitRow(
        order,
        day,
        label,
        [ctx.menu[c].name if c in ctx.menu else c for c in order.item_codes],
        [(ref, guidance(ref)[0]) for ref in refs],
    )


@dataclass
class VisitForm:
    order: Order
    clauses: list[PickableClause]  # the search's matches
    picked: list[tuple[PickableClause, date]]  # each with its deadline by policy
    visit_day: date
    # the on-site mobile left empty: the firm's sign-in mobile after the visit is the one
    # it has (`on_record`); without one, the expert must confirm the order's contact
    # mobile or type the on-site one (domain/sign_in.py mobile_after_visit); either is
    # shown masked, as to every caller but booking.admin (`default_mobile`,
    # authz.sees_phones: an admin reads it whole, as in every other answer)
    default_mobile: str = ""
    on_record: bool = False


def visit_form(
    uow: UnitOfWork,
    ctx: BookingContext,
    p: Principal,
    order_id: str,
    query: str,
    picks: list[str],
) -> VisitForm:
    """The visit form of the expert's own dispatched order: the clauses that apply to
    the firm (matching `query`), and a finding block for each of `picks`, in order (the
    same clause twice is two findings), with severity and deadline preset, and the
    firm's sign-in mobile on record, else the order's contact mobile the expert may
    confirm (VisitForm)."""
    order = own_order(uow, p, order_id)
    with uow:
        card = uow.register.firm(order.enterprise_id)
    on_record = card.sign_in_phone if card is not None else ""
    catalogue = ask_rules(lambda: ctx.rules.applicable_clauses(order.enterprise_id))
    by_ref = {c.clause_ref: c for c in catalogue}
    today = ctx.today()
    foreign = messages.VISIT_CLAUSE_NOT_FOR_FIRM
    picked = [  # a ref that does not apply keeps its block (and its error) in its place
        (found, default_due(found.severity, today))
        for ref in picks
        for found in [by_ref.get(ref) or PickableClause(ref, foreign, "", "general")]
    ]
    return VisitForm(
        order,
        search_clauses(catalogue, query),
        picked,
        today,
        default_mobile=_shown_mobile(on_record or order.contact_phone, p),
        on_record=bool(on_record),
    )


def _shown_mobile(phone: str, p: Principal) -> str:
    """A mobile as `p` may read it (authz.sees_phones, the one decision; review 66):
    whole for booking.admin, else masked (138****5678)."""
    return phone if authz.sees_phones(p) else mask_phone(phone)


def own_order(uow: UnitOfWork, p: Principal, order_id: str) -> Order:
    """An order the person may record a visit for: the expert's own (admins: any).
    Another expert's is answered as an unknown id (NotFound, the same message), as
    GetOrder answers it: the expert learns nothing of it, not even that it exists."""
    expert = authz.expert_filter(p)
    with uow:
        order = uow.register.order(order_id)
    if order is None or (expert and order.expert_id != expert):
        raise NotFound(messages.no_such("order", order_id))
    return order


def is_open_for_visit(order: Order) -> bool:
    return order.status == OrderStatus.DISPATCHED.value
