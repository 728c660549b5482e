"""The phone page's order form, before CreateOrder takes its order (orders.py).

Submitted again (Back, then 提交预约 once more): the form carries a new idempotency key
each time it is loaded, so the key alone cannot tell. Before it takes an order, the page
asks `open_repeat` for an open order of the same firm with the same items and half-days
placed recently (domain/orders.py `repeats`), and shows that order instead of taking a
second; when the form's contact, mobile or note differ from that order's, the form comes
back saying they were not saved and linking the order (cancel it, then order again).
gRPC CreateOrder does not ask: its callers keep their key across retries, and its
idempotency is the key's.

A form refused for its key alone (a missing or overlong one) is refused before its fields
are read: `problems` names theirs too, so the page shows every error at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.booking.domain.orders import (
    OPEN_STATUSES,
    Order,
    OrderRequest,
    repeats,
    same_contact,
    validate_clause_refs,
)
from services.booking.service_layer.orders import form_refs, form_request
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.qr_codes import firm_for_token
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import FieldViolation, ValidationError

LOOK_BACK = 50  # the firm's newest open orders of each status looked at


def checked(ctx: BookingContext, form: Mapping[str, Any]) -> OrderRequest:
    """The form's fields checked as CreateOrder checks them (every field's problems in
    one ValidationError)."""
    bad: list[FieldViolation] = []
    request = None
    try:
        request = form_request(ctx, form)
    except ValidationError as exc:
        bad.extend(exc.violations)
    try:
        validate_clause_refs(form_refs(form))
    except ValidationError as exc:
        bad.extend(exc.violations)
    if bad or request is None:
        raise ValidationError(bad)
    return request


def problems(ctx: BookingContext, form: Mapping[str, Any]) -> list[FieldViolation]:
    """What is wrong with the form's fields (`checked`), none when nothing is."""
    try:
        checked(ctx, form)
    except ValidationError as exc:
        return list(exc.violations)
    return []


@dataclass(frozen=True)
class Repeat:
    """An open order a form asks for again; `edited`: the form's contact, mobile or note
    differ from the order's (the page then says the edits were not saved and how to make
    them, instead of dropping them unsaid: review 48 F4)."""

    order: Order
    edited: bool


def open_repeat(
    uow: UnitOfWork, ctx: BookingContext, token: str, form: Mapping[str, Any], key: str
) -> Repeat | None:
    """The open order of the token's firm that `form` asks for again, or None. An order
    taken with `key` itself is not one: that is a repeat CreateOrder answers by its key.
    A form with errors is None too (taking it says what is wrong)."""
    try:
        request = checked(ctx, form)
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
                    return Repeat(order, not same_contact(order, request))
    return None
