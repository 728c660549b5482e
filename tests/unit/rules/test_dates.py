from __future__ import annotations

from datetime import date

import pytest

from services.common.values import parse_iso_date
from services.rules.domain.dates import add_months, within_months


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2026, 6, 30), -24, date(2024, 6, 30)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 1, 15), -13, date(2024, 12, 15)),
    ],
)
def test_add_months_clamps_to_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_within_months_is_inclusive_at_both_ends() -> None:
    as_of = date(2026, 6, 30)
    assert within_months(date(2025, 6, 30), as_of, 12)
    assert not within_months(date(2025, 6, 29), as_of, 12)
    assert within_months(as_of, as_of, 12)
    assert not within_months(date(2026, 7, 1), as_of, 12)  # after as_of: not yet happened


@pytest.mark.parametrize("text", ["2026-2-1", "2026/02/01", "2026-02-30", "", "x", "20260201"])
def test_parse_iso_date_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_date(text)
