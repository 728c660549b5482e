"""Ticket deadlines and supervision (督单) at date edges."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.booking.domain.tickets import (
    REMINDER_DAYS,
    FirmNotice,
    Ticket,
    TicketStatus,
    default_due,
)
from services.common.vocabulary import Severity
from tests.unit.booking.test_order_states import make_ticket

TODAY = date(2026, 6, 1)
DUE = date(2026, 6, 10)
UNVERIFIED = [TicketStatus.OPEN, TicketStatus.SUBMITTED]


def ticket(
    status: TicketStatus = TicketStatus.OPEN, due_on: date = DUE, reported_for: date | None = None
) -> Ticket:
    """test_order_states' ticket, a major one found on 2026-05-26 and due on `due_on`."""
    return replace(
        make_ticket(status),
        severity="major",
        description="d",
        found_on=date(2026, 5, 26),
        due_on=due_on,
        created_at=datetime(2026, 5, 26, tzinfo=UTC),
        overdue_reported_for=reported_for,
    )


@pytest.mark.parametrize(
    ("severity", "found_on", "due"),
    [
        ("major", TODAY, date(2026, 6, 16)),
        ("general", TODAY, date(2026, 7, 1)),
        (Severity.MAJOR, TODAY, date(2026, 6, 16)),  # the rules service's enum
        (Severity.GENERAL, TODAY, date(2026, 7, 1)),
        ("major", date(2026, 12, 20), date(2027, 1, 4)),  # across a year end
        ("general", date(2028, 2, 1), date(2028, 3, 2)),  # leap February
    ],
)
def test_default_due(severity: str, found_on: date, due: date) -> None:
    assert default_due(severity, found_on) == due


def test_reminder_window_is_three_days() -> None:
    assert REMINDER_DAYS == 3


@pytest.mark.parametrize("status", UNVERIFIED)
@pytest.mark.parametrize(
    ("today", "overdue"),
    [
        (DUE - timedelta(days=1), False),
        (DUE, False),  # the deadline day itself is still on time
        (DUE + timedelta(days=1), True),
        (DUE + timedelta(days=100), True),
    ],
)
def test_is_overdue_at_edges(status: TicketStatus, today: date, overdue: bool) -> None:
    assert ticket(status).is_overdue(today) is overdue


@pytest.mark.parametrize("today", [DUE, DUE + timedelta(days=1), DUE + timedelta(days=365)])
def test_verified_is_never_overdue(today: date) -> None:
    t = ticket(TicketStatus.VERIFIED)
    assert not t.is_overdue(today)
    assert not t.needs_overdue_report(today)
    assert not t.needs_reminder(today)


@pytest.mark.parametrize("status", UNVERIFIED)
@pytest.mark.parametrize(
    ("days_before_due", "remind"),
    [
        (5, False),
        (4, False),
        (3, True),  # first reminder day: 3 days before the deadline (inclusive)
        (2, True),
        (1, True),
        (0, True),  # the deadline day (inclusive)
        (-1, False),  # overdue: that is the overdue list, not a reminder
    ],
)
def test_needs_reminder_at_edges(status: TicketStatus, days_before_due: int, remind: bool) -> None:
    today = DUE - timedelta(days=days_before_due)
    assert ticket(status).needs_reminder(today) is remind


@pytest.mark.parametrize(
    ("today", "reported_for", "report"),
    [
        (DUE, None, False),  # not overdue yet
        (DUE + timedelta(days=1), None, True),  # first day overdue: report
        (DUE + timedelta(days=1), DUE, False),  # already reported for this deadline
        (DUE + timedelta(days=30), DUE, False),  # ... and never again
        # recheck failed, a new deadline: an earlier report does not count for it
        (DUE + timedelta(days=1), DUE - timedelta(days=20), True),
    ],
)
def test_needs_overdue_report_once_per_due_date(
    today: date, reported_for: date | None, report: bool
) -> None:
    assert ticket(due_on=DUE, reported_for=reported_for).needs_overdue_report(today) is report


def test_overdue_report_after_new_deadline_sweep_sequence() -> None:
    t = ticket()
    day = DUE + timedelta(days=1)
    assert t.needs_overdue_report(day)
    t.overdue_reported_for = t.due_on  # the sweep reports it
    assert not t.needs_overdue_report(day)
    assert t.is_overdue(day)  # still on the overdue list
    t.due_on = day + timedelta(days=15)  # recheck failed: new deadline
    assert not t.needs_overdue_report(day)
    assert t.needs_overdue_report(t.due_on + timedelta(days=1))


@pytest.mark.parametrize(
    ("status", "today", "notice"),
    [
        (TicketStatus.OPEN, DUE - timedelta(days=10), FirmNotice.NONE),
        (TicketStatus.OPEN, DUE, FirmNotice.DUE_SOON),
        (TicketStatus.OPEN, DUE + timedelta(days=1), FirmNotice.OVERDUE),
        # the proof is in: the firm waits for the recheck, late or not
        (TicketStatus.SUBMITTED, DUE - timedelta(days=10), FirmNotice.WAITING),
        (TicketStatus.SUBMITTED, DUE, FirmNotice.WAITING),
        (TicketStatus.SUBMITTED, DUE + timedelta(days=1), FirmNotice.WAITING),
        (TicketStatus.VERIFIED, DUE + timedelta(days=1), FirmNotice.NONE),
    ],
)
def test_what_the_firm_reads_of_a_ticket(
    status: TicketStatus, today: date, notice: FirmNotice
) -> None:
    t = ticket(status)
    assert t.firm_notice(today) is notice
    if status == TicketStatus.SUBMITTED and today > DUE:
        assert t.is_overdue(today)  # still overdue to the supervisors
