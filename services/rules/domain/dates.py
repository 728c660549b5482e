"""Calendar arithmetic in the Asia/Shanghai calendar, for the policy's month windows."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from services.common.values import FIRST_YEAR, LAST_YEAR  # 1949, 2199: every date a caller sends

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_iso_date(text: str) -> date:
    """Parse a strict YYYY-MM-DD calendar date between 1949 and 2199; ValueError otherwise."""
    if not _ISO_DATE.fullmatch(text):
        raise ValueError("must be a date written YYYY-MM-DD")
    day = date.fromisoformat(text)
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"must be between {FIRST_YEAR} and {LAST_YEAR}")
    return day


def add_months(day: date, months: int) -> date:
    """Shift by whole calendar months, clamping to the month's last day (01-31 + 1 → 02-28)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def within_months(day: date, as_of: date, months: int) -> bool:
    """True when `day` lies in the N months that end on `as_of`, both ends inclusive."""
    return add_months(as_of, -months) <= day <= as_of


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)
