"""ListWhitelistSizes: the white list's size month by month (the supervisors' chart)."""

from __future__ import annotations

import re
from datetime import date

from services.common.errors import FieldViolation, ValidationError
from services.common.regions import region_filter
from services.common.values import FIRST_DAY, parse_iso_date, preview, written_day
from services.rules.domain.whitelist_sizes import MAX_MONTHS, MonthSize, months, sizes
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.unit_of_work import UnitOfWork

_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")  # ASCII digits only (review 72)


def _month(text: str, field: str) -> date:
    if not _MONTH.fullmatch(text):
        raise ValidationError([FieldViolation(field, f"{preview(text)}: must be YYYY-MM")])
    try:
        return parse_iso_date(text + "-01")
    except ValueError as exc:  # quote what was sent, not the day made of it (review 72)
        why = str(exc) if written_day(text + "-01") else "must be YYYY-MM, a month 01 to 12"
        raise ValidationError([FieldViolation(field, f"{preview(text)}: {why}")]) from exc


def span(today: date, from_month: str, to_month: str) -> list[tuple[int, int]]:
    """The months asked for: default the twelve ending with today's (none before the first
    month of record: 1949-01, review 47b N1); at most MAX_MONTHS."""
    last = _month(to_month, "to_month") if to_month else today.replace(day=1)
    if from_month:
        first = _month(from_month, "from_month")
    else:
        back = last.year * 12 + last.month - 1 - 11
        first = max(date(back // 12, back % 12 + 1, 1), FIRST_DAY)
    if first > last:
        raise ValidationError([FieldViolation("from_month", "must not be after to_month")])
    listed = months(first, last)
    if len(listed) > MAX_MONTHS:
        raise ValidationError([FieldViolation("to_month", f"at most {MAX_MONTHS} months")])
    return listed


def whitelist_sizes(
    uow: UnitOfWork, ctx: RulesContext, region: str, from_month: str, to_month: str
) -> list[MonthSize]:
    """The size at the end of each month asked for (up to today), of a region or all."""
    today = ctx.today()
    asked = span(today, from_month, to_month)
    names = region_filter(ctx.regions, region)
    first = date(asked[0][0], asked[0][1], 1)
    with uow:
        entries = list(uow.register.entries_between(names, first, today))
    return sizes(entries, asked, today)
