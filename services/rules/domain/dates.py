"""Calendar arithmetic in the Asia/Shanghai calendar, for the policy's month windows."""

from __future__ import annotations

import calendar
import functools
from datetime import date, timedelta

from services.common.values import LAST_DAY


@functools.lru_cache(maxsize=4096)
def add_months(day: date, months: int) -> date:
    """Shift by whole calendar months, clamping to the month's last day (01-31 + 1 → 02-28).
    Remembered: every decision shifts its as_of by the policy's few windows."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def within_months(day: date, as_of: date, months: int) -> bool:
    """True when `day` lies in the N months that end on `as_of`, both ends inclusive."""
    return add_months(as_of, -months) <= day <= as_of


def on_record(day: date) -> date:
    """A date an answer carries (a decision's valid_until, its inspection deadline), held
    to the last date of record (2199-12-31, services/common/values.py): a decision as of
    late 2199 is valid to the end of 2199, never into 2200."""
    return min(day, LAST_DAY)


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)
