"""The white list's size month by month, from its entries (pure).

An entry counts on a day `d` when it lists the firm that day (WhitelistEntry.listed_on,
the rule ListWhitelist and the gate apply): granted by then, not closed (revoked or
expired: `revoked_on`) by then, and `d` not past its `valid_until` (an entry that lapsed
without a later decision to close it). `valid_until` is the latest extension; an entry
extended before it lapsed was active without a break, so the stored entries are enough.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from services.rules.domain.register import WhitelistEntry

MAX_MONTHS = 36


@dataclass(frozen=True)
class MonthSize:
    month: str  # YYYY-MM
    as_of: date  # the month's last day, or today for the current month
    size: int
    granted: int
    closed: int


def months(first: date, last: date) -> list[tuple[int, int]]:
    """(year, month) from `first`'s month to `last`'s, inclusive."""
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def sizes(
    entries: Iterable[WhitelistEntry], span: Sequence[tuple[int, int]], today: date
) -> list[MonthSize]:
    """One MonthSize per month of `span` up to today's month (later months are left out)."""
    listed = list(entries)
    out = []
    for year, month in span:
        first = date(year, month, 1)
        if first > today:
            break
        end = min(date(year, month, calendar.monthrange(year, month)[1]), today)
        out.append(
            MonthSize(
                month=f"{year:04d}-{month:02d}",
                as_of=end,
                size=sum(1 for e in listed if e.listed_on(end)),
                granted=sum(1 for e in listed if first <= e.granted_on <= end),
                closed=sum(
                    1 for e in listed if e.revoked_on is not None and first <= e.revoked_on <= end
                ),
            )
        )
    return out
