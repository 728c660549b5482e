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
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import structlog

from services.booking.domain import dispatch, messages
from services.booking.domain.orders import Order, OrderAction, OrderStatus
from services.booking.domain.records import Assignment, Offer
from services.booking.domain.slots import Slot, parse_slot
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import NotFound, PreconditionFailed

_log = structlog.get_logger("dispatch")


def dispatch_order(
    uow: UnitOfWork, ctx: BookingContext, order_id: str, *, actor: str, quiet: bool = False
) -> Order:
    """Assign the best free expert and slot, or leave the order SUBMITTED with the reason.

    `quiet`: an order that is no longer SUBMITTED is returned as it is (automatic runs).
    """
    with uow:
        order = uow.register.order(order_id, for_update=True)
        if order is None:
            raise NotFound(messages.no_such("order", order_id))
        if order.status != OrderStatus.SUBMITTED and quiet:
            return order
        if order.status != OrderStatus.SUBMITTED:
            order.move(OrderAction.DISPATCH, actor=actor, at=now())  # raises the precondition
        assign(uow, ctx, order, actor=actor)
        uow.commit()
        return order


def assign(uow: UnitOfWork, ctx: BookingContext, order: Order, *, actor: str) -> None:
    """Inside the caller's transaction: book the best free expert and half-day for the
    SUBMITTED `order` and move it to DISPATCHED, or note why it waits."""
    chosen = _assign(uow, ctx, order)
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


def _assign(uow: UnitOfWork, ctx: BookingContext, order: Order) -> dispatch.Candidate | None:
    """Try experts best first. Each expert's row is locked and its free slot recomputed
    (a dispatch that lost a race takes the expert's next free slot); the unique
    (expert, slot) index is the last word on any race left.

    First the usual case, in two statements (`book_best_offer`): the best-ranked
    expert no concurrent dispatch holds, locked, booked in their first free preferred
    half-day read afresh; the expert the loop below would book first. Only when that
    books nothing (nobody free, all of the best few held, a race lost) the loop runs.

    An expert whose row a concurrent dispatch holds is passed over at first (that
    dispatch is booking them now, which makes them the most recently assigned: the next
    order would rank them last anyway) and tried, waiting for the lock, only when no
    one else could take the order, so that no order waits while an expert is free."""
    booked = uow.register.book_best_offer(**_asked(ctx, order), order_id=order.id, at=now())
    if booked is not None:  # the usual case, in two statements (the best offer free to take)
        return dispatch.Candidate(booked.expert_id, parse_slot(booked.slot))
    preferred = [parse_slot(s) for s in order.preferred_slots]

    def attempt(expert_id: str, *, wait: bool) -> tuple[bool, dispatch.Candidate | None]:
        claim = functools.partial(_claim, uow, order, expert_id, preferred)
        return uow.register.with_expert_locked(expert_id, wait=wait, attempt=claim)

    busy: list[dispatch.Candidate] = []
    for candidate in ranked(uow, ctx, order):
        locked, chosen = attempt(candidate.expert_id, wait=False)
        if chosen is not None:
            return chosen
        if not locked:
            busy.append(candidate)
    for candidate in busy:  # holding no expert's lock (a failed claim releases its own)
        if (chosen := attempt(candidate.expert_id, wait=True)[1]) is not None:
            return chosen
    return None


def _claim(
    uow: UnitOfWork, order: Order, expert_id: str, preferred: Sequence[Slot]
) -> dispatch.Candidate | None:
    """Book the locked expert's first free preferred half-day, read afresh."""
    free = uow.register.free_slots(expert_id, order.preferred_slots)
    slot = next((s for s in preferred if str(s) in free), None)
    if slot is None:
        return None
    if uow.register.claim_slot(Assignment(expert_id, str(slot), slot.day, order.id, now())):
        return dispatch.Candidate(expert_id, slot)
    return None


BATCH = 8  # experts asked of the register at a time: most orders take the first


def ranked(uow: UnitOfWork, ctx: BookingContext, order: Order) -> Iterator[dispatch.Candidate]:
    """Every eligible expert once, best first, each with their first free preferred
    half-day: the register answers the best few (`offers`), the domain ranks them
    (dispatch.candidates); when all of those are tried, the next few, asked afresh. Local
    experts come first while any is free, then the others by fairness: the order of
    dispatch.candidates, then its `any_region` fallback."""
    asked = _asked(ctx, order)
    needed = asked["needed"]
    preferred = [parse_slot(s) for s in order.preferred_slots]
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
    the order: the experts who may take it, and which of their visits count for
    fairness (the window up to today)."""
    today = ctx.today()
    return {
        "enterprise_id": order.enterprise_id,
        "region": order.region,
        "needed": dispatch.needed_domains(
            order.item_codes, {c: i.domain for c, i in ctx.menu.items()}
        ),
        "preferred": order.preferred_slots,
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
