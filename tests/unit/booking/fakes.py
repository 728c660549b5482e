"""In-memory stand-ins for the booking service layer's ports: a unit of work with its
repository (service_layer/unit_of_work.py) and the rules service (service_layer/ports.py).

Fast and without servers: the use cases' rules are tested here; the races and locks on
real databases stay in tests/integration/booking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from services.booking.adapters.menu import MenuItem
from services.booking.adapters.sms import MemorySms
from services.booking.domain.events import BookingEvent
from services.booking.domain.orders import Order
from services.booking.domain.qr import Keyring
from services.booking.domain.records import (
    Assignment,
    Expert,
    FirmCard,
    FirmSession,
    Offer,
    OutboxMessage,
    Photo,
    SignInCode,
    Visit,
)
from services.booking.domain.rules_service import (
    ClauseInfo,
    FindingInfo,
    FirmInfo,
    FirmStatus,
    FirmSummary,
    InspectionInfo,
    RulesError,
    WhitelistSize,
)
from services.booking.domain.slots import parse_slot
from services.booking.domain.tickets import Ticket
from services.booking.service_layer.ports import BookingContext
from services.common.clock import now
from services.common.errors import Conflict
from tests.support import uscc

T = TypeVar("T")

KEYS = Keyring({"k1": b"k" * 32}, active="k1")
MENU = {
    "fire_safety": MenuItem("fire_safety", "消防安全检查指导", "fire_crowded", ""),
    "dust_explosion": MenuItem("dust_explosion", "粉尘防爆", "dust_explosion", ""),
    "first_lesson": MenuItem("first_lesson", "开工第一课", None, ""),
}
TODAY = date(2026, 6, 1)
FIRM = uscc(1)
REGION = "稠城街道"


class FakeRegister:
    """The booking register in dictionaries."""

    def __init__(self) -> None:
        self.firms: dict[str, FirmCard] = {}
        self.experts_by_id: dict[str, Expert] = {}
        self.orders_by_id: dict[str, Order] = {}
        self.tickets_by_id: dict[str, Ticket] = {}
        self.photos: dict[str, Photo] = {}
        self.visits: dict[str, Visit] = {}
        self.assignments: list[Assignment] = []
        self.outbox: list[OutboxMessage] = []
        self.outbox_decisions: list[tuple[str, dict[str, Any]]] = []  # (event id, before)
        self.events: list[BookingEvent] = []
        self.taken_slots: set[tuple[str, str]] = set()  # booked by a "concurrent" dispatch
        self.locked_by_others: set[str] = set()  # experts a "concurrent" dispatch holds
        self.codes: dict[str, SignInCode] = {}
        self.sessions: dict[str, FirmSession] = {}

    def add(self, record: object) -> None:
        stores: dict[type, dict[str, Any]] = {
            FirmCard: self.firms,
            Expert: self.experts_by_id,
            Order: self.orders_by_id,
            Ticket: self.tickets_by_id,
            Photo: self.photos,
            Visit: self.visits,
            SignInCode: self.codes,
            FirmSession: self.sessions,
        }
        key = getattr(record, "enterprise_id" if isinstance(record, FirmCard) else "id")
        stores[type(record)][key] = record

    def add_order(self, order: Order) -> None:
        self.add(order)

    def record_orders(self) -> None:
        pass  # no trail here

    def orders_by_keys(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        wanted = set(keys)
        return {
            (o.enterprise_id, o.idempotency_key): o.id
            for o in self.orders_by_id.values()
            if (o.enterprise_id, o.idempotency_key) in wanted
        }

    def add_event(self, event: BookingEvent) -> None:
        self.events.append(event)
        payload = {"type": type(event).__name__, **dataclasses.asdict(event)}
        message = OutboxMessage(
            event.event_id, payload["type"], event.enterprise_id, payload, now()
        )
        message.id = len(self.outbox) + 1
        self.outbox.append(message)

    # firms and experts
    def firm(self, enterprise_id: str, *, for_update: bool = False) -> FirmCard | None:
        return self.firms.get(enterprise_id)

    def firm_card(self, enterprise_id: str) -> FirmCard | None:
        card = self.firms.get(enterprise_id)  # a copy: changing it changes nothing stored
        return None if card is None else dataclasses.replace(card)

    def firm_names(self, ids: Iterable[str]) -> dict[str, str]:
        return {i: self.firms[i].name for i in ids if i in self.firms}

    def firm_cards_of(self, ids: Iterable[str]) -> dict[str, FirmCard]:
        return {i: dataclasses.replace(self.firms[i]) for i in ids if i in self.firms}

    # the firm's sign-in
    def codes_since(
        self, *, enterprise_id: str = "", phone_digest: str = "", client: str = "", since: datetime
    ) -> int:
        return sum(
            1
            for c in self.codes.values()
            if c.created_at >= since
            and (not enterprise_id or c.enterprise_id == enterprise_id)
            and (not phone_digest or c.phone_digest == phone_digest)
            and (not client or c.client == client)
        )

    def wrong_codes_since(
        self, enterprise_id: str, phone_digests: Sequence[str], since: datetime
    ) -> int:
        return sum(
            c.tries
            for c in self.codes.values()
            if c.enterprise_id == enterprise_id
            and c.phone_digest in phone_digests
            and c.created_at >= since
        )

    def latest_code(self, enterprise_id: str, phone_digests: Sequence[str]) -> SignInCode | None:
        found = [
            c
            for c in self.codes.values()
            if c.enterprise_id == enterprise_id
            and c.phone_digest in phone_digests
            and c.expires_at > c.created_at
        ]
        return max(found, key=lambda c: c.created_at) if found else None

    def sign_in_code(self, code_id: str) -> SignInCode | None:
        return self.codes.get(code_id)

    def firm_session(self, session_id: str) -> FirmSession | None:
        return self.sessions.get(session_id)

    def firm_sessions(self, enterprise_id: str) -> Sequence[FirmSession]:
        return [
            s
            for s in self.sessions.values()
            if s.enterprise_id == enterprise_id and s.ended_at is None
        ]

    def expert(self, expert_id: str, *, for_update: bool = False) -> Expert | None:
        return self.experts_by_id.get(expert_id)

    def experts(self) -> Sequence[Expert]:
        return sorted(self.experts_by_id.values(), key=lambda e: e.id)

    def expert_names(self, ids: Iterable[str]) -> dict[str, str]:
        return {i: self.experts_by_id[i].name for i in ids if i in self.experts_by_id}

    # dispatch: the plain way, every expert and assignment read (the SQL register asks
    # the database; tests/integration/booking/test_dispatch_query.py compares the two)
    def offers(
        self,
        *,
        enterprise_id: str,
        region: str,
        needed: frozenset[str],
        preferred: Sequence[str],
        since: date,
        until: date,
        skip: Iterable[str] = (),
        limit: int = 8,
    ) -> list[Offer]:
        skipped = set(skip)
        rows: list[tuple[Any, ...]] = []
        for e in self.experts_by_id.values():
            if not e.active or not needed <= set(e.domains) or enterprise_id in e.conflicts:
                continue
            if e.id in skipped:
                continue
            mine = [a for a in self.assignments if a.expert_id == e.id]
            recent = sum(1 for a in mine if since <= a.day <= until)
            last = max((a.created_at for a in mine), default=None)
            local = region in e.regions
            free = self.free_slots(e.id, preferred)
            first = next((slot for slot in preferred if slot in free), None)
            if first is not None:
                key = (not local, recent, last is not None, last or datetime.min, e.id)
                rows.append((key, Offer(e.id, first, local, recent, last)))
        rows.sort(key=lambda r: r[0])
        return [offer for _, offer in rows[:limit]]

    def book_best_offer(
        self,
        *,
        enterprise_id: str,
        region: str,
        needed: frozenset[str],
        preferred: Sequence[str],
        since: date,
        until: date,
        order_id: str,
        at: datetime,
        limit: int = 8,
    ) -> Assignment | None:
        """The first of the best `limit` offers no one else holds, booked in its first
        free preferred half-day (read again); None: nothing booked."""
        offers = self.offers(
            enterprise_id=enterprise_id,
            region=region,
            needed=needed,
            preferred=preferred,
            since=since,
            until=until,
            limit=limit,
        )
        best = next((o for o in offers if o.expert_id not in self.locked_by_others), None)
        if best is None:
            return None
        free = self.free_slots(best.expert_id, preferred)
        slot = next((s for s in preferred if s in free), None)
        if slot is None:
            return None
        booked = Assignment(best.expert_id, slot, parse_slot(slot).day, order_id, at)
        return booked if self.claim_slot(booked) else None

    def free_slots(
        self,
        expert_id: str,
        preferred: Sequence[str],
        *,
        enterprise_id: str = "",
        needed: frozenset[str] = frozenset(),
    ) -> set[str]:
        e = self.experts_by_id.get(expert_id)
        if e is None or not e.active or enterprise_id in e.conflicts:
            return set()
        if not needed <= set(e.domains):
            return set()
        mine = [a for a in self.assignments if a.expert_id == expert_id]
        taken = {a.slot for a in mine}  # not taken_slots: a race the claim loses
        return {
            s
            for s in preferred
            if s in e.slots
            and s not in taken
            and sum(1 for a in mine if a.day == parse_slot(s).day) < e.max_visits_per_day
        }

    def with_expert_locked(
        self, expert_id: str, *, wait: bool, attempt: Callable[[], T | None]
    ) -> tuple[bool, T | None]:
        if not wait and expert_id in self.locked_by_others:
            return False, None
        return True, attempt()

    def claim_slot(self, assignment: Assignment) -> bool:
        key = (assignment.expert_id, assignment.slot)
        if key in self.taken_slots or any((a.expert_id, a.slot) == key for a in self.assignments):
            return False
        self.assignments.append(assignment)
        return True

    def release_slot(self, order_id: str) -> None:
        self.assignments = [a for a in self.assignments if a.order_id != order_id]

    # orders
    def order(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return self.orders_by_id.get(order_id)

    def order_by_key(self, enterprise_id: str, key: str) -> Order | None:
        return next(
            (
                o
                for o in self.orders_by_id.values()
                if o.enterprise_id == enterprise_id and o.idempotency_key == key
            ),
            None,
        )

    def orders(
        self,
        *,
        enterprise_id: str = "",
        status: str = "",
        after: str = "",
        limit: int = 50,
        expert_id: str = "",
        regions: Sequence[str] = (),
    ) -> Sequence[Order]:
        rows = [
            o
            for o in self.orders_by_id.values()
            if (not enterprise_id or o.enterprise_id == enterprise_id)
            and (not status or o.status == status)
            and (not after or o.id < after)
            and (not expert_id or o.expert_id == expert_id)
            and (not regions or o.region in regions)
        ]
        return sorted(rows, key=lambda o: o.id, reverse=True)[:limit]

    def dispatched_orders_of(self, expert_id: str, after: date) -> Sequence[Order]:
        booked = {
            a.order_id for a in self.assignments if a.expert_id == expert_id and a.day > after
        }
        return sorted(
            (o for i, o in self.orders_by_id.items() if i in booked and o.status == "dispatched"),
            key=lambda o: o.id,
        )

    def submitted_order_ids(self) -> list[str]:
        return sorted(i for i, o in self.orders_by_id.items() if o.status == "submitted")

    def orders_between(
        self, start: datetime, end: datetime, regions: Sequence[str] = ()
    ) -> Sequence[Order]:
        return [
            o
            for o in self.orders_by_id.values()
            if start <= o.created_at < end and (not regions or o.region in regions)
        ]

    def overdue_by_region(self, today: date, regions: Sequence[str] = ()) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tickets_by_id.values():
            region = self.orders_by_id[t.order_id].region
            if t.is_overdue(today) and (not regions or region in regions):
                out[region] = out.get(region, 0) + 1
        return out

    def overdue_tickets(
        self, today: date, regions: Sequence[str] = (), limit: int = 500
    ) -> Sequence[Ticket]:
        found = [
            t
            for t in self.tickets_by_id.values()
            if t.is_overdue(today)
            and (not regions or self.orders_by_id[t.order_id].region in regions)
        ]
        return sorted(found, key=lambda t: (t.due_on, t.id))[:limit]

    # visits, tickets and photos
    def visit_of(self, order_id: str) -> Visit | None:
        return next((v for v in self.visits.values() if v.order_id == order_id), None)

    def ticket(self, ticket_id: str, *, for_update: bool = False) -> Ticket | None:
        return self.tickets_by_id.get(ticket_id)

    def tickets(
        self,
        *,
        enterprise_id: str = "",
        status: str = "",
        order_id: str = "",
        visit_id: str = "",
        overdue_on: date | None = None,
        due_by: date | None = None,
        after: str = "",
        limit: int = 200,
        regions: Sequence[str] = (),
        by_deadline: bool = False,
        expert_id: str = "",
        for_update: bool = False,
    ) -> Sequence[Ticket]:
        rows = [
            t
            for t in self.tickets_by_id.values()
            if (not enterprise_id or t.enterprise_id == enterprise_id)
            and (not expert_id or t.expert_id == expert_id)
            and (not regions or self.orders_by_id[t.order_id].region in regions)
            and (not status or t.status == status)
            and (not order_id or t.order_id == order_id)
            and (not visit_id or t.visit_id == visit_id)
            and (overdue_on is None or (t.status != "verified" and t.due_on < overdue_on))
            and (due_by is None or t.due_on <= due_by)
            and (not after or t.id > after)
        ]
        key = (lambda t: (t.due_on, t.id)) if by_deadline else (lambda t: (date.min, t.id))
        return sorted(rows, key=key)[:limit]

    def tickets_of_orders(self, order_ids: Sequence[str]) -> Sequence[Ticket]:
        return [t for t in self.tickets_by_id.values() if t.order_id in order_ids]

    def photo(self, photo_id: str) -> Photo | None:
        return self.photos.get(photo_id)

    def add_photo(self, photo: Photo) -> None:
        self.add(photo)

    def proof_sent_with(self, ticket_id: str, key: str) -> tuple[str, str] | None:
        for p in self.photos.values():
            if p.ticket_id == ticket_id and p.purpose == "proof" and p.idempotency_key == key:
                return p.id, p.sha256
        return None

    # the outbox
    def _open(self) -> list[OutboxMessage]:
        return [m for m in self.outbox if m.delivered_at is None and m.discarded_at is None]

    def pending_messages(self, limit: int) -> Sequence[OutboxMessage]:
        return [m for m in self._open() if m.failed_at is None][:limit]

    def due_heads(self, instant: datetime, limit: int) -> list[tuple[str, int]]:
        heads: dict[str, OutboxMessage] = {}
        for m in self._open():
            heads.setdefault(m.enterprise_id, m)
        due = [
            (firm, int(m.id or 0))
            for firm, m in heads.items()
            if m.failed_at is None
            and (m.next_attempt_at is None or m.next_attempt_at <= instant)
            and (m.claimed_until is None or m.claimed_until <= instant)
        ]
        return sorted(due, key=lambda h: h[1])[:limit]

    def held_heads(self, failing_since: datetime) -> Sequence[OutboxMessage]:
        heads: dict[str, OutboxMessage] = {}
        for m in self._open():
            heads.setdefault(m.enterprise_id, m)
        return sorted(
            (
                m
                for m in heads.values()
                if m.failed_at is not None
                or (m.last_error and m.failing_since and m.failing_since <= failing_since)
            ),
            key=lambda m: int(m.id or 0),
        )

    def firm_head(self, enterprise_id: str) -> int | None:
        return next((m.id for m in self._open() if m.enterprise_id == enterprise_id), None)

    def claim_message(self, message_id: int) -> OutboxMessage | None:
        return next((m for m in self.outbox if m.id == message_id), None)

    def locked_message(self, message_id: int) -> OutboxMessage | None:
        return self.claim_message(message_id)

    def outbox_message(self, event_id: str, *, for_update: bool = False) -> OutboxMessage | None:
        return next((m for m in self.outbox if m.event_id == event_id), None)

    def failed_messages(self) -> Sequence[OutboxMessage]:
        return [m for m in self._open() if m.failed_at is not None]

    def open_counts(self, firms: Iterable[str]) -> dict[str, int]:
        wanted = set(firms)
        counts: dict[str, int] = {}
        for m in self._open():
            if m.enterprise_id in wanted:
                counts[m.enterprise_id] = counts.get(m.enterprise_id, 0) + 1
        return counts

    def delivered_since(self, instant: datetime) -> Sequence[OutboxMessage]:
        return [m for m in self.outbox if m.delivered_at and m.delivered_at >= instant]

    def undelivered_count(self) -> int:
        return len(self.pending_messages(10**9))

    def outbox_decision_values(self, message: OutboxMessage) -> dict[str, Any]:
        return {"failed_at": message.failed_at, "discarded_at": message.discarded_at}

    def record_outbox_decision(self, message: OutboxMessage, before: dict[str, Any]) -> None:
        self.outbox_decisions.append((message.event_id, before))


class FakeUnitOfWork:
    """Changes apply at once (no rollback); `commits` counts commits, and
    `conflicts` makes that many commits lose a race (Conflict), as a concurrent writer
    would."""

    def __init__(self, register: FakeRegister | None = None) -> None:
        self.register = register or FakeRegister()
        self.commits = 0
        self.conflicts = 0

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def commit(self) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("a concurrent change got there first; try again")
        self.flush()  # the orders add_order took are written at the commit
        self.commits += 1

    def rollback(self) -> None:
        pass

    @staticmethod
    def unavailable(exc: BaseException) -> bool:
        return False

    def flush(self) -> None:
        """The unique (firm, idempotency key) of orders: a second order with a key its
        firm used before is dropped and the flush loses, as on a database."""
        seen: set[tuple[str, str]] = set()
        for order in sorted(self.register.orders_by_id.values(), key=lambda o: o.created_at):
            key = (order.enterprise_id, order.idempotency_key)
            if key in seen:  # dropped with what its transaction booked for it
                del self.register.orders_by_id[order.id]
                self.register.release_slot(order.id)
                raise Conflict("a concurrent change got there first; try again")
            seen.add(key)


@dataclass
class FakeRules:
    """The rules service: a register of firms, a catalogue of clauses, the events it got;
    `failure` makes every call raise that error (down, refusing …)."""

    firms: dict[str, FirmInfo] = field(default_factory=dict)
    clauses: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"GEN:ledger": ("未建立隐患排查治理台账", "建立台账")}
    )
    severities: dict[str, str] = field(default_factory=dict)  # a clause's, when "major"
    codes: dict[str, InspectionInfo] = field(default_factory=dict)
    reported: list[Mapping[str, Any]] = field(default_factory=list)
    failure: RulesError | None = None
    refuse: dict[str, Exception] = field(default_factory=dict)  # event id → its error
    statuses: dict[str, FirmStatus] = field(default_factory=dict)
    applicable_clauses: list[ClauseInfo] = field(default_factory=list)
    # fact key → the finding a self-check answer `true` (or > 0) brings
    answers_find: dict[str, FindingInfo] = field(default_factory=dict)
    evaluated: list[Mapping[str, Any]] = field(default_factory=list)
    sizes: list[WhitelistSize] = field(default_factory=list)  # ListWhitelistSizes
    standards: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (title, edition)
    # id → (edition, superseded_on YYYY-MM-DD, successor), as rules' editions data says
    replaced: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def _call(self) -> None:
        if self.failure is not None:
            raise self.failure

    def firm(self, enterprise_id: str) -> FirmInfo | None:
        self._call()
        return self.firms.get(enterprise_id)

    def clause(self, clause_ref: str) -> tuple[str, str] | None:
        self._call()
        return self.clauses.get(clause_ref)

    def clause_exists(self, clause_ref: str) -> bool:
        return self.clause(clause_ref) is not None

    def clause_severity(self, clause_ref: str) -> str | None:
        if self.clause(clause_ref) is None:
            return None
        return self.severities.get(clause_ref, "general")

    def standard_name(self, standard_id: str) -> tuple[str, str] | None:
        return self.standards.get(standard_id)

    def replaced_edition(self, standard_id: str, on: date) -> tuple[str, str] | None:
        found = self.replaced.get(standard_id)
        if found is None or found[1] > on.isoformat():
            return None
        return found[0], found[2]

    def report(self, payload: Mapping[str, Any]) -> None:
        self._call()
        if (refused := self.refuse.get(str(payload["event_id"]))) is not None:
            raise refused
        self.reported.append(payload)

    def verify_code(self, code: str) -> InspectionInfo | None:
        self._call()
        return self.codes.get(code)

    def status(self, enterprise_id: str) -> FirmStatus | None:
        self._call()
        return self.statuses.get(enterprise_id)

    def applicable(self, enterprise_id: str, major_only: bool = False) -> list[ClauseInfo]:
        self._call()
        return [c for c in self.applicable_clauses if not major_only or c.severity == "major"]

    def self_check(self, enterprise_id: str, answers: Mapping[str, Any]) -> list[FindingInfo]:
        self._call()
        self.evaluated.append(dict(answers))
        return [f for k, f in self.answers_find.items() if answers.get(k)]

    def enterprises(self, region: str) -> list[FirmSummary]:
        """The firms of `region` (its exact name; "" for all) by enterprise_id."""
        self._call()
        return [
            FirmSummary(f.enterprise_id, f.name, f.region, "", "")
            for _, f in sorted(self.firms.items())
            if not region or f.region == region
        ]

    def whitelist_sizes(self, region: str, from_month: str, to_month: str) -> list[WhitelistSize]:
        self._call()
        return list(self.sizes)


@dataclass
class Clock:
    today: date = TODAY

    def __call__(self) -> date:
        return self.today

    def advance(self, days: int) -> None:
        self.today += timedelta(days=days)


def context(rules: FakeRules | None = None, clock: Clock | None = None) -> BookingContext:
    return BookingContext(
        keyring=KEYS,
        menu=MENU,
        rules=rules or FakeRules(firms={FIRM: FirmInfo(FIRM, "义乌市示例五金厂", REGION)}),
        public_url="https://example.org",
        today=clock or Clock(),
        sms=MemorySms(),
    )
