"""Booking use cases: QR codes, experts, orders and dispatch (点单 → 派单).

Handlers take a unit of work and commit once; the outbox message for the rules service
is written in the same transaction as the change it reports.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from services.booking.adapters.menu import MenuItem
from services.booking.adapters.poster import render_poster
from services.booking.domain import dispatch, qr
from services.booking.domain.orders import (
    PHONE,
    Order,
    OrderAction,
    OrderStatus,
    validate_order,
)
from services.booking.domain.records import EXPERT_FIELDS, Assignment, Expert, FirmCard
from services.booking.domain.slots import parse_slot
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now, today_shanghai
from services.common.errors import (
    FieldViolation,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    ValidationError,
    retry_on_conflict,
)
from services.common.paging import decode_token, one_page, page_size, query_key
from services.common.ratelimit import RateLimiter
from services.common.regions import RegionRegistry
from services.common.values import preview
from services.common.vocabulary import DOMAINS, uscc_problem

EXPERT_ID_MAX = 64


class RulesPort(Protocol):
    """What booking needs of the rules service (adapters/rules_client.py)."""

    def firm(self, enterprise_id: str) -> Any: ...
    def clause_exists(self, clause_ref: str) -> bool: ...
    def clause(self, clause_ref: str) -> tuple[str, str] | None: ...
    def report(self, event: dict[str, Any]) -> None: ...
    def verify_code(self, code: str) -> Any: ...


@dataclass(frozen=True)
class BookingContext:
    keyring: qr.Keyring
    menu: Mapping[str, MenuItem]
    rules: RulesPort
    public_url: str
    hotline: str = "12345"
    today: Callable[[], date] = today_shanghai
    # orders per QR token (one phone cannot book a thousand visits); None: unlimited
    order_limiter: RateLimiter | None = None
    # rulesets/regions.yaml: the 镇街 an expert may serve and a filter may name; None: any
    regions: RegionRegistry | None = None


def new_order_id(today: date) -> str:
    """A booking number a person can read out: B + date + 6 random base-32 characters."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"B{today:%y%m%d}" + "".join(secrets.choice(alphabet) for _ in range(6))


# ---------------------------------------------------------------- QR codes


@dataclass
class IssuedCode:
    url: str
    token: str
    poster_svg: str
    key_id: str
    issued_at: datetime


def issue_qr_code(uow: UnitOfWork, ctx: BookingContext, enterprise_id: str) -> IssuedCode:
    """Sign a new code for a registered firm; the previous code stops working."""
    if problem := uscc_problem(enterprise_id):
        raise ValidationError([FieldViolation("enterprise_id", problem)])
    info = _rules_call(lambda: ctx.rules.firm(enterprise_id))
    if info is None:
        raise NotFound(f"firm {enterprise_id} is not in the rules register")
    token, text = qr.issue(ctx.keyring, enterprise_id)
    with uow:
        card = uow.register.firm(enterprise_id, for_update=True)
        if card is None:
            card = FirmCard(enterprise_id, info.name, info.region)
            uow.register.add(card)
        card.name, card.region = info.name, info.region
        card.qr_key_id, card.qr_serial, card.qr_issued_at = token.key_id, token.serial, now()
        issued_at = card.qr_issued_at
        uow.commit()
    url = f"{ctx.public_url.rstrip('/')}/q/{text}"
    poster = render_poster(info.name, url, ctx.menu.values(), ctx.hotline)
    return IssuedCode(url, text, poster, token.key_id, issued_at)


def _rules_call(call: Callable[[], Any]) -> Any:
    from services.booking.adapters.rules_client import RulesUnavailable

    try:
        return call()
    except RulesUnavailable as exc:
        raise Unavailable(f"the rules service is unavailable, try again: {exc}") from exc


def firm_for_token(uow: UnitOfWork, ctx: BookingContext, text: str) -> FirmCard:
    """The firm a QR token stands for; PermissionDenied for a forged, edited or revoked one."""
    try:
        token = qr.verify(ctx.keyring, text)
    except qr.TokenRejected as exc:
        raise PermissionDenied(f"二维码无效（{exc.reason}）") from exc
    card = uow.register.firm(token.enterprise_id)
    if card is None or card.qr_serial != token.serial or card.qr_key_id != token.key_id:
        raise PermissionDenied("二维码已失效，请使用最新张贴的二维码")
    return card


def owner_of(uow: UnitOfWork, ctx: BookingContext, token: str) -> FirmCard | None:
    """The firm a QR token stands for, checked before any record is looked up; None when
    the call carries no QR token (an authenticated staff caller, checked by scopes)."""
    return firm_for_token(uow, ctx, token) if token else None


def check_owner(owner: FirmCard | None, enterprise_id: str, what: str) -> None:
    if owner is not None and owner.enterprise_id != enterprise_id:
        raise PermissionDenied(f"this {what} belongs to another firm")


# ---------------------------------------------------------------- experts


def upsert_expert(uow: UnitOfWork, ctx: BookingContext, data: Mapping[str, Any]) -> Expert:
    """Create or replace an expert; submitted orders are then re-dispatched."""
    expert = _expert_from(data, ctx.regions)
    with uow:
        stored = uow.register.expert(expert.id, for_update=True)
        if stored is None:
            uow.register.add(expert)
            stored = expert
        else:
            for name in EXPERT_FIELDS:
                setattr(stored, name, getattr(expert, name))
        stored.updated_at = now()
        uow.commit()
    redispatch_waiting(uow, ctx)
    return stored


def _expert_regions(
    data: Mapping[str, Any], known: RegionRegistry | None, bad: list[FieldViolation]
) -> list[str]:
    """The 镇街 an expert serves, each a listed one, stored as its Chinese name."""
    regions = [str(r) for r in dict.fromkeys(data.get("regions", []))]
    if len(regions) > 50 or any(not r.strip() or len(r) > 100 for r in regions):
        bad.append(FieldViolation("expert.regions", "at most 50 regions of 1-100 characters"))
        return regions
    if known is None:
        return regions
    canonical: list[str] = []
    for i, r in enumerate(regions):
        name = known.canonical(r)
        if name is None:
            bad.append(FieldViolation(f"expert.regions[{i}]", known.problem(r)))
        canonical.append(name or r)
    return list(dict.fromkeys(canonical))


def _expert_from(data: Mapping[str, Any], known: RegionRegistry | None) -> Expert:
    bad: list[FieldViolation] = []
    expert_id = str(data.get("expert_id", "")).strip()
    if not expert_id or len(expert_id) > EXPERT_ID_MAX:
        bad.append(
            FieldViolation("expert.expert_id", f"required, at most {EXPERT_ID_MAX} characters")
        )
    name = str(data.get("name", "")).strip()
    if not name or len(name) > 50:
        bad.append(FieldViolation("expert.name", "required, at most 50 characters"))
    domains = list(dict.fromkeys(data.get("domains", [])))
    if not domains or not set(domains) <= DOMAINS:
        bad.append(FieldViolation("expert.domains", "one or more of the nine high-risk domains"))
    slots = list(dict.fromkeys(data.get("slots", [])))
    for s in slots:
        try:
            parse_slot(s)
        except ValueError as exc:
            bad.append(FieldViolation("expert.slots", f"{preview(s)}: {exc}"))
            break
    if len(slots) > 400:
        bad.append(FieldViolation("expert.slots", "at most 400 half-days"))
    per_day = data.get("max_visits_per_day", 2)
    if per_day not in (1, 2):
        bad.append(FieldViolation("expert.max_visits_per_day", "1 or 2"))
    regions = _expert_regions(data, known, bad)
    conflicts = [str(c) for c in dict.fromkeys(data.get("conflicts", []))]
    if len(conflicts) > 500 or any(uscc_problem(c) for c in conflicts):
        bad.append(
            FieldViolation(
                "expert.conflicts",
                "at most 500 unified social credit codes, each with its check character",
            )
        )
    phone = str(data.get("phone", "")).strip()
    if phone and not PHONE.fullmatch(phone.replace("-", "").replace(" ", "")):
        bad.append(FieldViolation("expert.phone", "a mainland mobile number (11 digits)"))
    if bad:
        raise ValidationError(bad)
    return Expert(
        expert_id,
        name,
        phone,
        domains,
        regions,
        slots,
        int(per_day),
        bool(data.get("active", True)),
        conflicts,
    )


# ---------------------------------------------------------------- orders


def create_order(
    uow: UnitOfWork, ctx: BookingContext, token: str, form: Mapping[str, Any], idempotency_key: str
) -> Order:
    """Take an order from the firm's QR token; the same key again returns the same order."""
    if ctx.order_limiter is not None and token:
        allowed, wait = ctx.order_limiter.check(hashlib.sha256(token.encode()).hexdigest()[:24])
        if not allowed:
            raise RateLimited("too many orders from this QR code; try again later", wait)
    key = (idempotency_key or "").strip()
    if not key or len(key) > 64:
        raise ValidationError(
            [FieldViolation("idempotency_key", "缺少或过长的防重复提交编号（最多64个字符）")]
        )
    # the same key may race in on another connection: the retry then finds its order
    order_id = retry_on_conflict(lambda: _create(uow, ctx, token, form, key))
    return dispatch_order(uow, ctx, order_id, actor="dispatcher", quiet=True)


def _create(
    uow: UnitOfWork, ctx: BookingContext, token: str, form: Mapping[str, Any], key: str
) -> str:
    with uow:
        card = firm_for_token(uow, ctx, token)
        existing = uow.register.order_by_key(card.enterprise_id, key)
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
        )
        order.enter(OrderStatus.SUBMITTED.value, actor="firm", at=at, reason="扫码点单")
        uow.register.add(order)
        uow.commit()
        return order.id


def get_order(uow: UnitOfWork, ctx: BookingContext, order_id: str, token: str = "") -> Order:
    with uow:
        owner = owner_of(uow, ctx, token)  # the token first: a bad one learns nothing
        order = uow.register.order(order_id)
        if order is None:
            raise NotFound(f"no order {preview(order_id)}")
        check_owner(owner, order.enterprise_id, "order")
        return order


def list_orders(
    uow: UnitOfWork, enterprise_id: str, status: str, size: int, token: str
) -> tuple[Sequence[Order], str]:
    """One page of orders, newest first (services/common/paging.py)."""
    size = page_size(size)
    query = query_key(enterprise_id, status)
    after = decode_token(token, query)
    with uow:
        rows = list(
            uow.register.orders(
                enterprise_id=enterprise_id, status=status, after=after, limit=size + 1
            )
        )
    return one_page(rows, size, query, lambda o: o.id)


def cancel_order(
    uow: UnitOfWork, ctx: BookingContext, order_id: str, *, token: str = "", actor: str, reason: str
) -> Order:
    """The firm cancels its own order; the authority must give a reason. Frees the slot."""
    if not token and not reason.strip():
        raise ValidationError([FieldViolation("reason", "the authority must say why it cancels")])
    if len(reason) > 500:
        raise ValidationError([FieldViolation("reason", "at most 500 characters")])
    with uow:
        owner = owner_of(uow, ctx, token)
        order = uow.register.order(order_id, for_update=True)
        if order is None:
            raise NotFound(f"no order {preview(order_id)}")
        check_owner(owner, order.enterprise_id, "order")
        order.move(
            OrderAction.CANCEL,
            actor="firm" if token else actor,
            at=now(),
            reason=reason.strip() or "企业取消",
        )
        uow.register.release_slot(order.id)
        uow.commit()
    redispatch_waiting(uow, ctx)
    return get_order(uow, ctx, order_id)


# ---------------------------------------------------------------- dispatch


def dispatch_order(
    uow: UnitOfWork, ctx: BookingContext, order_id: str, *, actor: str, quiet: bool = False
) -> Order:
    """Assign the best free expert and slot, or leave the order SUBMITTED with the reason.

    `quiet`: an order that is no longer SUBMITTED is returned as it is (automatic runs).
    """
    with uow:
        order = uow.register.order(order_id, for_update=True)
        if order is None:
            raise NotFound(f"no order {preview(order_id)}")
        if order.status != OrderStatus.SUBMITTED and quiet:
            return order
        if order.status != OrderStatus.SUBMITTED:
            order.move(OrderAction.DISPATCH, actor=actor, at=now())  # raises the precondition
        chosen = _assign(uow, ctx, order)
        if chosen is None:
            order.dispatch_note = "暂无可派专家（所选时段内没有空闲的对口专家），有空闲时将自动派单"
        else:
            order.expert_id, order.slot, order.dispatch_note = (
                chosen.expert_id,
                str(chosen.slot),
                "",
            )
            order.move(
                OrderAction.DISPATCH,
                actor=actor,
                at=now(),
                reason=f"派单给专家 {chosen.expert_id}，{chosen.slot.label}",
            )
        uow.commit()
        return order


def _assign(uow: UnitOfWork, ctx: BookingContext, order: Order) -> dispatch.Candidate | None:
    """Try experts best first. Each expert's row is locked and its free slot recomputed from
    fresh assignments, so a dispatch that lost a race takes the expert's next free slot;
    the unique (expert, slot) index is the last word on any race left."""
    preferred = [parse_slot(s) for s in order.preferred_slots]
    tried: set[str] = set()
    for candidate in _ranked(uow, ctx, order):
        if candidate.expert_id in tried:
            continue
        tried.add(candidate.expert_id)
        expert = uow.register.expert(candidate.expert_id, for_update=True)
        if expert is None:
            continue
        view = _view(expert, uow.register.assignments_of(expert.id))  # fresh, under the lock
        slot = dispatch.first_free_slot(view, preferred)
        if slot is None:
            continue
        if uow.register.claim_slot(Assignment(expert.id, str(slot), slot.day, order.id, now())):
            return dispatch.Candidate(expert.id, slot)
    return None


def _ranked(uow: UnitOfWork, ctx: BookingContext, order: Order) -> Iterator[dispatch.Candidate]:
    """The best candidates, then (if all of those were lost to racing dispatches) every
    eligible expert whatever their region."""
    yield from _candidates(uow, ctx, order, ctx.today())
    yield from _candidates(uow, ctx, order, ctx.today(), any_region=True)


def _candidates(
    uow: UnitOfWork, ctx: BookingContext, order: Order, today: date, any_region: bool = False
) -> list[dispatch.Candidate]:
    booked = uow.register.booked()
    recent = uow.register.recent_visits(
        today - timedelta(days=dispatch.FAIRNESS_WINDOW_DAYS), today
    )
    last = uow.register.last_assigned()
    views = [
        _view(e, booked.get(e.id, []), recent.get(e.id, 0), last.get(e.id))
        for e in uow.register.experts()
    ]
    needed = dispatch.needed_domains(order.item_codes, {c: i.domain for c, i in ctx.menu.items()})
    return dispatch.candidates(
        enterprise_id=order.enterprise_id,
        region=order.region,
        needed=needed,
        preferred=[parse_slot(s) for s in order.preferred_slots],
        experts=views,
        any_region=any_region,
    )


def _view(
    expert: Expert, mine: Sequence[Assignment], recent: int = 0, last: datetime | None = None
) -> dispatch.ExpertView:
    """What dispatch needs to know of an expert: offer, bookings, fairness counters."""
    per_day: dict[date, int] = {}
    for a in mine:
        per_day[a.day] = per_day.get(a.day, 0) + 1
    return dispatch.ExpertView(
        expert_id=expert.id,
        domains=frozenset(expert.domains),
        regions=frozenset(expert.regions),
        slots=frozenset(parse_slot(s) for s in expert.slots),
        max_visits_per_day=expert.max_visits_per_day,
        active=expert.active,
        conflicts=frozenset(expert.conflicts),
        booked=frozenset(parse_slot(a.slot) for a in mine),
        visits_per_day=per_day,
        recent_visits=recent,
        last_assigned_at=last,
    )


def expert_names(uow: UnitOfWork, ids: Iterable[str | None]) -> dict[str, str]:
    """Names of the given experts (those that exist), in one query."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    with uow:
        return uow.register.expert_names(wanted)


def redispatch_waiting(uow: UnitOfWork, ctx: BookingContext) -> int:
    """Retry every order still waiting for an expert (availability changed)."""
    with uow:
        waiting = uow.register.submitted_order_ids()
    done = 0
    for order_id in waiting:
        try:
            order = dispatch_order(uow, ctx, order_id, actor="dispatcher", quiet=True)
        except PreconditionFailed:
            continue
        done += order.status == OrderStatus.DISPATCHED
    return done
