"""Visits, rectification tickets, rechecks and the overdue sweep (发现 → 整改 → 复查, 督单).

Every finding, verification and overdue is written to the outbox in the same transaction,
for delivery to the rules service (service_layer/outbox.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.booking.domain.orders import CONTROL_CHARACTERS, OrderAction, OrderStatus
from services.booking.domain.photos import check_photo
from services.booking.domain.records import OutboxMessage, Photo, Visit
from services.booking.domain.tickets import Ticket, TicketAction, TicketStatus, default_due
from services.booking.service_layer.handlers import (
    BookingContext,
    _rules_call,
    check_owner,
    firm_for_token,
    owner_of,
)
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import new_id, now
from services.common.errors import FieldViolation, NotFound, PermissionDenied, ValidationError
from services.common.paging import decode_token, one_page, page_size, query_key
from services.common.values import control_problem, parse_day, preview
from services.common.vocabulary import Severity

MAX_FINDINGS = 50
MAX_PHOTOS = 5
MAX_TEXT = 1000
CLAUSE_REF_MAX = 48


@dataclass(frozen=True)
class FindingInput:
    clause_ref: str
    severity: str  # "major" | "general"
    description: str
    due_on: str = ""
    photos: tuple[tuple[bytes, str], ...] = ()


def _outbox(uow: UnitOfWork, event: dict[str, Any]) -> None:
    uow.register.add(
        OutboxMessage(
            event_id=event["event_id"],
            kind=event["kind"],
            enterprise_id=event["enterprise_id"],
            payload=event,
            created_at=now(),
        )
    )


def _findings(
    ctx: BookingContext, findings: Sequence[FindingInput], visited_on: date
) -> list[tuple[FindingInput, date]]:
    """Validate findings; clause refs must be clauses the rules service knows."""
    if len(findings) > MAX_FINDINGS:
        raise ValidationError([FieldViolation("findings", f"at most {MAX_FINDINGS} per visit")])
    bad: list[FieldViolation] = []
    out = []
    for i, f in enumerate(findings):
        due, problems = _finding(ctx, f, visited_on, f"findings[{i}]")
        bad.extend(problems)
        out.append((f, due))
    if bad:
        raise ValidationError(bad)
    return out


def _finding(
    ctx: BookingContext, f: FindingInput, visited_on: date, path: str
) -> tuple[date, list[FieldViolation]]:
    """One finding's deadline and everything wrong with it."""
    bad: list[FieldViolation] = []
    if f.severity not in set(Severity):
        bad.append(FieldViolation(f"{path}.severity", "MAJOR or GENERAL"))
    if not f.description.strip() or len(f.description) > MAX_TEXT:
        bad.append(
            FieldViolation(f"{path}.description", f"required, at most {MAX_TEXT} characters")
        )
    if (
        len(f.clause_ref) > CLAUSE_REF_MAX
        or ":" not in f.clause_ref
        or not _known_clause(ctx, f.clause_ref)
    ):
        bad.append(
            FieldViolation(
                f"{path}.clause_ref",
                f"{preview(f.clause_ref)} is not a clause the rules service knows",
            )
        )
    if len(f.photos) > MAX_PHOTOS:
        bad.append(FieldViolation(f"{path}.photos", f"at most {MAX_PHOTOS}"))
    for j, (content, _) in enumerate(f.photos):
        try:
            check_photo(content, f"{path}.photos[{j}]")
        except ValidationError as exc:
            bad.extend(exc.violations)
    due = default_due(f.severity, visited_on) if f.severity in set(Severity) else visited_on
    if f.due_on:
        try:
            due = parse_day(f.due_on, f"{path}.due_on")
        except ValidationError as exc:
            bad.extend(exc.violations)
        else:
            if due <= visited_on:
                bad.append(FieldViolation(f"{path}.due_on", "must be after the visit"))
    return due, bad


def _known_clause(ctx: BookingContext, clause_ref: str) -> bool:
    return bool(_rules_call(lambda: ctx.rules.clause_exists(clause_ref)))


@dataclass
class VisitResult:
    visit: Visit
    tickets: list[Ticket]


def record_visit(
    uow: UnitOfWork,
    ctx: BookingContext,
    order_id: str,
    findings: Sequence[FindingInput],
    *,
    visited_on: str,
    minutes: int,
    actor: str,
    expert_id: str = "",
) -> VisitResult:
    """The expert's visit: each finding becomes a ticket and a HAZARD_FOUND event."""
    day = parse_day(visited_on, "visited_on") if visited_on else ctx.today()
    if not 0 <= minutes <= 24 * 60:
        raise ValidationError([FieldViolation("minutes_on_site", "0..1440")])
    checked = _findings(ctx, findings, day)
    with uow:
        order = uow.register.order(order_id, for_update=True)
        if order is None:
            raise NotFound(f"no order {preview(order_id)}")
        if expert_id and order.expert_id != expert_id:
            raise PermissionDenied("only the dispatched expert records this visit")
        order.move(OrderAction.RECORD_VISIT, actor=actor, at=now(), reason=f"{len(checked)}项隐患")
        visit = Visit(new_id("V"), order.id, order.expert_id or "", day, minutes, now())
        uow.register.add(visit)
        tickets = [
            _ticket(uow, order.id, visit, order.enterprise_id, f, due, actor) for f, due in checked
        ]
        if not tickets:
            order.move(OrderAction.CLOSE, actor=actor, at=now(), reason="未发现隐患")
        uow.commit()
        return VisitResult(visit, tickets)


def _ticket(
    uow: UnitOfWork,
    order_id: str,
    visit: Visit,
    enterprise_id: str,
    f: FindingInput,
    due: date,
    actor: str,
) -> Ticket:
    ticket = Ticket(
        id=new_id("T"),
        order_id=order_id,
        visit_id=visit.id,
        enterprise_id=enterprise_id,
        clause_ref=f.clause_ref,
        severity=f.severity,
        description=f.description.strip(),
        found_on=visit.visited_on,
        due_on=due,
        status="",
        expert_id=visit.expert_id,
        created_at=now(),
    )
    ticket.enter(TicketStatus.OPEN.value, actor=actor, at=now(), reason="现场发现")
    uow.register.add(ticket)
    if f.photos:
        # photos reference the ticket, and no relationship tells the unit of work so
        # (it would load the blobs): insert the ticket first
        uow.flush()
    for content, _ in f.photos:
        _store_photo(uow, ticket.id, content, "finding")
    kind = "MAJOR_HAZARD_FOUND" if f.severity == "major" else "GENERAL_HAZARD_FOUND"
    _outbox(
        uow,
        {
            "event_id": f"booking-{ticket.id}-found",
            "enterprise_id": enterprise_id,
            "kind": f"EVENT_KIND_{kind}",
            "occurred_on": visit.visited_on.isoformat(),
            "hazard": {
                "hazard_id": ticket.id,
                "clause_ref": f.clause_ref,
                "severity": f"SEVERITY_{f.severity.upper()}",
                "due_on": due.isoformat(),
            },
        },
    )
    return ticket


def _store_photo(uow: UnitOfWork, ticket_id: str, content: bytes, purpose: str) -> str:
    kind = check_photo(content, "photo") or ""
    photo = Photo(
        new_id("P"),
        ticket_id,
        kind,
        len(content),
        hashlib.sha256(content).hexdigest(),
        content,
        now(),
        purpose,
    )
    uow.register.add(photo)
    return photo.id


def submit_rectification(
    uow: UnitOfWork,
    ctx: BookingContext,
    ticket_id: str,
    *,
    token: str,
    note: str,
    photo: bytes,
    actor: str = "firm",
) -> Ticket:
    """The firm's proof of fix: a JPEG/PNG photo (≤ 5 MB) and a note."""
    if len(note) > MAX_TEXT:
        raise ValidationError([FieldViolation("note", f"说明最多{MAX_TEXT}个字")])
    if control_problem(note, multiline=True):
        raise ValidationError([FieldViolation("note", CONTROL_CHARACTERS)])
    check_photo(photo, "photo")
    with uow:
        owner = owner_of(uow, ctx, token)
        ticket = uow.register.ticket(ticket_id, for_update=True)
        if ticket is None:
            raise NotFound(f"no ticket {preview(ticket_id)}")
        check_owner(owner, ticket.enterprise_id, "ticket")
        ticket.move(TicketAction.SUBMIT_PROOF, actor=actor, at=now(), reason=note.strip()[:200])
        ticket.proof_note = note.strip()
        ticket.proof_photo_id = _store_photo(uow, ticket.id, photo, "proof")
        uow.commit()
        return ticket


def recheck_ticket(
    uow: UnitOfWork,
    ctx: BookingContext,
    ticket_id: str,
    *,
    passed: bool,
    note: str,
    new_due_on: str,
    actor: str,
    allowed: Any = None,
) -> Ticket:
    """Inspector's (or finding expert's) recheck: pass → VERIFIED and HAZARD_VERIFIED (on
    time or late); fail → back to OPEN with a new deadline and the reason kept.

    `allowed(ticket)` is the caller's role check (issue: only an inspector, or the expert
    who found it).
    """
    if len(note) > MAX_TEXT:
        raise ValidationError([FieldViolation("note", f"说明最多{MAX_TEXT}个字")])
    today = ctx.today()
    new_due = parse_day(new_due_on, "new_due_on") if new_due_on else None
    if not passed and (new_due is None or new_due <= today):
        raise ValidationError(
            [FieldViolation("new_due_on", "a failed recheck needs a new deadline after today")]
        )
    with uow:
        found = uow.register.ticket(ticket_id)
        if found is None:
            raise NotFound(f"no ticket {preview(ticket_id)}")
        # the order first (as RecordVisit does): rechecks of one order's tickets take turns,
        # so the last one sees every sibling VERIFIED and closes the order
        uow.register.order(found.order_id, for_update=True)
        ticket = uow.register.ticket(ticket_id, for_update=True)
        assert ticket is not None
        if allowed is not None and not allowed(ticket):
            raise PermissionDenied("only an inspector or the expert who found it may recheck")
        if passed:
            _verified(uow, ticket, today, actor, note)
        else:
            ticket.move(
                TicketAction.RECHECK_FAIL, actor=actor, at=now(), reason=note or "复查未通过"
            )
            assert new_due is not None
            ticket.due_on = new_due
        uow.commit()
        return ticket


def _verified(uow: UnitOfWork, ticket: Ticket, today: date, actor: str, note: str) -> None:
    ticket.move(TicketAction.RECHECK_PASS, actor=actor, at=now(), reason=note or "复查通过")
    ticket.verified_on, ticket.closed_late = today, today > ticket.due_on
    _outbox(
        uow,
        {
            "event_id": f"booking-{ticket.id}-verified",
            "enterprise_id": ticket.enterprise_id,
            "kind": "EVENT_KIND_HAZARD_VERIFIED",
            "occurred_on": today.isoformat(),
            "verification": {"hazard_id": ticket.id, "late": ticket.closed_late},
        },
    )
    uow.flush()
    siblings = uow.register.tickets(order_id=ticket.order_id)
    if all(t.status == TicketStatus.VERIFIED for t in siblings):
        order = uow.register.order(ticket.order_id, for_update=True)
        if order is not None and order.status == OrderStatus.VISITED:
            order.move(OrderAction.CLOSE, actor=actor, at=now(), reason="全部隐患复查通过")


def get_ticket(uow: UnitOfWork, ctx: BookingContext, ticket_id: str, token: str = "") -> Ticket:
    with uow:
        owner = owner_of(uow, ctx, token)
        ticket = uow.register.ticket(ticket_id)
        if ticket is None:
            raise NotFound(f"no ticket {preview(ticket_id)}")
        check_owner(owner, ticket.enterprise_id, "ticket")
        return ticket


def list_tickets(
    uow: UnitOfWork,
    ctx: BookingContext,
    *,
    enterprise_id: str,
    status: str,
    overdue_only: bool,
    size: int,
    token: str,
) -> tuple[list[Ticket], str]:
    """One page of tickets, oldest first (services/common/paging.py)."""
    size = page_size(size)
    query = query_key(enterprise_id, status, overdue_only)
    after = decode_token(token, query)
    with uow:
        rows = list(
            uow.register.tickets(
                enterprise_id=enterprise_id,
                status=status,
                after=after,
                overdue_on=ctx.today() if overdue_only else None,
                limit=size + 1,
            )
        )
    return one_page(rows, size, query, lambda t: t.id)


def sweep(uow: UnitOfWork, ctx: BookingContext) -> int:
    """督单: report each overdue ticket once per deadline (RECTIFICATION_OVERDUE)."""
    today = ctx.today()
    with uow:
        overdue = [
            t
            for t in uow.register.tickets(overdue_on=today, limit=100_000)
            if t.needs_overdue_report(today)
        ]
        for ticket in overdue:
            ticket.overdue_reported_for = ticket.due_on
            _outbox(
                uow,
                {
                    "event_id": f"booking-{ticket.id}-overdue-{ticket.due_on.isoformat()}",
                    "enterprise_id": ticket.enterprise_id,
                    "kind": "EVENT_KIND_RECTIFICATION_OVERDUE",
                    "occurred_on": today.isoformat(),
                    "overdue": {"hazard_id": ticket.id},
                },
            )
        uow.commit()
    return len(overdue)


def firm_tickets(uow: UnitOfWork, enterprise_id: str) -> list[Ticket]:
    with uow:
        return list(uow.register.tickets(enterprise_id=enterprise_id, limit=1000))


def photo_of(uow: UnitOfWork, ctx: BookingContext, photo_id: str, token: str) -> Photo:
    with uow:
        owner = firm_for_token(uow, ctx, token)  # required here, and checked first
        photo = uow.register.photo(photo_id)
        ticket = uow.register.ticket(photo.ticket_id) if photo else None
        if photo is None or ticket is None:
            raise NotFound("no such photo")
        check_owner(owner, ticket.enterprise_id, "photo")
        return photo
