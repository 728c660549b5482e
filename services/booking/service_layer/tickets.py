"""整改 → 复查, 督单: the firm's proof of fix, the recheck, the overdue sweep, and reads.

Every verification, new deadline (a failed recheck's) and overdue is written to the outbox
in the same transaction, for delivery to the rules service (service_layer/outbox.py).
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Protocol

from services.booking.domain import messages
from services.booking.domain.events import (
    due_changed,
    hazard_verified,
    rectification_overdue,
)
from services.booking.domain.findings import MAX_TEXT
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import OrderAction, OrderStatus
from services.booking.domain.photos import check_photo, check_room, photo_record, scrubbed
from services.booking.domain.records import Photo
from services.booking.domain.staff import EVERY, Reach
from services.booking.domain.tickets import (
    Ticket,
    TicketAction,
    TicketStatus,
    beyond,
    check_proof_seen,
    deadline_too_far,
    recheck_note_problem,
    too_far,
)
from services.booking.service_layer.authz import require_reach
from services.booking.service_layer.orders import checked_key
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.qr_codes import owner_of, session_owner, visible
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import new_id, now
from services.common.errors import FieldViolation, NotFound, PermissionDenied, ValidationError
from services.common.paging import decode_token, one_page, page_size, query_key
from services.common.values import control_problem, parse_iso_date, trim

TOO_LONG = messages.PROOF_TOO_LONG.format(n=MAX_TEXT)


class MayRecheck(Protocol):
    """The caller's role check for one ticket (service_layer/authz.py `may_recheck`)."""

    def __call__(self, ticket: Ticket) -> bool: ...


def submit_rectification(
    uow: UnitOfWork,
    ctx: BookingContext,
    ticket_id: str,
    access: FirmAccess,
    *,
    note: str,
    photo: bytes,
    actor: str = "firm",
    idempotency_key: str = "",
) -> Ticket:
    """The firm's proof of fix: a JPEG/PNG photo (≤ 5 MB) and a note. The first proof of
    a round (the ticket OPEN) is sent today, the day its lateness is judged by; another
    while it waits for the recheck ("a better photo") replaces the photo and note but not
    that day (domain/tickets.py `closes_late`). An OPEN ticket past its deadline that the
    sweep has not reported yet is reported now (RECTIFICATION_OVERDUE, as the sweep would
    have): once the proof is in, the sweep passes it by. `idempotency_key` (optional,
    checked first as CreateOrder's): the key of the form the proof was sent with; a proof
    of this ticket stored with it already (a double tap, a resubmit: review 62) is the
    answer, the ticket as it is, nothing stored again nor counted against the cap."""
    key = checked_key(idempotency_key, required=False)
    if len(note) > MAX_TEXT:
        raise ValidationError([FieldViolation("note", TOO_LONG)])
    if control_problem(note, multiline=True):
        raise ValidationError([FieldViolation("note", messages.CONTROL_CHARACTERS)])
    check_photo(photo, "photo")
    today = ctx.today()
    with uow:
        owner = owner_of(uow, ctx, access)
        found = uow.register.ticket(ticket_id, for_update=True)
        ticket = visible(owner, found, "ticket", ticket_id)
        if key and (sent_with := uow.register.proof_sent_with(ticket.id, key)):
            if _same_proof(ticket, sent_with, note, photo):
                return ticket  # sent already, under this ticket's lock: stored once
            # the form used already, now with another photo or note, or its proof no
            # longer the ticket's (a page kept since: the back button, a failed recheck)
            raise ValidationError([FieldViolation("idempotency_key", messages.FORM_EXPIRED)])
        report_overdue(uow, ticket, today)
        first = ticket.status == TicketStatus.OPEN  # this round's first proof
        sent = ticket.proofs_this_round()
        ticket.move(
            TicketAction.SUBMIT_PROOF,
            actor=actor,
            at=now(),
            reason=trim(note, multiline=True)[:200],
        )
        check_room(sent)  # after the move: a verified ticket says so first
        ticket.proof_note = trim(note, multiline=True)
        proof = photo_record(new_id("P"), ticket.id, photo, "proof", now(), key)
        uow.register.add(proof)
        ticket.proof_photo_id = proof.id
        if first:
            ticket.proof_submitted_on = today
        uow.commit()
        return ticket


def _same_proof(ticket: Ticket, sent_with: tuple[str, str], note: str, photo: bytes) -> bool:
    """Whether the proof stored from a form (`sent_with`: its id and SHA-256) is this one
    sent again: still the ticket's proof, with this photo (as stored: scrubbed) and note
    (review 73: another photo from a used form was dropped unsaid)."""
    proof_id, digest = sent_with
    return (
        ticket.proof_photo_id == proof_id
        and ticket.proof_note == trim(note, multiline=True)
        and hashlib.sha256(scrubbed(photo)).hexdigest() == digest
    )


def recheck_ticket(
    uow: UnitOfWork,
    ctx: BookingContext,
    ticket_id: str,
    *,
    passed: bool,
    note: str,
    new_due_on: str,
    actor: str,
    allowed: MayRecheck | None = None,
    reach: Reach = EVERY,
    proof_seen: int | None = None,
) -> Ticket:
    """Inspector's (or finding expert's) recheck: pass → VERIFIED and HAZARD_VERIFIED (on
    time or late: domain/tickets.py `closes_late`), closing the order once all its tickets
    are; fail → back to OPEN with a new deadline and the reason kept (a note is required:
    `recheck_note_problem`), and HAZARD_DUE_CHANGED, so the rules register holds
    the deadline in force. `allowed(ticket)` is the caller's role check; `reach`: the
    tickets the caller may see (authz.reach: an inspector's region, an expert's own
    findings), one out of it answered as an unknown id (NotFound, the same message).
    `proof_seen`: the proof the conclusion is about (`Ticket.proof_number` when the person
    looked); another proof sent since is RecheckRefused PROOF_CHANGED, as a ticket no
    longer waiting is NOT_WAITING (`Ticket.check_recheck`, under the ticket's lock, so a proof being
    committed meanwhile is waited for); None: not checked. ValidationError names every
    bad field (`note`, `new_due_on`, `proof_number`) at once."""
    today = ctx.today()
    new_due = _recheck_input(passed, note, new_due_on, today, proof_seen)
    with uow:
        found = uow.register.ticket(ticket_id)
        if found is None:
            raise NotFound(messages.no_such("ticket", ticket_id))
        # the order first (as RecordVisit does): rechecks of one order's tickets take turns,
        # so the last one sees every sibling VERIFIED and closes the order
        order = uow.register.order(found.order_id, for_update=True)
        ticket = uow.register.ticket(ticket_id, for_update=True)
        assert ticket is not None
        # out of reach reads as unknown, before the role check (reach-notfound)
        require_reach(reach, ticket.expert_id, order.region if order else "", "ticket", ticket_id)
        if allowed is not None and not allowed(ticket):
            raise PermissionDenied(messages.ONLY_RECHECKERS)
        ticket.check_recheck(passed, proof_seen)
        if passed:
            _verified(uow, ticket, today, actor, note)
        else:
            ticket.move(TicketAction.RECHECK_FAIL, actor=actor, at=now(), reason=note)
            assert new_due is not None
            # a new round: its first proof, under the new deadline, is the one judged
            ticket.due_on, ticket.proof_submitted_on = new_due, None
            uow.register.add_event(due_changed(ticket, today))
        uow.commit()
        return ticket


def _recheck_input(
    passed: bool, note: str, new_due_on: str, today: date, seen: int | None
) -> date | None:
    """A recheck's note, (a failure's) new deadline and the proof it is about checked
    together: the new deadline, or ValidationError naming each bad field."""
    bad = []
    if len(note) > MAX_TEXT:
        bad.append(FieldViolation("note", TOO_LONG))
    elif control_problem(note, multiline=True):
        bad.append(FieldViolation("note", messages.CONTROL_CHARACTERS))
    elif problem := recheck_note_problem(passed, note):
        bad.append(FieldViolation("note", problem))
    try:
        new_due = _new_deadline(new_due_on, passed, today)
    except ValidationError as exc:
        bad.extend(exc.violations)
    try:
        check_proof_seen(seen)
    except ValidationError as exc:
        bad.extend(exc.violations)
    if bad:
        raise ValidationError(bad)
    return new_due


def _new_deadline(text: str, passed: bool, today: date) -> date | None:
    """A failed recheck's new deadline: after today, at most MAX_DEADLINE_DAYS ahead."""
    if not text and passed:
        return None
    try:
        day = parse_iso_date(text)
    except ValueError as exc:
        why = too_far(today) if beyond(text, today) else messages.BAD_DATE
        why = why if text else messages.RECHECK_NEEDS_DEADLINE
        raise ValidationError([FieldViolation("new_due_on", why)]) from exc
    if not passed and day <= today:
        raise ValidationError([FieldViolation("new_due_on", messages.RECHECK_NEEDS_DEADLINE)])
    if deadline_too_far(day, today):
        raise ValidationError([FieldViolation("new_due_on", too_far(today))])
    return day


def _verified(uow: UnitOfWork, ticket: Ticket, today: date, actor: str, note: str) -> None:
    ticket.move(
        TicketAction.RECHECK_PASS, actor=actor, at=now(), reason=note or messages.RECHECK_PASSED
    )
    ticket.verified_on, ticket.closed_late = today, ticket.verified_late()
    uow.register.add_event(hazard_verified(ticket, today))
    uow.flush()  # the siblings below are read from the database
    siblings = uow.register.tickets(order_id=ticket.order_id)
    if all(t.status == TicketStatus.VERIFIED for t in siblings):
        order = uow.register.order(ticket.order_id, for_update=True)
        if order is not None and order.status == OrderStatus.VISITED:
            order.move(OrderAction.CLOSE, actor=actor, at=now(), reason=messages.ALL_VERIFIED)


def sweep(uow: UnitOfWork, ctx: BookingContext) -> int:
    """督单: report each OPEN ticket past its deadline once per deadline
    (RECTIFICATION_OVERDUE; `Ticket.needs_overdue_report`: a proof waiting for its recheck
    is not reported). The tickets are read locked: a late proof being committed meanwhile
    (which reports its own overdue, `submit_rectification`) is waited for and its ticket
    then passed by, so the sweep neither writes that event twice nor fails on it (its id
    is unique), and every other report of the batch stands."""
    today = ctx.today()
    with uow:
        due = uow.register.tickets(
            status=TicketStatus.OPEN, overdue_on=today, limit=100_000, for_update=True
        )
        overdue = [t for t in due if report_overdue(uow, t, today)]
        uow.commit()
    return len(overdue)


def report_overdue(uow: UnitOfWork, ticket: Ticket, today: date) -> bool:
    """In an open unit of work: RECTIFICATION_OVERDUE for `ticket` when it needs one (OPEN,
    past its deadline, not yet reported for it), marked reported; whether it did."""
    if not ticket.needs_overdue_report(today):
        return False
    ticket.overdue_reported_for = ticket.due_on
    uow.register.add_event(rectification_overdue(ticket, today))
    return True


def list_tickets(
    uow: UnitOfWork,
    ctx: BookingContext,
    *,
    enterprise_id: str,
    status: str,
    overdue_only: bool,
    size: int,
    token: str,
    reach: Reach,
) -> tuple[list[Ticket], str]:
    """One page of tickets within `reach` (an inspector's region, an expert's own
    findings), oldest first (services/common/paging.py)."""
    size = page_size(size)
    query = query_key(
        "ListTickets", enterprise_id, status, overdue_only, reach.expert_id, *reach.regions
    )
    after = decode_token(token, query)
    with uow:
        rows = list(
            uow.register.tickets(
                enterprise_id=enterprise_id,
                status=status,
                after=after,
                overdue_on=ctx.today() if overdue_only else None,
                limit=size + 1,
                regions=reach.regions,
                expert_id=reach.expert_id,
            )
        )
    return one_page(rows, size, query, lambda t: t.id)


def photo_of(uow: UnitOfWork, ctx: BookingContext, photo_id: str, access: FirmAccess) -> Photo:
    """A photo of one of the signed-in firm's tickets."""
    with uow:
        owner = session_owner(uow, ctx, access)  # checked first
        photo = uow.register.photo(photo_id)
        ticket = uow.register.ticket(photo.ticket_id) if photo else None
        if photo is None or ticket is None:
            raise NotFound(messages.no_such("photo", photo_id))
        visible(owner, ticket, "photo", photo_id)
        return photo
