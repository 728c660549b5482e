"""督单 statistics: the figures the city reports quote, by region, domain and month."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.booking.domain import messages
from services.booking.domain.orders import Order, OrderStatus
from services.booking.domain.tickets import Ticket, TicketStatus
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import start_of_day
from services.common.errors import FieldViolation, ValidationError
from services.common.instants import in_shanghai
from services.common.regions import region_filter
from services.common.values import FIRST_DAY, parse_day

ANSWERED = {OrderStatus.DISPATCHED, OrderStatus.VISITED, OrderStatus.CLOSED}
VISITED = {OrderStatus.VISITED, OrderStatus.CLOSED}


def figures(orders: Sequence[Order], tickets: Sequence[Ticket], today: date) -> dict[str, float]:
    verified = [t for t in tickets if t.status == TicketStatus.VERIFIED and t.verified_on]
    days = [(t.verified_on - t.found_on).days for t in verified if t.verified_on]
    return {
        "bookings_received": len(orders),
        "bookings_answered": sum(1 for o in orders if o.status in ANSWERED),
        "firms_served": len({o.enterprise_id for o in orders if o.status in VISITED}),
        "hazards_found": len(tickets),
        "hazards_eliminated": len(verified),
        "on_time_rate": round(sum(1 for t in verified if not t.closed_late) / len(verified), 4)
        if verified
        else 0.0,
        "median_days_to_fix": float(statistics.median(days)) if days else 0.0,
        "overdue_open": sum(1 for t in tickets if t.is_overdue(today)),
    }


def _bucket(
    orders: Sequence[Order],
    tickets: Sequence[Ticket],
    today: date,
    key_of: Callable[[Order], Iterable[str]],
) -> list[tuple[str, dict[str, float]]]:
    keys: dict[str, list[Order]] = {}
    for order in orders:
        for key in key_of(order):
            keys.setdefault(key, []).append(order)
    out = []
    for key in sorted(keys):
        ids = {o.id for o in keys[key]}
        out.append((key, figures(keys[key], [t for t in tickets if t.order_id in ids], today)))
    return out


@dataclass(frozen=True)
class Period:
    """What a statistics request covers: days `first`..`last` (Asia/Shanghai), orders of
    firms in `regions` (empty: every region)."""

    first: date
    last: date
    regions: tuple[str, ...]


def period(ctx: BookingContext, region: str, start: str, end: str) -> Period:
    """The period asked for: `to` defaults to today, `from` to a year before it; both are
    dates of record; a region filter names a township or a county."""
    last = parse_day(end, "to") if end else ctx.today()
    first = parse_day(start, "from") if start else max(FIRST_DAY, last - timedelta(days=365))
    if first > last:
        raise ValidationError([FieldViolation("from", messages.PERIOD_REVERSED)])
    return Period(first, last, region_filter(ctx.regions, region))


def get_stats(
    uow: UnitOfWork, ctx: BookingContext, region: str, start: str, end: str
) -> dict[str, object]:
    """The figures of the period asked for, in total and by region, domain and month."""
    asked = period(ctx, region, start, end)
    with uow:
        return read_stats(uow, ctx, asked)


def read_stats(uow: UnitOfWork, ctx: BookingContext, asked: Period) -> dict[str, object]:
    """In an open unit of work: the figures of `asked`."""
    return summarise(ctx, *read_records(uow, asked))


def read_records(uow: UnitOfWork, asked: Period) -> tuple[list[Order], list[Ticket]]:
    """In an open unit of work: the orders created in `asked` and their tickets."""
    orders = list(
        uow.register.orders_between(
            start_of_day(asked.first), start_of_day(asked.last + timedelta(days=1)), asked.regions
        )
    )
    return orders, list(uow.register.tickets_of_orders([o.id for o in orders]))


def summarise(
    ctx: BookingContext, orders: Sequence[Order], tickets: Sequence[Ticket]
) -> dict[str, object]:
    """The figures of these orders and tickets, in total and by region, domain and month."""
    today = ctx.today()
    domains = {c: (i.domain or "any") for c, i in ctx.menu.items()}
    return {
        "total": figures(orders, tickets, today),
        "by_region": _bucket(orders, tickets, today, lambda o: [o.region]),
        "by_domain": _bucket(
            orders, tickets, today, lambda o: sorted({domains.get(c, "any") for c in o.item_codes})
        ),
        "by_month": _bucket(
            orders, tickets, today, lambda o: [in_shanghai(o.created_at).strftime("%Y-%m")]
        ),
    }
