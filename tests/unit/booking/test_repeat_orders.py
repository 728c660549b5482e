"""An order asked for again (review 47a F2): the same items and half-days of an open order
placed within the window; anything else is another order (domain/orders.py `repeats`)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.booking.domain.orders import REPEAT_WINDOW, OrderRequest, OrderStatus, repeats
from services.booking.domain.slots import Slot
from tests.unit.booking.test_order_states import AT, make_order

AM, PM = Slot(date(2026, 6, 2), "AM"), Slot(date(2026, 6, 3), "PM")  # make_order's half-days
SOON = AT + timedelta(minutes=2)


def asked(
    items: tuple[str, ...] = ("fire_safety",), slots: tuple[Slot, ...] = (AM, PM)
) -> OrderRequest:
    return OrderRequest(items, slots, "王经理", "13912345678", "另一个备注")


def test_the_same_items_and_half_days_soon_after_repeat_an_open_order() -> None:
    for status in (OrderStatus.SUBMITTED, OrderStatus.DISPATCHED):
        assert repeats(make_order(status), asked(), SOON)
    # the half-days in another order, at the window's end, the instant as SQLite gives it
    naive = make_order()
    naive.created_at = AT.replace(tzinfo=None)
    assert repeats(naive, asked(slots=(PM, AM)), AT + REPEAT_WINDOW)


@pytest.mark.parametrize("status", [OrderStatus.VISITED, OrderStatus.CLOSED, OrderStatus.CANCELLED])
def test_an_order_no_longer_open_is_not_asked_for_again(status: OrderStatus) -> None:
    assert not repeats(make_order(status), asked(), SOON)


def test_other_items_other_half_days_or_later_is_another_order() -> None:
    assert not repeats(make_order(), asked(items=("fire_safety", "gas_safety")), SOON)
    assert not repeats(make_order(), asked(items=("gas_safety",)), SOON)
    assert not repeats(make_order(), asked(slots=(AM, Slot(date(2026, 6, 3), "AM"))), SOON)
    assert not repeats(make_order(), asked(slots=(AM, PM, Slot(date(2026, 6, 4), "AM"))), SOON)
    assert not repeats(make_order(), asked(), AT + REPEAT_WINDOW + timedelta(seconds=1))
