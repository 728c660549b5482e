"""派单: assign an order the best free expert and half-day, and retry the waiting ones.

The choice is the domain's (domain/dispatch.py); this module feeds it fresh bookings
under each candidate expert's row lock and books the slot through the repository, whose
unique (expert, slot) index settles any race left: a dispatch that lost one tries the
expert's next free slot, then the next expert.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta

from services.booking.domain import dispatch, messages
from services.booking.domain.orders import Order, OrderAction, OrderStatus
from services.booking.domain.records import Assignment, Expert
from services.booking.domain.slots import parse_slot
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import NotFound, PreconditionFailed


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
        chosen = _assign(uow, ctx, order)
        if chosen is None:
            order.dispatch_note = messages.NO_EXPERT
        else:
            order.expert_id, order.slot, order.dispatch_note = (
                chosen.expert_id,
                str(chosen.slot),
                "",
            )
            order.move(
                OrderAction.DISPATCH,
                actor=actor,
                at=now(),
                reason=messages.DISPATCHED_TO.format(
                    expert=chosen.expert_id, slot=chosen.slot.label
                ),
            )
        uow.commit()
        return order


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


def _assign(uow: UnitOfWork, ctx: BookingContext, order: Order) -> dispatch.Candidate | None:
    """Try experts best first. Each expert's row is locked and its free slot recomputed from
    fresh assignments, so a dispatch that lost a race takes the expert's next free slot;
    the unique (expert, slot) index is the last word on any race left."""
    preferred = [parse_slot(s) for s in order.preferred_slots]
    tried: set[str] = set()
    for candidate in _ranked(uow, ctx, order):
        if candidate.expert_id in tried:
            continue
        tried.add(candidate.expert_id)
        expert = uow.register.expert(candidate.expert_id, for_update=True)
        if expert is None:
            continue
        view = _view(expert, uow.register.assignments_of(expert.id))  # fresh, under the lock
        slot = dispatch.first_free_slot(view, preferred)
        if slot is None:
            continue
        if uow.register.claim_slot(Assignment(expert.id, str(slot), slot.day, order.id, now())):
            return dispatch.Candidate(expert.id, slot)
    return None


def _ranked(uow: UnitOfWork, ctx: BookingContext, order: Order) -> Iterator[dispatch.Candidate]:
    """The best candidates, then (if all of those were lost to racing dispatches) every
    eligible expert whatever their region."""
    yield from _candidates(uow, ctx, order, ctx.today())
    yield from _candidates(uow, ctx, order, ctx.today(), any_region=True)


def _candidates(
    uow: UnitOfWork, ctx: BookingContext, order: Order, today: date, any_region: bool = False
) -> list[dispatch.Candidate]:
    booked = uow.register.booked()
    recent = uow.register.recent_visits(
        today - timedelta(days=dispatch.FAIRNESS_WINDOW_DAYS), today
    )
    last = uow.register.last_assigned()
    views = [
        _view(e, booked.get(e.id, []), recent.get(e.id, 0), last.get(e.id))
        for e in uow.register.experts()
    ]
    needed = dispatch.needed_domains(order.item_codes, {c: i.domain for c, i in ctx.menu.items()})
    return dispatch.candidates(
        enterprise_id=order.enterprise_id,
        region=order.region,
        needed=needed,
        preferred=[parse_slot(s) for s in order.preferred_slots],
        experts=views,
        any_region=any_region,
    )


def _view(
    expert: Expert, mine: Sequence[Assignment], recent: int = 0, last: datetime | None = None
) -> dispatch.ExpertView:
    """What dispatch needs to know of an expert: offer, bookings, fairness counters."""
    per_day: dict[date, int] = {}
    for a in mine:
        per_day[a.day] = per_day.get(a.day, 0) + 1
    return dispatch.ExpertView(
        expert_id=expert.id,
        domains=frozenset(expert.domains),
        regions=frozenset(expert.regions),
        slots=frozenset(parse_slot(s) for s in expert.slots),
        max_visits_per_day=expert.max_visits_per_day,
        active=expert.active,
        conflicts=frozenset(expert.conflicts),
        booked=frozenset(parse_slot(a.slot) for a in mine),
        visits_per_day=per_day,
        recent_visits=recent,
        last_assigned_at=last,
    )
