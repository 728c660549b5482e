"""Rectification tickets (整改单), 发现→整改→复查, as one transition table.

Overdue is not a state: a ticket past its deadline and not VERIFIED is overdue whatever
its state (the supervisors' list); the sweep reports one still OPEN once per deadline
(`Ticket.needs_overdue_report`). The firm's own pages say it one way
(`Ticket.firm_notice`): a proof waiting for its recheck is that, not overdue. A closure is
late by `closes_late`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from services.common.errors import FieldViolation, PreconditionFailed, ValidationError
from services.common.state_machine import StateMachine, Tracked, Transition
from services.common.values import invisible, written_day
from services.common.vocabulary import Severity

from . import messages

DEFAULT_DAYS = {Severity.MAJOR: 15, Severity.GENERAL: 30}
REMINDER_DAYS = 3


class TicketStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"
    VERIFIED = "verified"


class FirmNotice(StrEnum):
    """What the firm's pages say of a ticket (its page's banner, the lists' badges and
    the landing page's counts)."""

    WAITING = "waiting"  # the firm's proof is in: the recheck is to come
    OVERDUE = "overdue"
    DUE_SOON = "due_soon"  # within REMINDER_DAYS of its deadline
    NONE = "none"


class TicketAction(StrEnum):
    SUBMIT_PROOF = "submit_proof"
    RECHECK_PASS = "recheck_pass"
    RECHECK_FAIL = "recheck_fail"


TICKET_TRANSITIONS: dict[tuple[TicketStatus, TicketAction], TicketStatus] = {
    (TicketStatus.OPEN, TicketAction.SUBMIT_PROOF): TicketStatus.SUBMITTED,
    (TicketStatus.SUBMITTED, TicketAction.SUBMIT_PROOF): TicketStatus.SUBMITTED,  # a better photo
    (TicketStatus.SUBMITTED, TicketAction.RECHECK_PASS): TicketStatus.VERIFIED,
    (TicketStatus.SUBMITTED, TicketAction.RECHECK_FAIL): TicketStatus.OPEN,
}


TICKET_MACHINE = StateMachine(
    "a ticket",
    TicketStatus,
    TICKET_TRANSITIONS,
    messages.move_refusal(
        messages.TICKET_RECORD, messages.TICKET_STATUS_NAMES, messages.TICKET_ACTION_NAMES
    ),
)


def next_ticket_status(current: TicketStatus, action: TicketAction) -> TicketStatus:
    return TICKET_MACHINE.next(current, action)


MAX_DEADLINE_DAYS = 365  # a deadline (a visit's, a failed recheck's) at most this far ahead


def deadline_too_far(due: date, start: date) -> bool:
    """A deadline more than MAX_DEADLINE_DAYS after `start` (the visit, or today): a
    hazard parked where it never becomes overdue nor reaches the supervisors' list."""
    return due > start + timedelta(days=MAX_DEADLINE_DAYS)


def too_far(start: date) -> str:
    """The refusal of a deadline past the horizon (Chinese, for the pages and gRPC)."""
    last = start + timedelta(days=MAX_DEADLINE_DAYS)
    return messages.DEADLINE_TOO_FAR.format(days=MAX_DEADLINE_DAYS, last=messages.a_day(last))


def beyond(text: str, start: date) -> bool:
    """`text` is a day written YYYY-MM-DD (if not one of record, e.g. 9999-12-31) after
    `start`."""
    day = written_day(text)
    return day is not None and day > start


def default_due(severity: str, found_on: date) -> date:
    """15 days for a MAJOR finding, 30 for a GENERAL one (docs/booking.md)."""
    return found_on + timedelta(days=DEFAULT_DAYS[Severity(severity)])


def closes_late(*, proof_submitted_on: date | None, due_on: date, reported_overdue: bool) -> bool:
    """Whether passing a ticket's recheck closes it late (HAZARD_VERIFIED `late`, which
    keeps the firm off the white list for 12 months, and a miss in the on-time rate): the
    proof of this round came after the deadline in force (`proof_submitted_on`: the day
    the ticket entered SUBMITTED, its first proof since it was opened; `due_on`: only a
    failed recheck changes a deadline, and it reopens the ticket, so that proof was sent
    under this one), or the ticket was ever reported overdue (`reported_overdue`:
    RECTIFICATION_OVERDUE sent, for this deadline or an earlier one; only a ticket still
    OPEN past its deadline is reported, `Ticket.needs_overdue_report`).

    Why (容错式指导, docs/booking.md "Supervision"): the firm is judged by when it did its
    part, not by when the authority got round to the recheck, so a proof sent in time stays
    in time however slow the inspector; and a deadline missed stays missed, so failing a
    recheck (and getting a new deadline) does not wash out lateness already reported.
    A later upload while the proof waits ("a better photo", which the ticket page
    invites) does not move the day: helping the inspector must not cost the firm 12
    months. A junk first proof buys no time either: the inspector fails it, the ticket
    reopens with a new deadline, and the next round's first proof is judged by that."""
    if reported_overdue:
        return True
    return proof_submitted_on is not None and proof_submitted_on > due_on


def recheck_note_problem(passed: bool, note: str) -> str | None:
    """Why a recheck's note cannot be taken (Chinese), or None: a failed recheck keeps its
    reason (docs/booking.md: "back to OPEN with a new deadline, the reason kept"), so the
    firm reads what is still wrong; a pass needs none."""
    if not passed and invisible(note):
        return messages.RECHECK_NEEDS_NOTE
    return None


# Why a recheck was refused, for callers to tell apart (google.rpc.ErrorInfo `reason`
# with FAILED_PRECONDITION, domain ERROR_DOMAIN; stable, docs/booking.md): the ticket is
# not waiting for a recheck (rechecked already, or no proof since it was reopened), or the
# firm sent another proof since the one the conclusion is about
NOT_WAITING = "TICKET_NOT_SUBMITTED"
PROOF_CHANGED = "PROOF_CHANGED"
ERROR_DOMAIN = "booking.v1"


class RecheckRefused(PreconditionFailed):
    """A recheck that cannot be saved, nothing changed: `reason` is NOT_WAITING or
    PROOF_CHANGED; `metadata` names the ticket, its status and the proof it holds now
    (`proof_number`), so a caller can read it again and show the new proof."""

    domain = ERROR_DOMAIN

    def __init__(self, message: str, reason: str, ticket: Ticket) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = {
            "ticket_id": ticket.id,
            "status": ticket.status,
            "proof_number": str(ticket.proof_number()),
        }


def check_proof_seen(value: int | None, field: str = "proof_number") -> int | None:
    """The proof a recheck's conclusion is about (`Ticket.proof_number` as the person saw
    it), checked: None when not given (not checked, as before the field existed); a
    number below 1 names no proof (INVALID_ARGUMENT naming `field`)."""
    if value is not None and value < 1:
        raise ValidationError([FieldViolation(field, messages.RECHECK_BAD_PROOF_NUMBER)])
    return value


@dataclass(kw_only=True)
class TicketTransition(Transition):
    ticket_id: str


@dataclass
class Ticket(Tracked[TicketAction, TicketTransition]):
    id: str
    order_id: str
    visit_id: str
    enterprise_id: str
    clause_ref: str
    severity: str
    description: str
    found_on: date
    due_on: date
    status: str
    expert_id: str
    created_at: datetime
    proof_note: str = ""
    proof_photo_id: str | None = None
    verified_on: date | None = None
    closed_late: bool = False
    overdue_reported_for: date | None = None
    # the day (Asia/Shanghai) the ticket entered SUBMITTED in this round: its first proof
    # since it was opened (a better photo later does not move it; `closes_late`); None
    # while OPEN
    proof_submitted_on: date | None = None
    history: list[TicketTransition] = field(default_factory=list)

    machine: ClassVar[StateMachine[Any, Any]] = TICKET_MACHINE

    def transition(self, **moved: Any) -> TicketTransition:
        return TicketTransition(ticket_id=self.id, **moved)

    def proofs_this_round(self) -> int:
        """Proofs sent since the ticket was last opened (the visit, or a failed recheck):
        those the next recheck is to look at."""
        sent = 0
        for move in reversed(self.history):
            if move.to_status == TicketStatus.OPEN:
                break
            if move.to_status == TicketStatus.SUBMITTED:
                sent += 1
        return sent

    def proof_number(self) -> int:
        """The proof the ticket holds, by its number: every proof the firm sent counts,
        a better photo while one waits and a new round's first proof alike (1 for the
        first; 0 before any). A recheck's conclusion is about one proof, the one the person
        looked at: the staff form and RecheckTicket's `proof_number` carry it
        (`check_recheck`)."""
        return sum(1 for move in self.history if move.to_status == TicketStatus.SUBMITTED)

    def check_recheck(self, passed: bool, seen: int | None) -> None:
        """Refuse a recheck that cannot be saved (RecheckRefused, nothing changed): the
        ticket is not waiting for one (NOT_WAITING: rechecked already, by another tab or
        person, or reopened and no new proof since), or `seen`, the proof the conclusion is
        about, is not the one the ticket holds now (PROOF_CHANGED: the firm sent another
        since the person looked, a better photo or, after a failed recheck, a new round's
        proof, which the person never saw). `seen` None: not checked (a caller that does
        not send it, as before)."""
        action = TicketAction.RECHECK_PASS if passed else TicketAction.RECHECK_FAIL
        try:
            self.machine.next(TicketStatus(self.status), action)
        except PreconditionFailed as exc:
            raise RecheckRefused(exc.message, NOT_WAITING, self) from None
        now = self.proof_number()
        if seen is not None and seen != now:
            said = messages.RECHECK_PROOF_CHANGED_API.format(seen=seen, now=now)
            raise RecheckRefused(said, PROOF_CHANGED, self)

    def is_overdue(self, today: date) -> bool:
        return self.status != TicketStatus.VERIFIED and today > self.due_on

    def needs_reminder(self, today: date) -> bool:
        return self.status != TicketStatus.VERIFIED and today <= self.due_on <= today + timedelta(
            days=REMINDER_DAYS
        )

    def firm_notice(self, today: date) -> FirmNotice:
        """What the firm reads of the ticket today, one rule for all its pages: a proof
        submitted waits for the inspector's recheck, neither overdue nor due soon to the
        firm (it can do no more than wait), though still overdue to the supervisors
        (`is_overdue`: the overdue list, the staff queue; the sweep reports it not)."""
        if self.status == TicketStatus.SUBMITTED:
            return FirmNotice.WAITING
        if self.is_overdue(today):
            return FirmNotice.OVERDUE
        if self.needs_reminder(today):
            return FirmNotice.DUE_SOON
        return FirmNotice.NONE

    def needs_overdue_report(self, today: date) -> bool:
        """OPEN past its deadline and not yet reported for it (RECTIFICATION_OVERDUE, once
        per deadline). A SUBMITTED ticket is not: its proof is in and waits for the
        authority's recheck, and the firm is not reported for the authority's delay."""
        return (
            self.status == TicketStatus.OPEN
            and self.is_overdue(today)
            and self.overdue_reported_for != self.due_on
        )

    def verified_late(self) -> bool:
        """`closes_late` of this ticket, as its recheck passes now."""
        return closes_late(
            proof_submitted_on=self.proof_submitted_on,
            due_on=self.due_on,
            reported_overdue=self.overdue_reported_for is not None,
        )
