"""An order form submitted again (Back, then 提交预约 once more): the phone page's form
carries a new idempotency key each time it is loaded, so the key alone cannot tell. Before
it takes an order, the page asks `open_repeat` for an open order of the same firm with
the same items and half-days placed recently (domain/orders.py `repeats`), and shows that
order instead of taking a second. gRPC CreateOrder does not ask: its callers keep their
key across retries, and its idempotency is the key's (orders.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.booking.domain.orders import OPEN_STATUSES, Order, repeats, validate_order
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.qr_codes import firm_for_token
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import ValidationError

LOOK_BACK = 50  # the firm's newest open orders of each status looked at


def open_repeat(
    uow: UnitOfWork, ctx: BookingContext, token: str, form: Mapping[str, Any], key: str
) -> Order | None:
    """The open order of the token's firm that `form` asks for again, or None. An order
    taken with `key` itself is not one: that is a repeat CreateOrder answers by its key.
    A form with errors is None too (taking it says what is wrong)."""
    try:
        request = validate_order(
            list(form.get("item_codes", [])),
            list(form.get("preferred_slots", [])),
            str(form.get("contact_name", "")),
            str(form.get("contact_phone", "")),
            str(form.get("note", "")),
            frozenset(ctx.menu),
            ctx.today(),
        )
    except ValidationError:
        return None
    at = now()
    with uow:
        card = firm_for_token(uow, ctx, token)
        for status in OPEN_STATUSES:
            for order in uow.register.orders(
                enterprise_id=card.enterprise_id, status=status, limit=LOOK_BACK
            ):
                if order.idempotency_key != key and repeats(order, request, at):
                    return order
    return None
