"""Review 52: lateness judged fairly and kept (容错式指导), a failed recheck's new deadline
reported to rules, and its note required in one place (fake unit of work and rules
service)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.events import (
    HazardDueChanged,
    HazardVerified,
    RectificationOverdue,
)
from services.booking.domain.findings import FindingInput
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.tickets import TicketStatus, closes_late
from services.booking.service_layer import stats, tickets, visits
from services.common.errors import ValidationError
from tests.unit.booking.fakes import FakeUnitOfWork
from tests.unit.booking.test_tickets import DUE, ticket
from tests.unit.booking.test_use_cases import PNG, dispatched, finding

# ---------------------------------------------------------------- the rule, pure


@pytest.mark.parametrize(
    ("proof_on", "reported", "late"),
    [
        (DUE - timedelta(days=2), False, False),  # in time, however late the recheck
        (DUE, False, False),  # the deadline day itself is in time
        (DUE + timedelta(days=1), False, True),  # the accepted proof came late
        (DUE - timedelta(days=2), True, True),  # reported overdue once: late for good
        (None, False, False),
    ],
)
def test_a_closure_is_late_by_its_proof_or_an_overdue_report(
    proof_on: date | None, reported: bool, late: bool
) -> None:
    assert closes_late(proof_submitted_on=proof_on, due_on=DUE, reported_overdue=reported) is late


def test_a_proof_waiting_for_its_recheck_is_not_reported_overdue() -> None:
    after = DUE + timedelta(days=5)
    assert not ticket(TicketStatus.SUBMITTED).needs_overdue_report(after)
    assert ticket(TicketStatus.OPEN).needs_overdue_report(after)
    assert ticket(TicketStatus.SUBMITTED).is_overdue(after)  # still on the supervisors' list


# ---------------------------------------------------------------- the use cases


def visited(uow: FakeUnitOfWork, ctx: Any, token: str, *found: FindingInput) -> Any:
    """A MAJOR finding (due in 15 days) recorded today: its ticket."""
    order = dispatched(uow, ctx, token)
    return visits.record_visit(
        uow, ctx, order.id, list(found) or [finding()], visited_on="", minutes=60, actor="E1"
    ).tickets[0]


def prove(uow: FakeUnitOfWork, ctx: Any, token: str, ticket_id: str) -> None:
    tickets.submit_rectification(uow, ctx, ticket_id, FirmAccess(token), note="已整改", photo=PNG)


def recheck(uow: FakeUnitOfWork, ctx: Any, ticket_id: str, new_due: date | None = None) -> Any:
    failed = new_due is not None
    return tickets.recheck_ticket(
        uow, ctx, ticket_id, passed=not failed, note="仍未整改" if failed else "",
        new_due_on=new_due.isoformat() if new_due else "", actor="inspector",
    )  # fmt: skip


def events_of(uow: FakeUnitOfWork, kind: type) -> list[Any]:
    return [e for e in uow.register.events if isinstance(e, kind)]


def test_a_proof_in_time_rechecked_after_the_deadline_is_on_time(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    ctx.today.advance(13)  # two days before the deadline
    prove(uow, ctx, token, t.id)
    ctx.today.advance(4)  # the inspector comes two days after it
    assert tickets.sweep(uow, ctx) == 0 and not events_of(uow, RectificationOverdue)
    done = recheck(uow, ctx, t.id)
    assert not done.closed_late
    [verified] = events_of(uow, HazardVerified)
    assert verified.late is False
    assert stats.figures([], [done], ctx.today())["on_time_rate"] == 1.0


def test_a_missed_deadline_stays_missed_after_a_failed_recheck(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    ctx.today.advance(16)  # the day after the deadline, no proof
    assert tickets.sweep(uow, ctx) == 1
    prove(uow, ctx, token, t.id)
    recheck(uow, ctx, t.id, new_due=ctx.today() + timedelta(days=20))
    ctx.today.advance(5)
    prove(uow, ctx, token, t.id)  # in time for the new deadline
    done = recheck(uow, ctx, t.id)
    assert done.closed_late and events_of(uow, HazardVerified)[0].late is True
    assert stats.figures([], [done], ctx.today())["on_time_rate"] == 0.0


def test_a_late_proof_sent_before_the_sweep_ran_is_reported_overdue_with_it(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    ctx.today.advance(16)
    prove(uow, ctx, token, t.id)  # the sweep has not run today
    [overdue] = events_of(uow, RectificationOverdue)
    assert overdue.occurred_on == ctx.today()
    assert tickets.sweep(uow, ctx) == 0  # reported once
    recheck(uow, ctx, t.id, new_due=ctx.today() + timedelta(days=20))
    prove(uow, ctx, token, t.id)
    assert recheck(uow, ctx, t.id).closed_late  # the failed recheck washed nothing out


def test_a_failed_recheck_reports_its_new_deadline_each_time(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    for n, days in ((1, 10), (2, 10)):  # the same day twice: two events all the same
        prove(uow, ctx, token, t.id)
        new_due = ctx.today() + timedelta(days=days)
        failed = recheck(uow, ctx, t.id, new_due=new_due)
        assert failed.status == "open" and failed.history[-1].reason == "仍未整改"
        assert events_of(uow, HazardDueChanged)[-1] == HazardDueChanged(
            f"booking-{t.id}-due-{n}", t.enterprise_id, ctx.today(), t.id, due_on=new_due
        )
    assert len({e.event_id for e in uow.register.events}) == len(uow.register.events)


@pytest.mark.parametrize("note", ["", "  \u200b "])
def test_a_failed_recheck_needs_a_note_whoever_calls(
    uow: FakeUnitOfWork, ctx: Any, token: str, note: str
) -> None:
    t = visited(uow, ctx, token)
    prove(uow, ctx, token, t.id)
    with pytest.raises(ValidationError) as info:
        tickets.recheck_ticket(
            uow, ctx, t.id, passed=False, note=note, new_due_on="", actor="inspector"
        )
    assert {v.field: v.description for v in info.value.violations} == {
        "note": messages.RECHECK_NEEDS_NOTE,
        "new_due_on": messages.RECHECK_NEEDS_DEADLINE,
    }
    assert t.status == "submitted" and not events_of(uow, HazardDueChanged)
    passed = tickets.recheck_ticket(
        uow, ctx, t.id, passed=True, note="", new_due_on="", actor="inspector"
    )
    assert passed.status == "verified"  # a pass needs none


# ---------------------------------------------------------------- review 54 D1


def test_a_better_photo_after_the_deadline_keeps_an_in_time_proof_in_time(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """The page invites a clearer photo while the proof waits: sent after the deadline, it
    replaces the photo, not the day the firm's proof came in."""
    t = visited(uow, ctx, token)
    ctx.today.advance(13)  # two days before the deadline
    prove(uow, ctx, token, t.id)
    in_time = ctx.today()
    ctx.today.advance(4)  # after the deadline, still waiting for the recheck
    prove(uow, ctx, token, t.id)  # "a better photo"
    assert t.proof_submitted_on == in_time and t.proofs_this_round() == 2
    assert tickets.sweep(uow, ctx) == 0 and not events_of(uow, RectificationOverdue)
    done = recheck(uow, ctx, t.id)
    assert not done.closed_late and events_of(uow, HazardVerified)[0].late is False


def test_a_junk_first_proof_buys_no_time_the_next_round_is_judged_by_its_deadline(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    ctx.today.advance(1)
    prove(uow, ctx, token, t.id)  # in time, but junk
    new_due = ctx.today() + timedelta(days=10)
    assert recheck(uow, ctx, t.id, new_due=new_due).proof_submitted_on is None
    ctx.today.advance(12)  # the new deadline passed; the sweep has not run
    prove(uow, ctx, token, t.id)
    assert t.proof_submitted_on == ctx.today()
    assert recheck(uow, ctx, t.id).closed_late
