"""派单: assign an order the best free expert and half-day, and retry the waiting ones.

The ranking is the domain's (domain/dispatch.py); the register's query (`offers`) finds
the few best eligible experts free in the order's half-days, and the domain ranks them.
Most orders are booked by the register's `book_best_offer` in two statements: the
query's first expert not held by a concurrent dispatch, locked and booked (the query
ranks as the domain does: tests/integration/booking/test_dispatch_query.py).
Under each candidate expert's row lock, this module reads the expert's free half-days
afresh and books one through the repository, whose unique (expert, slot) index settles
any race left: a dispatch that lost one tries the expert's next free slot, then the next
expert.

Only half-days still ahead are ever booked (domain/slots.py `ahead`: a day after today,
Asia/Shanghai, the context's clock): every query is asked for those of the order's
preferred half-days alone, when the order is taken, retried, swept or dispatched by an
admin. An order none of whose half-days is ahead any more is cancelled by the system
with a reason telling the firm to book again, instead of being retried forever.
An order whose expert can no longer take it (their own change) is taken from them and
dispatched again in the transaction of that change (`reassign_from`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import structlog

from services.booking.domain import dispatch, messages
from services.booking.domain.orders import HalfDaysPassed, Order, OrderAction, OrderStatus
from services.booking.domain.records import Assignment, Expert, Offer
from services.booking.domain.slots import Slot, ahead, parse_slot
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import NotFound, PreconditionFailed

_log = structlog.get_logger("dispatch")


def dispatch_order(
    uow: UnitOfWork, ctx: BookingContext, order_id: str, *, actor: str, quiet: bool = False
) -> Order:
    """Assign the best free expert and a half-day still ahead, or leave the order
    SUBMITTED with the reason; an order none of whose half-days is ahead is cancelled
    by the system (`assign`).

    `quiet`: an order that is no longer SUBMITTED is returned as it is (automatic runs).
    Not quiet (an admin's DispatchOrder): an order that is not SUBMITTED, or whose
    half-days have all passed (HalfDaysPassed), is FAILED_PRECONDITION and nothing
    changes.
    """
    with uow:
        order = uow.register.order(order_id, for_update=True)
        if order is None:
            raise NotFound(messages.no_such("order", order_id))
        if order.status != OrderStatus.SUBMITTED and quiet:
            return order
        if order.status != OrderStatus.SUBMITTED:
            order.move(OrderAction.DISPATCH, actor=actor, at=now())  # raises the precondition
        if not quiet and not ahead(order.preferred_slots, ctx.today()):
            raise HalfDaysPassed()
        assign(uow, ctx, order, actor=actor)
        uow.commit()
        return order


def assign(
    uow: UnitOfWork, ctx: BookingContext, order: Order, *, actor: str, wait: bool = True
) -> None:
    """Inside the caller's transaction: book the best free expert and half-day still
    ahead for the SUBMITTED `order` and move it to DISPATCHED, or note why it waits.
    When none of its half-days is ahead any more, retrying could never dispatch it: it
    is cancelled by the system, its note and history telling the firm to book again.
    `wait`: whether an expert a concurrent dispatch holds is waited for (`_assign`)."""
    if not ahead(order.preferred_slots, ctx.today()):
        order.dispatch_note = messages.SLOTS_PASSED
        order.move(OrderAction.CANCEL, actor="dispatcher", at=now(), reason=messages.SLOTS_PASSED)
        return
    chosen = _assign(uow, ctx, order, wait=wait)
    if chosen is None:
        order.dispatch_note = messages.NO_EXPERT
        return
    order.expert_id, order.slot, order.dispatch_note = chosen.expert_id, str(chosen.slot), ""
    order.move(
        OrderAction.DISPATCH,
        actor=actor,
        at=now(),
        reason=messages.DISPATCHED_TO.format(expert=chosen.expert_id, slot=chosen.slot.label),
    )


def reassign_from(uow: UnitOfWork, ctx: BookingContext, expert: Expert) -> list[Order]:
    """Inside the caller's transaction, which changed `expert` (their row locked): each
    order dispatched to them for a half-day still ahead that they can no longer take
    (domain dispatch.unfit: deactivated, that half-day withdrawn, a conflict of interest
    with the firm, a needed domain dropped) is taken from them (DISPATCHED → SUBMITTED,
    the half-day freed, its history saying why) and dispatched again; one that nobody
    can take now waits with the reason, as any waiting order. An order of a half-day
    already passed is left as it is: its visit may have taken place and be recorded
    still. Returns the orders taken from the expert, as they stand now.

    Dispatched again without waiting for an expert that a concurrent dispatch holds:
    this transaction holds `expert`'s row, which that dispatch may be waiting for; such
    an order waits instead, and the retry after the commit (redispatch_after_commit)
    takes it."""
    today = ctx.today()
    domains = {code: item.domain for code, item in ctx.menu.items()}
    moved: list[Order] = []
    for order in uow.register.dispatched_orders_of(expert.id, after=today):
        reason = dispatch.unfit(expert, order, dispatch.needed_domains(order.item_codes, domains))
        if reason is None:
            continue
        uow.register.release_slot(order.id)
        order.expert_id, order.slot = None, None
        order.move(OrderAction.UNASSIGN, actor="dispatcher", at=now(), reason=reason)
        moved.append(order)
    if moved:
        uow.flush()  # the freed half-days and the expert's new offer, before dispatch reads
    for order in moved:
        assign(uow, ctx, order, actor="dispatcher", wait=False)
    return moved


def redispatch_waiting(uow: UnitOfWork, ctx: BookingContext) -> int:
    """Retry every order still waiting for an expert (availability changed); returns how
    many were dispatched."""
    with uow:
        waiting = uow.register.submitted_order_ids()
    done = 0
    for order_id in waiting:
        try:
            order = dispatch_order(uow, ctx, order_id, actor="dispatcher", quiet=True)
        except PreconditionFailed:
            continue
        done += order.status == OrderStatus.DISPATCHED
    return done


def redispatch_after_commit(uow: UnitOfWork, ctx: BookingContext) -> None:
    """After a change the caller has committed (an expert's availability, a cancelled
    order), retry the waiting orders, best effort. A failure here (the database gone or
    stalled between the two transactions) is logged, not raised: the caller's change
    stands and is answered as done, and serve's periodic sweep retries the waiting
    orders (`redispatch_waiting`)."""
    try:
        redispatch_waiting(uow, ctx)
    except Exception:
        _log.exception("waiting orders not retried after a committed change")


def _assign(
    uow: UnitOfWork, ctx: BookingContext, order: Order, *, wait: bool = True
) -> dispatch.Candidate | None:
    """Try experts best first, in the order's half-days still ahead (`_asked`). Each
    expert's row is locked and its free slot recomputed (a dispatch that lost a race
    takes the expert's next free slot); the unique (expert, slot) index is the last word
    on any race left.

    First the usual case, in two statements (`book_best_offer`): the best-ranked
    expert no concurrent dispatch holds, locked, booked in their first free preferred
    half-day read afresh; the expert the loop below would book first. Only when that
    books nothing (nobody free, all of the best few held, a race lost) the loop runs.

    An expert whose row a concurrent dispatch holds is passed over at first (that
    dispatch is booking them now, which makes them the most recently assigned: the next
    order would rank them last anyway) and tried, waiting for the lock, only when no
    one else could take the order, so that no order waits while an expert is free;
    unless not `wait` (the caller holds another expert's row: `reassign_from`)."""
    asked = _asked(ctx, order)
    booked = uow.register.book_best_offer(**asked, order_id=order.id, at=now())
    if booked is not None:  # the usual case, in two statements (the best offer free to take)
        return dispatch.Candidate(booked.expert_id, parse_slot(booked.slot))
    preferred = [parse_slot(s) for s in asked["preferred"]]

    def attempt(expert_id: str, *, wait: bool) -> tuple[bool, dispatch.Candidate | None]:
        claim = functools.partial(_claim, uow, asked, order, expert_id, preferred)
        return uow.register.with_expert_locked(expert_id, wait=wait, attempt=claim)

    busy: list[dispatch.Candidate] = []
    for candidate in ranked(uow, ctx, order):
        locked, chosen = attempt(candidate.expert_id, wait=False)
        if chosen is not None:
            return chosen
        if not locked:
            busy.append(candidate)
    if not wait:
        return None
    for candidate in busy:  # holding no expert's lock (a failed claim releases its own)
        if (chosen := attempt(candidate.expert_id, wait=True)[1]) is not None:
            return chosen
    return None


def _claim(
    uow: UnitOfWork,
    asked: dict[str, Any],
    order: Order,
    expert_id: str,
    preferred: Sequence[Slot],
) -> dispatch.Candidate | None:
    """Book the locked expert's first free half-day of `preferred`, read afresh, if they
    may still take the order (`asked`): a change of theirs committed since the offers
    were read (deactivated, a conflict declared) is seen here."""
    free = uow.register.free_slots(
        expert_id,
        [str(s) for s in preferred],
        enterprise_id=asked["enterprise_id"],
        needed=asked["needed"],
    )
    slot = next((s for s in preferred if str(s) in free), None)
    if slot is None:
        return None
    if uow.register.claim_slot(Assignment(expert_id, str(slot), slot.day, order.id, now())):
        return dispatch.Candidate(expert_id, slot)
    return None


BATCH = 8  # experts asked of the register at a time: most orders take the first


def ranked(uow: UnitOfWork, ctx: BookingContext, order: Order) -> Iterator[dispatch.Candidate]:
    """Every eligible expert once, best first, each with their first free preferred
    half-day still ahead: the register answers the best few (`offers`), the domain ranks
    them (dispatch.candidates); when all of those are tried, the next few, asked afresh.
    Local experts come first while any is free, then the others by fairness: the order
    of dispatch.candidates, then its `any_region` fallback."""
    asked = _asked(ctx, order)
    needed = asked["needed"]
    preferred = [parse_slot(s) for s in asked["preferred"]]
    tried: set[str] = set()
    while True:
        offers = uow.register.offers(**asked, skip=tried, limit=BATCH)
        best = dispatch.candidates(
            enterprise_id=order.enterprise_id,
            region=order.region,
            needed=needed,
            preferred=preferred,
            experts=_views(offers, order.region, needed),
        )
        if not best:  # nobody left (every offer is eligible: an empty answer is the end)
            return
        for candidate in best:
            tried.add(candidate.expert_id)
            yield candidate


def _asked(ctx: BookingContext, order: Order) -> dict[str, Any]:
    """What the register's dispatch queries (`offers`, `book_best_offer`) are asked for
    the order: the experts who may take it, in which half-days (the order's preferred
    ones still ahead, in its order: never one already passed), and which of their visits
    count for fairness (the window up to today)."""
    today = ctx.today()
    return {
        "enterprise_id": order.enterprise_id,
        "region": order.region,
        "needed": dispatch.needed_domains(
            order.item_codes, {c: i.domain for c, i in ctx.menu.items()}
        ),
        "preferred": ahead(order.preferred_slots, today),
        "since": today - timedelta(days=dispatch.FAIRNESS_WINDOW_DAYS),
        "until": today,
    }


def _views(
    offers: Sequence[Offer], region: str, needed: frozenset[str]
) -> list[dispatch.ExpertView]:
    """The experts of `offers` as the domain's ranking sees them, as far as this order is
    concerned: the register checked active, domains, conflicts and room on the day, so
    each offers its first free preferred half-day, serves the firm's region or not, and
    has its fairness counters."""
    return [
        dispatch.ExpertView(
            expert_id=offer.expert_id,
            domains=needed,
            regions=frozenset({region}) if offer.local else frozenset(),
            slots=frozenset({parse_slot(offer.slot)}),
            max_visits_per_day=1,  # no visits counted here: the register checked the day
            active=True,
            recent_visits=offer.recent_visits,
            last_assigned_at=offer.last_assigned_at,
        )
        for offer in offers
    ]
