"""Half-day slots "YYYY-MM-DD AM|PM"."""

from __future__ import annotations

from datetime import date

import pytest

from services.booking.domain.slots import Slot, parse_slot


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("2026-06-02 AM", Slot(date(2026, 6, 2), "AM")),
        ("2026-06-02 PM", Slot(date(2026, 6, 2), "PM")),
        ("2028-02-29 AM", Slot(date(2028, 2, 29), "AM")),
    ],
)
def test_parse_round_trip(text: str, slot: Slot) -> None:
    assert parse_slot(text) == slot
    assert str(slot) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-06-02",
        "2026-06-02 am",
        "2026-06-02  AM",
        " 2026-06-02 AM",
        "2026-06-02 AM ",
        "2026-6-2 AM",
        "2026/06/02 AM",
        "2026-06-02 EV",
        "2026-02-30 AM",
        "2026-13-01 PM",
        "２０２６-06-02 AM",
        "2026-06-02 AM PM",
        "2026-06-02T00:00 AM",
    ],
)
def test_malformed_slots_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_slot(text)


def test_trailing_newline_is_malformed() -> None:
    with pytest.raises(ValueError):
        parse_slot("2026-06-02 AM\n")


def test_slots_sort_by_day_then_half() -> None:
    slots = [parse_slot(s) for s in ("2026-06-03 AM", "2026-06-02 PM", "2026-06-02 AM")]
    assert [str(s) for s in sorted(slots)] == ["2026-06-02 AM", "2026-06-02 PM", "2026-06-03 AM"]


@pytest.mark.parametrize(
    ("text", "label"),
    [("2026-06-02 AM", "6月2日上午"), ("2026-12-31 PM", "12月31日下午")],
)
def test_label_in_chinese(text: str, label: str) -> None:
    assert parse_slot(text).label == label
