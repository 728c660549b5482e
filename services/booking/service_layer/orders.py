"""点单: take an order on a firm's QR token, read, list and cancel orders.

A new order is taken and dispatched (dispatch.py) in one transaction, committed once: an
order for which no expert is free yet is taken all the same and waits, SUBMITTED with the
reason, for the next dispatch run. Nothing is acknowledged before that commit. Orders
that arrive together at the gRPC server share one such transaction (`take_orders`,
order_groups.py), each as it would be taken alone.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, TypeVar

import structlog

from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import (
    KeyUsedForOtherOrder,
    Order,
    OrderAction,
    OrderRequest,
    OrderStatus,
    same_order,
    validate_clause_refs,
    validate_order,
)
from services.booking.domain.records import FirmCard
from services.booking.domain.staff import EVERY, Reach
from services.booking.service_layer.authz import require_reach
from services.booking.service_layer.dispatch import (
    assign,
    dispatch_order,
    redispatch_after_commit,
)
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.qr_codes import (
    firm_for_token,
    firms_for_tokens,
    owner_of,
    session_owner,
    verified_token,
    visible,
)
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.call_groups import one_by_one
from services.common.clock import now
from services.common.errors import (
    Conflict,
    DeadlineExceeded,
    DomainError,
    FieldViolation,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    ValidationError,
    retry_on_conflict,
)
from services.common.paging import decode_token, one_page, page_size, query_key
from services.common.ratelimit import RateLimiter
from services.common.values import control_problem, invisible, trim

_log = structlog.get_logger("orders")
KEY_MAX = 64
T = TypeVar("T")
REASON_MAX = 500
_ORDER_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32: five bits a character
_SHIFTS = (0, 5, 10, 15, 20, 25)


def new_order_id(today: date) -> str:
    """A booking number a person can read out: B + date + 6 random base-32 characters
    (5 bits of one 30-bit draw each: the same uniform choice as one draw a character,
    at a sixth of the cost)."""
    bits = secrets.randbits(30)
    return f"B{today:%y%m%d}" + "".join(_ORDER_ID_ALPHABET[(bits >> s) & 31] for s in _SHIFTS)


@dataclass(frozen=True)
class NewOrder:
    """One CreateOrder call as the group path takes it: admitted (`admit`), the rest of
    its checks still to come, in the transaction."""

    token: str
    form: Mapping[str, Any]
    key: str


def admit(ctx: BookingContext, token: str, idempotency_key: str) -> str:
    """The check that needs no database, made before an order joins a group: the
    idempotency key (stripped, returned). The QR token's order limit is charged later,
    in the transaction, and only for an order about to be written (`_charge`)."""
    return checked_key(idempotency_key, required=True)


def checked_key(idempotency_key: str, *, required: bool) -> str:
    """A client's idempotency key, trimmed: at most KEY_MAX characters, none a control
    character (INVALID_ARGUMENT naming `idempotency_key`); "" when none is given and
    none is `required` (RecordVisit's is optional)."""
    key = trim(idempotency_key or "")
    if (required and not key) or len(key) > KEY_MAX:
        raise ValidationError(
            [FieldViolation("idempotency_key", messages.BAD_IDEMPOTENCY_KEY.format(n=KEY_MAX))]
        )
    if control_problem(key):  # every entrypoint's (PostgreSQL refuses a NUL)
        raise ValidationError([FieldViolation("idempotency_key", messages.CONTROL_CHARACTERS)])
    return key


# refusals of a caller's own making: what the refused-calls limit counts (not the
# database's or the deadline's failures, nor a race lost to another transaction)
_NOT_THE_CALLERS = (Unavailable, DeadlineExceeded, Conflict)


def refusals_limited(
    ctx: BookingContext,
    sent: tuple[str, Mapping[str, Any], str],
    call: Callable[[], T],
    *,
    session_firm: str = "",
) -> T:
    """`call()`, one CreateOrder (the gRPC call, the phone page's form) as `sent` (its
    QR token, form and idempotency key, none checked yet), with the work its QR token's
    refused calls may cost limited (`ctx.refused_order_limiter`, "20 at once, then 60 an
    hour"; review 48 N6, review 60 F1). A call refused for the caller's own reasons (a
    bad form, key or token, the order limit spent, a key reused with other content) is
    counted; one taken, or a repeat answered with its order, is not.

    Within the limit a call is taken as ever: an invalid form is looked up too (its key
    may have taken an order before: a retry is answered with that order however its
    form reads today). Past it, the call first passes the checks that need no database
    (`cheap_checks`: the key, the token's signature, the form): one that fails them is
    refused by their own error, nothing looked up; one that passes is taken as ever,
    under the order limit. So whoever holds the token (it is printed on the firm's
    poster) can make its invalid calls no dearer than a parse, and can never stop the
    firm's valid orders: the limit refuses nothing a valid call would have been given.

    Keyed by the token alone, not by caller address: the limit bounds the lookups
    refused calls cost one firm's token, however many addresses send them, and a valid
    call passes whatever the key's state, so nobody is held by another's refusals. The
    firm's own signed-in session (`session_firm`, its SMS code; the token's firm) is not
    under it at all: its refusals are not counted, and its calls are looked up as ever."""
    limiter = ctx.refused_order_limiter
    token, form, key = sent
    if limiter is None or _signed_in_firm_of(ctx, token, session_firm):
        return call()
    bucket = qr_bucket(token)
    if not limiter.peek(bucket)[0]:
        cheap_checks(ctx, token, form, key)  # its own error, unread; not counted
    try:
        return call()
    except DomainError as exc:
        if not isinstance(exc, _NOT_THE_CALLERS):
            _count_refusal(limiter, bucket)
        raise


def cheap_checks(ctx: BookingContext, token: str, form: Mapping[str, Any], key: str) -> None:
    """The checks of a CreateOrder that need no database, in the order the call makes
    them: its idempotency key, its QR token's signature, its form (ValidationError,
    PermissionDenied)."""
    admit(ctx, token, key)
    verified_token(ctx, token)
    _validated(ctx, form)


def _signed_in_firm_of(ctx: BookingContext, token: str, session_firm: str) -> bool:
    """Whether `session_firm` (a session checked by the entrypoint) is the token's firm."""
    if not session_firm:
        return False
    try:
        return verified_token(ctx, token).enterprise_id == session_firm
    except PermissionDenied:
        return False


def _count_refusal(limiter: RateLimiter, bucket: str) -> None:
    """One refused call counted; the token's limit running dry is logged (once each
    time), so an operator sees a token under attack (its digest, never the token)."""
    had_room, _ = limiter.check(bucket)
    if had_room and not limiter.peek(bucket)[0]:
        _log.warning(
            "refused order calls of one QR token past their limit: its invalid calls "
            "are refused unread until it refills; valid ones are still taken",
            qr_token_digest=bucket,
        )


def qr_bucket(token: str) -> str:
    """A QR token's key in the limits (a digest: never the token itself): the refused
    calls' here, the phone page's posts in web/limits.py."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def _charge(ctx: BookingContext, token: str) -> Callable[[], None]:
    """One order charged to the QR token's order limit ("10 at once, then 20 an hour"),
    RateLimited when it is spent; returns the refund, for an order that then is not
    written after all (its transaction failed, its key turned out used)."""
    limiter = ctx.order_limiter
    if limiter is None or not token:
        return lambda: None
    bucket = qr_bucket(token)
    allowed, wait = limiter.check(bucket)
    if not allowed:
        raise RateLimited(messages.TOO_MANY_ORDERS, wait)
    return lambda: limiter.refund(bucket)


def _refund(refunds: Sequence[Callable[[], None]]) -> None:
    for refund in refunds:
        refund()


def create_order(
    uow: UnitOfWork,
    ctx: BookingContext,
    token: str,
    form: Mapping[str, Any],
    idempotency_key: str,
    *,
    session_firm: str = "",
) -> Order:
    """`form` may carry `clause_refs`: the clauses that motivated a pre-filled order.
    The token's refused calls are limited (`refusals_limited`; `session_firm`: the firm
    the caller's checked session signs in, "" without one)."""
    # Take an order from the firm's QR token, then dispatch it; the same key again
    # returns the same order.

    def create() -> Order:
        item = NewOrder(token, form, admit(ctx, token, idempotency_key))
        return answer(uow, ctx, item, take_order(uow, ctx, item))

    sent = (token, form, idempotency_key)
    return refusals_limited(ctx, sent, create, session_firm=session_firm)


def take_order(uow: UnitOfWork, ctx: BookingContext, item: NewOrder) -> Order | str:
    """An admitted order in a transaction of its own: the new order, taken and
    dispatched; or the id of the order its key was used for before (`answer`)."""
    # The key is looked up only when a first attempt lost on it: a repeat (double tap,
    # retry) or the same key racing in on another connection. A new key's order is
    # written at the commit (the unique key is the check). The trade-off: a repeat's first
    # attempt dispatches before its key fails, holding its expert's row (PostgreSQL) or
    # the write lock (SQLite) for one dispatch and then rolling back; an order of another
    # firm taken in those milliseconds may be given another expert (review 23).
    attempts = iter((False, True))
    return retry_on_conflict(
        lambda: _create(uow, ctx, item.token, item.form, item.key, next(attempts))
    )


def answer(uow: UnitOfWork, ctx: BookingContext, item: NewOrder, taken: Order | str) -> Order:
    """The caller's answer once its order is committed: the new order, or the order its
    key was used for before, dispatched now if it still waits (its own transaction); that
    order asked for with other content (`item`'s form) is KeyUsedForOtherOrder
    (ALREADY_EXISTS), nothing written."""
    if isinstance(taken, Order):
        return taken
    with uow:
        earlier = uow.register.order(taken)
    if earlier is None:
        raise NotFound(messages.no_such("order", taken))
    if not _same(earlier, item.form):
        raise KeyUsedForOtherOrder(earlier.id)
    return dispatch_order(uow, ctx, taken, actor="dispatcher", quiet=True)


def _same(order: Order, form: Mapping[str, Any]) -> bool:
    return same_order(order, *_form_fields(form), form_refs(form))


def _form_fields(form: Mapping[str, Any]) -> tuple[list[str], list[str], str, str, str]:
    """An order form's items, half-days, contact, mobile and note, as sent."""
    return (
        [str(i) for i in form.get("item_codes", [])],
        [str(s) for s in form.get("preferred_slots", [])],
        str(form.get("contact_name", "")),
        str(form.get("contact_phone", "")),
        str(form.get("note", "")),
    )


def form_refs(form: Mapping[str, Any]) -> list[str]:
    """An order form's clause refs, as sent."""
    return [str(r) for r in form.get("clause_refs", [])]


def take_orders(
    new_uow: Callable[[], UnitOfWork],
    ctx: BookingContext,
    items: Sequence[NewOrder],
    run: Callable[[int, Callable[[], Order | str]], Order | str] = lambda _n, work: work(),
) -> list[Order | str | Exception]:
    """Orders that arrived together, taken and dispatched in one transaction committed
    once: each its own answer (`take_order`'s) or error, the same as `take_order` one
    after another in this order would give. `run(n, work)` runs the n-th order's work
    (the server runs it in that caller's context: the trail names who called).

    One after another inside the transaction (`_together`): each order sees the
    bookings of the ones before it (two competing for one expert's half-day: the second
    gets the next candidate), and an order refused before it wrote anything (a forged or
    revoked token, a bad form) fails alone. The keys the group's firms used before are
    looked up in one query: such an order is answered with that order's id, as is a
    second order of one firm with a key the group already took. Should an order fail in
    any other way, or the commit fail for another reason than the database itself (a
    key another process committed first), the group is rolled back and every order of it
    is taken again alone, each in its own transaction (`take_order`). A database that
    cannot take the work (down, stalled past a timeout, the deadline) fails the whole
    group at once.

    Raises what fails the group's transaction as a whole: then no order of it is taken,
    and every caller must be told so."""
    results = _together(new_uow(), ctx, items, run)
    if results is not None:
        return results
    return one_by_one(items, run, lambda item: take_order(new_uow(), ctx, item))


class _Broken(Exception):
    """An order of a group failed in a way that is not its own answer (after it wrote,
    or not a refusal): the group is taken again order by order."""


def _together(
    uow: UnitOfWork,
    ctx: BookingContext,
    items: Sequence[NewOrder],
    run: Callable[[int, Callable[[], Any]], Any],
) -> list[Order | str | Exception] | None:
    """The group in one transaction; None: rolled back, to be taken order by order.

    First each order's checks (its token's firm, the group's cards read in one query;
    its form), then one query for the keys the checked orders' firms used before, then
    each order taken and dispatched in arrival order, each in its caller's context."""
    refunds: list[Callable[[], None]] = []  # the limit charged for each order taken
    try:
        with uow:
            cards = _guarded(
                uow, partial(firms_for_tokens, uow, ctx, [i.token for i in items]), refusals=False
            )
            checked = [
                c if isinstance(c, Exception) else _guarded(uow, partial(_checked, ctx, c, item))
                for c, item in zip(cards, items, strict=True)
            ]
            # every firm's keys, the refused forms' too: a retry of an order taken before
            # gets that order however its form reads today (`answer` compares the content)
            used = uow.register.orders_by_keys(
                (c.enterprise_id, item.key)
                for c, item in zip(cards, items, strict=True)
                if not isinstance(c, Exception)
            )
            results: list[Order | str | Exception] = []
            for n, (item, card, check) in enumerate(zip(items, cards, checked, strict=True)):
                if isinstance(card, Exception):
                    results.append(card)
                    continue
                earlier = used.get((card.enterprise_id, item.key))
                if earlier is None:
                    if isinstance(check, Exception):
                        results.append(check)
                        continue
                    try:
                        refunds.append(_charge(ctx, item.token))
                    except RateLimited as exc:
                        results.append(exc)
                        continue
                    work = partial(_take, uow, ctx, card, check[1], item.key)
                    earlier = _guarded(uow, partial(run, n, work), refusals=False)
                results.append(earlier)  # a repeat: the id of the order its key took
                used[(card.enterprise_id, item.key)] = _id(earlier)
            _guarded(uow, uow.commit, refusals=False)  # e.g. a key committed by another process
            return results
    except _Broken:
        _refund(refunds)  # taken again one by one, each charged then
        return None
    except BaseException:
        _refund(refunds)
        raise


def _id(taken: Order | str) -> str:
    return taken.id if isinstance(taken, Order) else taken


def _guarded(uow: UnitOfWork, work: Callable[[], Any], *, refusals: bool = True) -> Any:
    """`work()` of one order of a group; a DomainError that refuses the order before it
    wrote anything (`refusals`) is returned as its answer. The database unable to take
    the work (or the group's deadline) propagates: it fails the group. Anything else
    raises _Broken: the group is taken again order by order. That includes a deadlock:
    a group holds the lock of every expert it booked while later orders wait for theirs,
    so two groups (or two servers' groups) can each wait for the other's; one by one, an
    order never waits while holding an expert (review 27 F1)."""
    try:
        return work()
    except (DeadlineExceeded, Unavailable, _Broken):
        raise
    except DomainError as exc:
        if refusals:
            return exc
        raise _Broken(str(exc)) from exc
    except Exception as exc:
        if uow.unavailable(exc) and not uow.lost_race(exc):
            raise
        raise _Broken(str(exc)) from exc


@dataclass(frozen=True)
class _Checked:
    """An order's form, validated."""

    request: OrderRequest
    refs: list[str]


def _checked(ctx: BookingContext, card: FirmCard, item: NewOrder) -> tuple[FirmCard, _Checked]:
    """The order of the firm `card` (its token checked) with its form validated
    (`_create`'s checks, in its order), before anything is written."""
    return card, _validated(ctx, item.form)


def form_request(ctx: BookingContext, form: Mapping[str, Any]) -> OrderRequest:
    """An order form's fields (CreateOrder's, or the phone page's) validated."""
    return validate_order(*_form_fields(form), frozenset(ctx.menu), ctx.today())


def _validated(ctx: BookingContext, form: Mapping[str, Any]) -> _Checked:
    request = form_request(ctx, form)
    return _Checked(request, validate_clause_refs(form_refs(form)))


def _take(
    uow: UnitOfWork, ctx: BookingContext, card: FirmCard, checked: _Checked, key: str
) -> Order:
    """A checked order of a group taken and dispatched; its trail entries recorded now,
    in its caller's context (its row is written at the commit)."""
    order = _new_order(uow, ctx, card, checked, key)
    uow.register.record_orders()
    return order


def _new_order(
    uow: UnitOfWork, ctx: BookingContext, card: FirmCard, checked: _Checked, key: str
) -> Order:
    """The order taken (SUBMITTED) and dispatched, inside the caller's transaction."""
    request = checked.request
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
        clause_refs=checked.refs,
    )
    order.enter(OrderStatus.SUBMITTED.value, actor="firm", at=at, reason=messages.ORDER_TAKEN)
    # taken as it is now, written once at the commit as dispatch leaves it; a key used
    # before fails there (Conflict) and the retry finds its order
    uow.register.add_order(order)
    assign(uow, ctx, order, actor="dispatcher")
    return order


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
        try:
            checked = _validated(ctx, form)
            refund = _charge(ctx, token)  # only for an order about to be written
        except (ValidationError, RateLimited):
            # a retry of an order taken before gets that order (`answer` compares the
            # content), however its form reads today and however spent the limit is
            existing = None if repeat else uow.register.order_by_key(card.enterprise_id, key)
            if existing is None:
                raise
            return existing.id
        try:
            order = _new_order(uow, ctx, card, checked, key)
            uow.commit()
        except BaseException:
            refund()  # not written: a key used before (the retry finds its order), a failure
            raise
        return order


def get_order(
    uow: UnitOfWork, ctx: BookingContext, order_id: str, access: FirmAccess, reach: Reach
) -> Order:
    """One order; for a firm (its QR token, its session), only that firm's; for staff,
    only one within their `reach` (an expert's own visits, an inspector's region), one
    out of it answered as an unknown id (NotFound, the same message). Both are required:
    a caller that forgot one must not read as an unlimited one."""
    with uow:
        owner = owner_of(uow, ctx, access)  # the firm first: a bad one learns nothing
        order = visible(owner, uow.register.order(order_id), "order", order_id)
        require_reach(reach, order.expert_id, order.region, "order", order_id)
        return order


def list_orders(
    uow: UnitOfWork, enterprise_id: str, status: str, size: int, token: str, reach: Reach
) -> tuple[Sequence[Order], str]:
    """One page of orders within `reach`, newest first (services/common/paging.py)."""
    size = page_size(size)
    query = query_key("ListOrders", enterprise_id, status, reach.expert_id, *reach.regions)
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
    """The firm cancels its own order, with its signed-in session (a QR token alone may
    not: anyone can scan the poster); the authority (`access` STAFF) must give a reason.
    Frees the slot, then dispatches what waited for it. The order's dispatch note (why
    it waited) goes: it is no longer waiting. Only SUBMITTED or DISPATCHED orders (else
    PreconditionFailed). gRPC CancelOrder and the phone page's cancel form."""
    check_cancel_reason(reason, by_firm=access.by_firm)
    with uow:
        owner = session_owner(uow, ctx, access) if access.by_firm else None
        order = visible(owner, uow.register.order(order_id, for_update=True), "order", order_id)
        order.move(
            OrderAction.CANCEL,
            actor="firm" if access.by_firm else actor,
            at=now(),
            reason=trim(reason, multiline=True) or messages.CANCELLED_BY_FIRM,
        )
        order.dispatch_note = ""
        uow.register.release_slot(order.id)
        uow.commit()
    redispatch_after_commit(uow, ctx)
    return get_order(uow, ctx, order_id, access, EVERY)  # a firm or booking.admin


def check_cancel_reason(reason: str, *, by_firm: bool) -> None:
    """A cancellation's reason: optional for the firm, required of the authority; at most
    REASON_MAX characters; no control characters (line breaks allowed)."""
    if not by_firm and invisible(reason):
        raise ValidationError([FieldViolation("reason", messages.CANCEL_NEEDS_REASON)])
    if len(reason) > REASON_MAX:
        raise ValidationError(
            [FieldViolation("reason", messages.CANCEL_REASON_TOO_LONG.format(n=REASON_MAX))]
        )
    if control_problem(reason, multiline=True):
        raise ValidationError([FieldViolation("reason", messages.CONTROL_CHARACTERS)])
