"""Orders (点单) and their state machine: one transition table, nothing else moves them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from services.common.errors import (
    AlreadyExists,
    FieldViolation,
    PreconditionFailed,
    ValidationError,
)
from services.common.instants import as_utc
from services.common.state_machine import StateMachine, Tracked, Transition
from services.common.values import control_problem, invisible, trim
from services.common.vocabulary import CLAUSE_REF, MOBILE, mask_mobile

from . import messages
from .slots import Slot, parse_slot

PHONE = MOBILE  # a mainland mobile (services/common/vocabulary.py); used with fullmatch
BOOKING_WINDOW_DAYS = 14
MIN_SLOTS = 2
MAX_SLOTS = 28
MAX_ITEMS = 10
MAX_NOTE = 500
MAX_NAME = 50


class OrderStatus(StrEnum):
    SUBMITTED = "submitted"
    DISPATCHED = "dispatched"
    VISITED = "visited"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class OrderAction(StrEnum):
    DISPATCH = "dispatch"
    RECORD_VISIT = "record_visit"
    CLOSE = "close"
    CANCEL = "cancel"
    # taken from its expert, who can no longer take it (deactivated, the half-day
    # withdrawn, a conflict of interest declared): back to waiting, then dispatched again
    UNASSIGN = "unassign"


# The whole state machine: (from, action) → to. Anything else is FAILED_PRECONDITION.
ORDER_TRANSITIONS: dict[tuple[OrderStatus, OrderAction], OrderStatus] = {
    (OrderStatus.SUBMITTED, OrderAction.DISPATCH): OrderStatus.DISPATCHED,
    (OrderStatus.SUBMITTED, OrderAction.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.DISPATCHED, OrderAction.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.DISPATCHED, OrderAction.UNASSIGN): OrderStatus.SUBMITTED,
    (OrderStatus.DISPATCHED, OrderAction.RECORD_VISIT): OrderStatus.VISITED,
    (OrderStatus.VISITED, OrderAction.CLOSE): OrderStatus.CLOSED,
}


ORDER_MACHINE = StateMachine(
    "an order",
    OrderStatus,
    ORDER_TRANSITIONS,
    messages.move_refusal(
        messages.ORDER_RECORD, messages.ORDER_STATUS_NAMES, messages.ORDER_ACTION_NAMES
    ),
)
# the statuses nothing leaves (closed, cancelled): the order has ended
ENDED_ORDERS = frozenset(OrderStatus) - {start for start, _ in ORDER_TRANSITIONS}


def next_order_status(current: OrderStatus, action: OrderAction) -> OrderStatus:
    return ORDER_MACHINE.next(current, action)


@dataclass(frozen=True)
class OrderRequest:
    """A validated order form."""

    item_codes: tuple[str, ...]
    preferred_slots: tuple[Slot, ...]
    contact_name: str
    contact_phone: str
    note: str


@dataclass(kw_only=True)
class OrderTransition(Transition):
    order_id: str


@dataclass
class Order(Tracked[OrderAction, OrderTransition]):
    id: str
    enterprise_id: str
    enterprise_name: str
    region: str
    item_codes: list[str]
    preferred_slots: list[str]
    contact_name: str
    contact_phone: str
    note: str
    idempotency_key: str
    status: str
    created_at: datetime
    expert_id: str | None = None
    slot: str | None = None
    dispatch_note: str = ""
    updated_at: datetime | None = None
    history: list[OrderTransition] = field(default_factory=list)
    # the clauses that motivated it (the firm's page); for the firm and its expert only
    clause_refs: list[str] = field(default_factory=list)

    machine: ClassVar[StateMachine[Any, Any]] = ORDER_MACHINE

    def transition(self, **moved: Any) -> OrderTransition:
        return OrderTransition(order_id=self.id, **moved)

    def enter(self, status: str, *, actor: str, at: datetime, reason: str = "") -> None:
        super().enter(status, actor=actor, at=at, reason=reason)
        self.updated_at = at


def validate_order(
    items: list[str],
    slots: list[str],
    name: str,
    phone: str,
    note: str,
    menu: frozenset[str],
    today: date,
) -> OrderRequest:
    """Check the order form; every problem names its field (the page shows it beside it)."""
    bad: list[FieldViolation] = []
    clean_items = _texts(items)
    if not clean_items:
        bad.append(FieldViolation("item_codes", messages.NO_ITEM))
    elif len(clean_items) > MAX_ITEMS:
        bad.append(FieldViolation("item_codes", messages.TOO_MANY_ITEMS.format(n=MAX_ITEMS)))
    else:  # each unknown one named by its place in the list as sent (item_codes[2])
        bad.extend(
            FieldViolation(
                f"item_codes[{n}]", messages.UNKNOWN_ITEMS.format(items=messages.quoted(i))
            )
            for n, i in _indexed(items)
            if i not in menu
        )
    parsed = _slots(slots, today, bad)
    name = trim(name)
    if invisible(name):
        bad.append(FieldViolation("contact_name", messages.NO_NAME))
    elif len(name) > MAX_NAME:
        bad.append(FieldViolation("contact_name", messages.NAME_TOO_LONG.format(n=MAX_NAME)))
    elif control_problem(name):
        bad.append(FieldViolation("contact_name", messages.CONTROL_CHARACTERS))
    phone = clean_phone(phone)
    if not PHONE.fullmatch(phone):
        bad.append(FieldViolation("contact_phone", messages.BAD_PHONE))
    note = trim(note, multiline=True)
    if len(note) > MAX_NOTE:
        bad.append(FieldViolation("note", messages.NOTE_TOO_LONG.format(n=MAX_NOTE)))
    elif control_problem(note, multiline=True):
        bad.append(FieldViolation("note", messages.CONTROL_CHARACTERS))
    if bad:
        raise ValidationError(bad)
    return OrderRequest(tuple(clean_items), tuple(parsed), name, phone, note)


def _texts(values: list[str]) -> list[str]:
    """A list field's values, trimmed, blank ones and repeats dropped, in order."""
    return list(dict.fromkeys(t for v in values if (t := trim(v))))


def _indexed(values: list[str]) -> list[tuple[int, str]]:
    """`_texts`, each with its index in the list as sent: a violation of one item names
    it `field[index]`, as rules names `profile.hazards[1].clause_ref` (review 72)."""
    seen: dict[str, int] = {}
    for n, v in enumerate(values):
        if (t := trim(v)) and t not in seen:
            seen[t] = n
    return [(n, t) for t, n in seen.items()]


def clean_phone(phone: str) -> str:
    """A mobile as typed (spaces, dashes: 138-1234 5678) as stored: its digits."""
    return trim(phone).replace(" ", "").replace("-", "")


def _slot_texts(slots: list[str]) -> frozenset[str] | None:
    """The half-days a form names, as an order stores them; None: one cannot be read."""
    try:
        return frozenset(str(parse_slot(s)) for s in _texts(slots))
    except ValueError:
        return None


class KeyUsedForOtherOrder(AlreadyExists):
    """An order's idempotency key sent again with other content (ALREADY_EXISTS): the
    first order stands, the caller is told which it is."""

    def __init__(self, order_id: str) -> None:
        super().__init__(messages.ORDER_KEY_REUSED.format(order_id=order_id))
        self.order_id = order_id


class HalfDaysPassed(PreconditionFailed):
    """An admin's DispatchOrder of an order none of whose preferred half-days is still
    ahead (FAILED_PRECONDITION, the request's `order_id` named as the bad field): nothing
    changes; the next dispatch run cancels the order and tells the firm."""

    def __init__(self) -> None:
        super().__init__(messages.DISPATCH_SLOTS_PASSED)
        self.violations = [FieldViolation("order_id", messages.DISPATCH_SLOTS_PASSED)]


def same_order(
    order: Order,
    items: list[str],
    slots: list[str],
    name: str,
    phone: str,
    note: str,
    clause_refs: list[str],
) -> bool:
    """Whether a form sent with `order`'s idempotency key asks for that same order: the
    same items, half-days, contact, mobile, note and clause refs, read as validate_order
    reads them (spaces around, the order of a list, a mobile's spaces and hyphens do not
    count). Neither the menu nor the booking window is checked: a retry days later of an
    order taken then is still that order."""
    return (
        set(_texts(items)) == set(order.item_codes)
        and _slot_texts(slots) == frozenset(order.preferred_slots)
        and trim(name) == order.contact_name
        and clean_phone(phone) == order.contact_phone
        and trim(note, multiline=True) == order.note
        and set(_texts(clause_refs)) == set(order.clause_refs)
    )


def _slots(slots: list[str], today: date, bad: list[FieldViolation]) -> list[Slot]:
    parsed: list[Slot] = []
    last = today + timedelta(days=BOOKING_WINDOW_DAYS)
    for n, text in _indexed(slots):
        try:
            slot = parse_slot(text)
        except ValueError:
            bad.append(
                FieldViolation(
                    f"preferred_slots[{n}]", messages.BAD_SLOT.format(slot=messages.quoted(text))
                )
            )
            return []
        if not today < slot.day <= last:
            bad.append(
                FieldViolation(
                    f"preferred_slots[{n}]",
                    messages.SLOT_OUTSIDE_WINDOW.format(
                        days=BOOKING_WINDOW_DAYS, slot=messages.quoted(text)
                    ),
                )
            )
            return []
        parsed.append(slot)
    if len(parsed) < MIN_SLOTS:
        bad.append(FieldViolation("preferred_slots", messages.TOO_FEW_SLOTS.format(n=MIN_SLOTS)))
    elif len(parsed) > MAX_SLOTS:
        bad.append(FieldViolation("preferred_slots", messages.TOO_MANY_SLOTS.format(n=MAX_SLOTS)))
    return sorted(parsed)


def bookable_slots(today: date) -> list[Slot]:
    """The half-days a firm may ask for: tomorrow to BOOKING_WINDOW_DAYS ahead."""
    return [
        Slot(today + timedelta(days=offset), half)
        for offset in range(1, BOOKING_WINDOW_DAYS + 1)
        for half in ("AM", "PM")
    ]


mask_phone = mask_mobile  # the shared mask (services/common/vocabulary.py)


MAX_CLAUSE_REFS = 20


def validate_clause_refs(refs: list[str]) -> list[str]:
    """The clause refs a pre-filled order carries: shape only (the rules service may be
    down while the firm orders), the rules service's own grammar (CLAUSE_REF, so every
    clause id it issues passes) without control characters, at most MAX_CLAUSE_REFS,
    duplicates dropped."""
    clean = _texts(refs)
    if len(clean) > MAX_CLAUSE_REFS:
        raise ValidationError(
            [FieldViolation("clause_refs", messages.TOO_MANY_CLAUSE_REFS.format(n=MAX_CLAUSE_REFS))]
        )
    for n, ref in _indexed(refs):
        if not CLAUSE_REF.fullmatch(ref) or control_problem(ref):
            raise ValidationError(
                [
                    FieldViolation(
                        f"clause_refs[{n}]",
                        messages.BAD_CLAUSE_REF.format(ref=messages.quoted(ref)),
                    )
                ]
            )
    return clean


# An order submitted again: the same firm, the same items and half-days, while its
# earlier order is still open and was placed within REPEAT_WINDOW. The web form's key is
# new on every page load, so Back and submit again comes with a new key (review 47a F2).
REPEAT_WINDOW = timedelta(hours=24)
OPEN_STATUSES = (OrderStatus.SUBMITTED.value, OrderStatus.DISPATCHED.value)


def same_contact(earlier: Order, request: OrderRequest) -> bool:
    """Whether `request` names the contact, mobile and note `earlier` holds (as stored:
    `request` is validated, so spaces and a phone's separators are already gone)."""
    return (
        earlier.contact_name == request.contact_name
        and earlier.contact_phone == request.contact_phone
        and earlier.note == request.note
    )


def repeats(earlier: Order, request: OrderRequest, at: datetime) -> bool:
    """Whether `request`, arriving `at`, asks again for the open order `earlier`: the same
    service items and preferred half-days (in any order), placed within REPEAT_WINDOW."""
    return (
        earlier.status in OPEN_STATUSES
        and at - as_utc(earlier.created_at) <= REPEAT_WINDOW
        and set(earlier.item_codes) == set(request.item_codes)
        and set(earlier.preferred_slots) == {str(s) for s in request.preferred_slots}
    )
