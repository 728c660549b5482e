"""Calendar arithmetic in the Asia/Shanghai calendar, for the policy's month windows."""

from __future__ import annotations

import calendar
import functools
from datetime import date, timedelta


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


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)
