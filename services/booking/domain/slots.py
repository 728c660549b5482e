"""Half-day slots, written "YYYY-MM-DD AM" or "YYYY-MM-DD PM"."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from services.common.values import parse_iso_date

_SLOT = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) (AM|PM)")


@dataclass(frozen=True, order=True)
class Slot:
    day: date
    half: str  # "AM" or "PM"

    def __str__(self) -> str:
        return f"{self.day.isoformat()} {self.half}"

    @property
    def label(self) -> str:
        return f"{self.day.month}月{self.day.day}日{'上午' if self.half == 'AM' else '下午'}"


@functools.lru_cache(maxsize=8192)  # dispatch parses every expert's offered half-days per order
def parse_slot(text: str) -> Slot:
    """Parse "YYYY-MM-DD AM|PM" on a day between 1949 and 2199; ValueError on anything else."""
    match = _SLOT.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError("must be a half-day written YYYY-MM-DD AM or YYYY-MM-DD PM")
    return Slot(parse_iso_date(match.group(1)), match.group(2))


def ahead(slots: Iterable[str], today: date) -> list[str]:
    """The half-days of `slots` (written "YYYY-MM-DD AM|PM") that are still ahead on
    `today` (Asia/Shanghai, the context's clock), in their order: those of a later day.

    Today's own half-days are never ahead, its afternoon included. Booking's clock is a
    day (`BookingContext.today`, pinned by tests and the demo), with no time of day; and
    the order form already offers only days from tomorrow (orders.bookable_slots), so
    that an expert is never sent the same day without notice: dispatch keeps to the same
    rule, whether it runs when the order is taken, when it is retried or when an admin
    asks. A half-day that cannot be read is not ahead either."""
    kept: list[str] = []
    for text in slots:
        try:
            if parse_slot(text).day > today:
                kept.append(text)
        except ValueError:
            continue
    return kept
