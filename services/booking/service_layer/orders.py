"""点单: take an order on a firm's QR token, read, list and cancel orders.

A new order is taken and dispatched (dispatch.py) in one transaction, committed once: an
order for which no expert is free yet is taken all the same and waits, SUBMITTED with the
reason, for the next dispatch run. Nothing is acknowledged before that commit.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import (
    Order,
    OrderAction,
    OrderStatus,
    validate_clause_refs,
    validate_order,
)
from services.booking.domain.staff import EVERY, Reach
from services.booking.service_layer.authz import require_reach
from services.booking.service_layer.dispatch import (
    assign,
    dispatch_order,
    redispatch_after_commit,
)
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.qr_codes import firm_for_token, owner_of, visible
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import (
    FieldViolation,
    RateLimited,
    ValidationError,
    retry_on_conflict,
)
from services.common.paging import decode_token, one_page, page_size, query_key

KEY_MAX = 64
REASON_MAX = 500
_ORDER_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def new_order_id(today: date) -> str:
    """A booking number a person can read out: B + date + 6 random base-32 characters."""
    return f"B{today:%y%m%d}" + "".join(secrets.choice(_ORDER_ID_ALPHABET) for _ in range(6))


def create_order(
    uow: UnitOfWork, ctx: BookingContext, token: str, form: Mapping[str, Any], idempotency_key: str
) -> Order:
    """`form` may carry `clause_refs`: the clauses that motivated a pre-filled order."""
    # Take an order from the firm's QR token, then dispatch it; the same key again
    # returns the same order.
    if ctx.order_limiter is not None and token:
        allowed, wait = ctx.order_limiter.check(hashlib.sha256(token.encode()).hexdigest()[:24])
        if not allowed:
            raise RateLimited(messages.TOO_MANY_ORDERS, wait)
    key = (idempotency_key or "").strip()
    if not key or len(key) > KEY_MAX:
        raise ValidationError(
            [FieldViolation("idempotency_key", messages.BAD_IDEMPOTENCY_KEY.format(n=KEY_MAX))]
        )
    # The key is looked up only when a first attempt lost on it: a repeat (double tap,
    # retry) or the same key racing in on another connection. A new key's order is
    # written at the commit (the unique key is the check). The trade-off: a repeat's first
    # attempt dispatches before its key fails, holding its expert's row (PostgreSQL) or
    # the write lock (SQLite) for one dispatch and then rolling back; an order of another
    # firm taken in those milliseconds may be given another expert (review 23).
    attempts = iter((False, True))
    taken = retry_on_conflict(lambda: _create(uow, ctx, token, form, key, next(attempts)))
    if isinstance(taken, Order):
        return taken
    return dispatch_order(uow, ctx, taken, actor="dispatcher", quiet=True)


def _create(
    uow: UnitOfWork,
    ctx: BookingContext,
    token: str,
    form: Mapping[str, Any],
    key: str,
    repeat: bool,
) -> Order | str:
    """The new order, taken and dispatched in one transaction; or, for a key already
    used (`repeat`: looked up), the id of its order."""
    with uow:
        card = firm_for_token(uow, ctx, token)
        existing = uow.register.order_by_key(card.enterprise_id, key) if repeat else None
        if existing is not None:
            return existing.id
        request = validate_order(
            list(form.get("item_codes", [])),
            list(form.get("preferred_slots", [])),
            str(form.get("contact_name", "")),
            str(form.get("contact_phone", "")),
            str(form.get("note", "")),
            frozenset(ctx.menu),
            ctx.today(),
        )
        refs = validate_clause_refs([str(r) for r in form.get("clause_refs", [])])
        at = now()
        order = Order(
            id=new_order_id(ctx.today()),
            enterprise_id=card.enterprise_id,
            enterprise_name=card.name,
            region=card.region,
            item_codes=list(request.item_codes),
            preferred_slots=[str(s) for s in request.preferred_slots],
            contact_name=request.contact_name,
            contact_phone=request.contact_phone,
            note=request.note,
            idempotency_key=key,
            status="",
            created_at=at,
            updated_at=at,
            clause_refs=refs,
        )
        order.enter(OrderStatus.SUBMITTED.value, actor="firm", at=at, reason=messages.ORDER_TAKEN)
        # taken as it is now, written once at the commit as dispatch leaves it; a key used
        # before fails there (Conflict) and the retry finds its order
        uow.register.add_order(order)
        assign(uow, ctx, order, actor="dispatcher")
        uow.commit()
        return order


def get_order(
    uow: UnitOfWork, ctx: BookingContext, order_id: str, access: FirmAccess, reach: Reach
) -> Order:
    """One order; for a firm (its QR token, its session), only that firm's; for staff,
    only one within their `reach` (an expert's own visits, an inspector's region). Both
    are required: a caller that forgot one must not read as an unlimited one."""
    with uow:
        owner = owner_of(uow, ctx, access)  # the firm first: a bad one learns nothing
        order = visible(owner, uow.register.order(order_id), "order", order_id)
        require_reach(reach, order.expert_id, order.region, "order")
        return order


def list_orders(
    uow: UnitOfWork, enterprise_id: str, status: str, size: int, token: str, reach: Reach
) -> tuple[Sequence[Order], str]:
    """One page of orders within `reach`, newest first (services/common/paging.py)."""
    size = page_size(size)
    query = query_key(enterprise_id, status, reach.expert_id, *reach.regions)
    after = decode_token(token, query)
    with uow:
        rows = list(
            uow.register.orders(
                enterprise_id=enterprise_id,
                status=status,
                after=after,
                limit=size + 1,
                expert_id=reach.expert_id,
                regions=reach.regions,
            )
        )
    return one_page(rows, size, query, lambda o: o.id)


def cancel_order(
    uow: UnitOfWork,
    ctx: BookingContext,
    order_id: str,
    access: FirmAccess,
    *,
    actor: str,
    reason: str,
) -> Order:
    """The firm cancels its own order; the authority (`access` STAFF) must give a reason.
    Frees the slot, then dispatches what waited for it."""
    if not access.by_firm and not reason.strip():
        raise ValidationError([FieldViolation("reason", "the authority must say why it cancels")])
    if len(reason) > REASON_MAX:
        raise ValidationError(
            [FieldViolation("reason", messages.CANCEL_REASON_TOO_LONG.format(n=REASON_MAX))]
        )
    with uow:
        owner = owner_of(uow, ctx, access)
        order = visible(owner, uow.register.order(order_id, for_update=True), "order", order_id)
        order.move(
            OrderAction.CANCEL,
            actor="firm" if access.by_firm else actor,
            at=now(),
            reason=reason.strip() or messages.CANCELLED_BY_FIRM,
        )
        uow.register.release_slot(order.id)
        uow.commit()
    redispatch_after_commit(uow, ctx)
    return get_order(uow, ctx, order_id, access, EVERY)  # a firm or booking.admin
