"""发现: the expert records a visit; each finding becomes a rectification ticket.

One transaction holds the visit, its tickets and photos, the order's move and one
HAZARD_FOUND event a finding (in the outbox, for the rules service). The photos come as
uploads (domain/photos.py `Upload`), checked by their size and first bytes, each read
whole only to be written, then let go.

A visit sent with an idempotency key (the client's, once per visit form) and sent again
with it — a retry after a lost answer (a connection reset during the commit), a double
submit — answers the visit it recorded and its tickets, nothing written again (a
replay): before, the retry met an order no longer DISPATCHED (FAILED_PRECONDITION) and
never learned the visit id (reviews 67 and 68).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from services.booking.domain import messages
from services.booking.domain.events import hazard_found
from services.booking.domain.findings import FindingInput, check_findings, found_ticket
from services.booking.domain.orders import PHONE, Order, OrderAction, clean_phone
from services.booking.domain.photos import photo_record
from services.booking.domain.records import FirmCard, Visit
from services.booking.domain.sign_in import mobile_after_visit
from services.booking.domain.staff import Reach
from services.booking.domain.tickets import Ticket
from services.booking.service_layer.orders import checked_key
from services.booking.service_layer.ports import BookingContext, ask_rules
from services.booking.service_layer.sign_in import change_phone
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import new_id, now
from services.common.errors import FieldViolation, NotFound, ValidationError
from services.common.instants import in_shanghai
from services.common.values import parse_day
from services.common.vocabulary import Severity

MAX_MINUTES = 24 * 60


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
    on_site_mobile: str = "",
    contact_confirmed: bool = False,
    mobile_required: bool = False,
    firm_clauses_only: bool = False,
    refused: Sequence[FieldViolation] = (),
    idempotency_key: str = "",
) -> VisitResult:
    """The expert's visit: each finding becomes a ticket and a HAZARD_FOUND event; a visit
    without findings closes the order. `expert_id`: only that expert's order ('' = any);
    another's is answered as an unknown id (NotFound, the same message).
    `on_site_mobile`: the firm's person the expert met; it becomes the firm's sign-in
    mobile (sign_in.py), in the same transaction; without one, a firm that has no
    sign-in mobile yet gets the visited order's contact mobile only when the expert
    `contact_confirmed` that the person met is the order's contact (the phone of its
    first confirmed order: domain/sign_in.py `mobile_after_visit`); neither leaves it
    without one. `mobile_required` (the staff pages): a firm without a sign-in mobile
    must get one from this visit, so neither is refused, naming `on_site_mobile`.
    `firm_clauses_only` (the staff pages):
    each finding cites a clause that applies to the firm (rules is asked once), not only
    one that exists. A finding is at least as severe as its clause (a MAJOR clause, 重大
    事故隐患, recorded as GENERAL is refused, naming the finding's `severity`). A visit
    is dated no later than today and no earlier than the day its order was placed (that
    day in Asia/Shanghai; today, should the order's instant lie past the context's clock,
    as a test's pinned day does). A refusal names every bad field at once (the visit's
    own, each finding's: the expert's page shows them all beside their fields, review 59
    F5), with `refused`: the caller's own refusals of fields it could not even read (a
    page's minutes that are no number), which record nothing either. `idempotency_key`
    (optional, checked first as CreateOrder's): when the order's visit was recorded with
    it (by `expert_id`, when given), that visit and its tickets are the answer, nothing
    checked or written again; a visit recorded with another key, or none, leaves the
    order not DISPATCHED (FAILED_PRECONDITION) as without a key."""
    key = checked_key(idempotency_key, required=False)
    if key and (done := _replay(uow, order_id, key, expert_id)) is not None:
        return done
    today = ctx.today()
    mobile = clean_phone(on_site_mobile)
    unconfirmed = mobile_required and not (mobile or contact_confirmed)
    bad = [*refused, *_visit_problems(visited_on, today, mobile, minutes)]
    mine = _Mine(uow, order_id, expert_id)
    day = _visit_day(mine, visited_on, today, bad)
    try:
        checked = _checked(mine, ctx, findings, (day, today), firm_clauses_only, unconfirmed)
    except ValidationError as exc:
        raise ValidationError([*bad, *exc.violations]) from exc
    if bad:
        raise ValidationError([*bad, *(_mobile_needed(mine) if unconfirmed else [])])
    with uow:
        order = mine.order(for_update=True)
        if order is None:  # none, or another expert's: the same answer (reach-notfound)
            raise NotFound(messages.no_such("order", order_id))
        if key and (done := _recorded(uow, order.id, key, expert_id)) is not None:
            return done  # recorded while this call's findings were checked
        if day < min(in_shanghai(order.created_at).date(), today):
            # review 47b F5: a visit of 2020 to an order of 2026 was taken, its tickets born
            # overdue and its hazards reported to rules as found years ago
            raise ValidationError([FieldViolation("visited_on", messages.VISIT_BEFORE_ORDER)])
        card = uow.register.firm(order.enterprise_id, for_update=True)
        if unconfirmed and _lacks_mobile(card):
            raise ValidationError([FieldViolation("on_site_mobile", messages.VISIT_MOBILE_NEEDED)])
        order.move(
            OrderAction.RECORD_VISIT,
            actor=actor,
            at=now(),
            reason=messages.VISIT_FINDINGS.format(n=len(checked)),
        )
        visit = Visit(new_id("V"), order.id, order.expert_id or "", day, minutes, now(), key)
        uow.register.add(visit)
        # ids sorted: the visit's tickets listed by id come in the order of its findings
        # (a replay's answer lists them so: `_recorded`)
        ids = sorted(new_id("T") for _ in checked)
        tickets = [
            _ticket(uow, visit, order.enterprise_id, f, due, actor, ticket_id)
            for (f, due), ticket_id in zip(checked, ids, strict=True)
        ]
        if not tickets:
            order.move(OrderAction.CLOSE, actor=actor, at=now(), reason=messages.NO_FINDINGS)
        if card is not None:  # audited (masked); a new mobile ends the firm's sessions
            after = mobile_after_visit(
                card.sign_in_phone, mobile, order.contact_phone, contact_confirmed
            )
            change_phone(uow, card, after)
        uow.commit()
        return VisitResult(visit, tickets)


@dataclass(frozen=True)
class _Mine:
    """The order a visit is recorded on, as the expert (`expert_id`; '' = any) may see it:
    another expert's order reads as none at every step (the checks of the visit's fields
    included), so its answer is an unknown id's, NOT_FOUND with the same message, and no
    refusal tells what the order is (authz.reach's rule, GetOrder's: reach-notfound)."""

    uow: UnitOfWork
    order_id: str
    expert_id: str

    def order(self, for_update: bool = False) -> Order | None:
        """The order when it exists and is in reach, else None (inside a `uow` block)."""
        order = self.uow.register.order(self.order_id, for_update=for_update)
        if order is None or not Reach(expert_id=self.expert_id).admits(order.expert_id, ""):
            return None
        return order


def _replay(uow: UnitOfWork, order_id: str, key: str, expert_id: str) -> VisitResult | None:
    """The visit recorded with `key`, read before the findings are checked (a retry needs
    neither the rules service nor findings still valid today); the visit's transaction
    looks again under the order's lock."""
    with uow:
        return _recorded(uow, order_id, key, expert_id)


def _recorded(uow: UnitOfWork, order_id: str, key: str, expert_id: str) -> VisitResult | None:
    """The order's visit and its tickets when it was recorded with `key` (by `expert_id`,
    when given), else None."""
    visit = uow.register.visit_of(order_id)
    if visit is None or visit.idempotency_key != key:
        return None
    if expert_id and visit.expert_id != expert_id:
        return None
    return VisitResult(visit, list(uow.register.tickets(visit_id=visit.id)))


def _visit_day(mine: _Mine, visited_on: str, today: date, bad: list[FieldViolation]) -> date:
    """The day the findings are judged by: the visit's, today when it is not given or
    `bad` (its refusal added to `bad` when it lies before the order was placed)."""
    if not visited_on or any(v.field == "visited_on" for v in bad):
        return today
    day = parse_day(visited_on, "visited_on")
    if not _before_order(mine, day, today):
        return day
    # said first, the findings then judged by today: their deadlines counted from a day
    # the visit cannot have (review 67 F1) would only confuse
    bad.append(FieldViolation("visited_on", messages.VISIT_BEFORE_ORDER))
    return today


def _visit_problems(
    visited_on: str, today: date, mobile: str, minutes: int
) -> list[FieldViolation]:
    """What is wrong with the visit's own fields (its day, the on-site mobile, the time
    on site), every one."""
    bad: list[FieldViolation] = []
    if visited_on:
        try:
            day = parse_day(visited_on, "visited_on")
        except ValidationError as exc:
            bad.extend(exc.violations)
        else:
            if day > today:  # rules would refuse its events (dated after today) for good
                bad.append(FieldViolation("visited_on", messages.VISIT_IN_FUTURE))
    if mobile and not PHONE.fullmatch(mobile):
        bad.append(FieldViolation("on_site_mobile", messages.SIGN_IN_BAD_PHONE))
    if not 0 <= minutes <= MAX_MINUTES:
        bad.append(FieldViolation("minutes_on_site", messages.VISIT_BAD_MINUTES))
    return bad


def _checked(
    mine: _Mine,
    ctx: BookingContext,
    findings: Sequence[FindingInput],
    days: tuple[date, date],
    firm_clauses_only: bool,
    unconfirmed: bool,
) -> list[tuple[FindingInput, date]]:
    """The findings checked, each with its deadline (`days`: the visit's and today, each
    deadline after both). A refusal also names the on-site mobile when it is
    `unconfirmed` and the firm has none (the form shows every field's error at once)."""
    try:
        if firm_clauses_only:
            return _check_firm_clauses(mine, ctx, findings, days)
        return check_findings(
            findings,
            days[0],
            lambda ref: ask_rules(lambda: ctx.rules.clause_severity(ref)),
            today=days[1],
        )
    except ValidationError as exc:
        if unconfirmed:
            raise ValidationError([*exc.violations, *_mobile_needed(mine)]) from exc
        raise


def _before_order(mine: _Mine, day: date, today: date) -> bool:
    """Whether `day` lies before the order was placed (that day in Asia/Shanghai; today,
    should the order's instant lie past the context's clock). The visit's transaction
    checks it again, under the order's lock."""
    with mine.uow:
        order = mine.order()
    return order is not None and day < min(in_shanghai(order.created_at).date(), today)


def _lacks_mobile(card: FirmCard | None) -> bool:
    return card is not None and not card.sign_in_phone


def _mobile_needed(mine: _Mine) -> list[FieldViolation]:
    """The on-site mobile's violation when the order's firm has no sign-in mobile (read
    to show it beside the findings' errors; the visit's transaction checks it again)."""
    with mine.uow:
        order = mine.order()
        card = mine.uow.register.firm(order.enterprise_id) if order is not None else None
    if not _lacks_mobile(card):
        return []
    return [FieldViolation("on_site_mobile", messages.VISIT_MOBILE_NEEDED)]


def _check_firm_clauses(
    mine: _Mine,
    ctx: BookingContext,
    findings: Sequence[FindingInput],
    days: tuple[date, date],
) -> list[tuple[FindingInput, date]]:
    """check_findings, each clause also one that applies to the order's firm."""
    with mine.uow:
        order = mine.order()
    if order is None:
        raise NotFound(messages.no_such("order", mine.order_id))
    catalogue = ask_rules(lambda: ctx.rules.applicable_clauses(order.enterprise_id))
    applies = {c.clause_ref: c.severity for c in catalogue}
    foreign = [
        FieldViolation(f"findings[{i}].clause_ref", messages.VISIT_CLAUSE_NOT_FOR_FIRM)
        for i, f in enumerate(findings)
        if f.clause_ref not in applies
    ]
    try:
        # a clause's own severity is the least a finding under it has; `foreign` names
        # the clauses that do not apply
        checked = check_findings(
            findings, days[0], lambda ref: applies.get(ref, Severity.GENERAL), today=days[1]
        )
    except ValidationError as exc:
        raise ValidationError([*foreign, *exc.violations]) from exc
    if foreign:
        raise ValidationError(foreign)
    return checked


def _ticket(
    uow: UnitOfWork,
    visit: Visit,
    enterprise_id: str,
    f: FindingInput,
    due: date,
    actor: str,
    ticket_id: str,
) -> Ticket:
    ticket = found_ticket(ticket_id, visit, enterprise_id, f, due, actor=actor, at=now())
    uow.register.add(ticket)
    if f.photos:
        # photos reference the ticket, and no relationship tells the unit of work so
        # (it would load the blobs): insert the ticket first
        uow.flush()
    for upload in f.photos:
        # read, written and let go one at a time: a visit's photos (up to
        # MAX_VISIT_PHOTO_BYTES) are never all in memory (review 48 N1)
        content = upload.read()
        uow.register.add_photo(photo_record(new_id("P"), ticket.id, content, "finding", now()))
        del content
    uow.register.add_event(hazard_found(ticket))
    return ticket
