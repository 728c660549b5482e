"""The supervisors' dashboard (督单) as data: what each chart and table shows.

One unit of work reads the period's orders and tickets and today's overdue counts; the
white list's size over time comes from the rules service afterwards (outside the
transaction: a remote call), and is None while rules cannot answer, so the rest of the
page still renders. Labels and drawing are the web entrypoint's (entrypoints/web/
dashboard.py); nothing here is Chinese.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog

from services.booking.domain import messages
from services.booking.domain.rules_service import RulesError, WhitelistSize
from services.booking.domain.tickets import Ticket, TicketStatus
from services.booking.service_layer import stats
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.errors import FieldViolation, ValidationError

OVERDUE_LISTED = 500  # the overdue list under the charts (of the region asked for)
MAX_WHITELIST_MONTHS = 36  # what ListWhitelistSizes answers at most
MAX_MONTHS = 60  # a longer period would draw hundreds of bars
_log = structlog.get_logger("dashboard")


@dataclass(frozen=True)
class MonthHazards:
    month: str  # YYYY-MM
    found: int  # tickets found that month
    eliminated: int  # tickets verified that month


@dataclass(frozen=True)
class DomainFix:
    domain: str  # a Domain value, or "any"
    eliminated: int
    on_time_rate: float
    median_days: float


@dataclass(frozen=True)
class Board:
    stats: dict[str, Any]  # stats.summarise: total, by_region, by_domain, by_month
    overdue_by_region: list[tuple[str, int]]
    hazards_by_month: list[MonthHazards]
    fix_by_domain: list[DomainFix]
    whitelist: list[WhitelistSize] | None  # None: the rules service did not answer
    overdue: list[Ticket]
    firm_names: dict[str, str]
    today: date
    first: date
    last: date


def month_keys(first: date, last: date) -> list[str]:
    """YYYY-MM of every month from `first`'s to `last`'s."""
    out, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def hazards_by_month(tickets: Sequence[Ticket], months: Sequence[str]) -> list[MonthHazards]:
    """Per month: findings made (found_on) and findings verified (verified_on)."""
    found = {m: 0 for m in months}
    eliminated = {m: 0 for m in months}
    for t in tickets:
        if (key := f"{t.found_on:%Y-%m}") in found:
            found[key] += 1
        verified = t.verified_on if t.status == TicketStatus.VERIFIED else None
        if verified and (key := f"{verified:%Y-%m}") in eliminated:
            eliminated[key] += 1
    return [MonthHazards(m, found[m], eliminated[m]) for m in months]


def fix_by_domain(by_domain: Sequence[tuple[str, dict[str, float]]]) -> list[DomainFix]:
    """On-time rate and median days to fix of every domain with a verified finding."""
    return [
        DomainFix(key, int(f["hazards_eliminated"]), f["on_time_rate"], f["median_days_to_fix"])
        for key, f in by_domain
        if f["hazards_eliminated"]
    ]


def dashboard(uow: UnitOfWork, ctx: BookingContext, region: str, start: str, end: str) -> Board:
    """Every figure of the page for the period and region asked for."""
    asked = stats.period(ctx, region, start, end)
    months = month_keys(asked.first, asked.last)
    if len(months) > MAX_MONTHS:
        raise ValidationError(
            [FieldViolation("from", messages.PERIOD_TOO_LONG.format(months=MAX_MONTHS))]
        )
    today = ctx.today()
    with uow:
        orders, tickets = stats.read_records(uow, asked)
        figures = stats.summarise(ctx, orders, tickets)
        overdue_counts = uow.register.overdue_by_region(today, asked.regions)
        overdue = list(uow.register.overdue_tickets(today, asked.regions, OVERDUE_LISTED))
        names = uow.register.firm_names({t.enterprise_id for t in overdue})
    streets = sorted(set(overdue_counts) | {o.region for o in orders})
    return Board(
        stats=figures,
        overdue_by_region=[(s, overdue_counts.get(s, 0)) for s in streets],
        hazards_by_month=hazards_by_month(tickets, months),
        fix_by_domain=fix_by_domain(figures["by_domain"]),  # type: ignore[arg-type]
        whitelist=whitelist(ctx, region, months),
        overdue=overdue,
        firm_names={t.enterprise_id: names.get(t.enterprise_id, t.enterprise_id) for t in overdue},
        today=today,
        first=asked.first,
        last=asked.last,
    )


def whitelist(
    ctx: BookingContext, region: str, months: Sequence[str]
) -> list[WhitelistSize] | None:
    """The white list's size month by month (the last 36 months of the period at most),
    or None while the rules service cannot answer."""
    wanted = list(months)[-MAX_WHITELIST_MONTHS:]
    try:
        return ctx.rules.whitelist_sizes(region, wanted[0], wanted[-1])
    except RulesError as exc:
        _log.warning("white-list sizes unavailable", status=exc.status)
        return None
