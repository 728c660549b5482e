"""tickets in flight judged by their round's first proof; old overdue marks on proofs in
time cleared; the deadline of a ticket reopened before b0010 sent to rules

Revision ID: b0011
Revises: b0010
Create Date: 2026-12-02

Data only, for the tickets not yet VERIFIED (a verified one was judged and its
HAZARD_VERIFIED sent). Each step reads what is stored and writes what the current code
would have, so a second run changes nothing (review 54 D3):

1. `proof_submitted_on` of a SUBMITTED ticket: the day (Asia/Shanghai) it entered
   SUBMITTED in its current round, its first proof since it was last opened (b0010 and
   the code before review 54 kept the latest, which a better photo moved); None while
   OPEN (a failed recheck starts a new round).
2. `overdue_reported_for`, which makes a closure late once set (domain/tickets.py
   `closes_late`), is cleared when none of the ticket's RECTIFICATION_OVERDUE reports
   (the outbox keeps every event) was of a deadline missed: the sweep before b0010 also
   reported proofs that were in on time and waited for the inspector. A report counts as
   missed when the round it was made in had no proof by the deadline it names (the
   round's first proof came after that day, or none had come when it was reported).
   The current code reports only OPEN tickets, so from now on a mark set means exactly
   that, and no second column is needed. A mark with no report in the outbox is kept.
   Clearing it cannot make the sweep report again: the ticket waits for its recheck, or
   its deadline has since moved past the one reported.
3. A ticket reopened by a failed recheck before b0010 never sent HAZARD_DUE_CHANGED, so
   rules kept its first deadline. One is queued for each OPEN or SUBMITTED ticket whose
   `due_on` differs from the last deadline the outbox told rules (its HAZARD_FOUND, then
   its HAZARD_DUE_CHANGED events), with the id and day of the failed recheck that set it
   (`booking-<ticket>-due-<n>`, n counting the ticket's failed rechecks, as
   domain/events.py `due_changed` names them); an id already in the outbox is not
   written again.
4. Every ticket changed gets an audit entry on its firm's chain (caller
   `migration b0011`), with the fields before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

from services.common.audit import append, audit_tables
from services.common.instants import as_utc, in_shanghai

revision = "b0011"
down_revision = "b0010"
branch_labels = None
depends_on = None

CALLER = "migration b0011"
IN_FLIGHT = ("open", "submitted")
FOUND = ("EVENT_KIND_GENERAL_HAZARD_FOUND", "EVENT_KIND_MAJOR_HAZARD_FOUND")
DUE_CHANGED = "EVENT_KIND_HAZARD_DUE_CHANGED"
OVERDUE = "EVENT_KIND_RECTIFICATION_OVERDUE"

TICKETS = sa.table(
    "tickets",
    sa.column("id", sa.String),
    sa.column("enterprise_id", sa.String),
    sa.column("status", sa.String),
    sa.column("due_on", sa.Date),
    sa.column("overdue_reported_for", sa.Date),
    sa.column("proof_submitted_on", sa.Date),
)
MOVES = sa.table(
    "ticket_transitions",
    sa.column("id", sa.Integer),
    sa.column("ticket_id", sa.String),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("from_status", sa.String),
    sa.column("to_status", sa.String),
)
OUTBOX = sa.table(
    "outbox",
    sa.column("id", sa.Integer),
    sa.column("event_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("enterprise_id", sa.String),
    sa.column("payload", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("attempts", sa.Integer),
    sa.column("last_error", sa.Text),
)


# no @dataclass: Alembic loads this module outside sys.modules, where a dataclass with
# postponed annotations cannot be made


class Move(NamedTuple):
    at: datetime  # UTC
    from_status: str
    to_status: str


class Told:
    """What the outbox holds of one ticket: the deadline rules was last told, the
    overdue reports (the deadline each names, when it was made) and the ids of its
    HAZARD_DUE_CHANGED events."""

    def __init__(self) -> None:
        self.due_on: date | None = None
        self.overdue: list[tuple[date, datetime]] = []
        self.due_ids: set[str] = set()


def upgrade() -> None:
    bind = op.get_bind()
    in_flight = bind.execute(
        sa.select(TICKETS).where(TICKETS.c.status.in_(IN_FLIGHT)).order_by(TICKETS.c.id)
    ).all()
    if not in_flight:
        return
    moves = _moves(bind)
    told = _told(bind)
    entries: list[dict[str, Any]] = []
    for ticket in in_flight:
        history = moves.get(ticket.id, [])
        known = told.get(ticket.id, Told())
        entry = _corrected(bind, ticket, history, known)
        if entry is not None:
            entries.append(entry)
        _queue_due_changed(bind, ticket, history, known)
    if entries:
        log, head = audit_tables(sa.MetaData(), chains=True, chain_length=80)
        append(bind, log, head, entries, lock=bind.dialect.name != "sqlite")


def downgrade() -> None:
    """Nothing to undo: the code of b0010 reads the corrected rows as they are."""


def _instant(value: Any) -> datetime:
    """A stored instant in UTC (SQLite may answer text, and naive)."""
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _moves(bind: sa.Connection) -> dict[str, list[Move]]:
    """The history of every ticket in flight, in the order it was written (a ticket's
    moves take turns under its row lock)."""
    query = (
        sa.select(MOVES.c.ticket_id, MOVES.c.at, MOVES.c.from_status, MOVES.c.to_status)
        .join(TICKETS, TICKETS.c.id == MOVES.c.ticket_id)
        .where(TICKETS.c.status.in_(IN_FLIGHT))
        .order_by(MOVES.c.ticket_id, MOVES.c.id)
    )
    found: dict[str, list[Move]] = {}
    for row in bind.execute(query):
        move = Move(_instant(row.at), row.from_status, row.to_status)
        found.setdefault(row.ticket_id, []).append(move)
    return found


def _told(bind: sa.Connection) -> dict[str, Told]:
    """The outbox's findings, new deadlines and overdue reports, by ticket (hazard id)."""
    query = (
        sa.select(OUTBOX.c.event_id, OUTBOX.c.kind, OUTBOX.c.payload, OUTBOX.c.created_at)
        .where(OUTBOX.c.kind.in_((*FOUND, DUE_CHANGED, OVERDUE)))
        .order_by(OUTBOX.c.id)
    )
    told: dict[str, Told] = {}
    for row in bind.execute(query):
        if row.kind in FOUND:
            detail = row.payload["hazard"]
            told.setdefault(detail["hazard_id"], Told()).due_on = date.fromisoformat(
                detail["due_on"]
            )
        elif row.kind == DUE_CHANGED:
            detail = row.payload["due_change"]
            known = told.setdefault(detail["hazard_id"], Told())
            known.due_on = date.fromisoformat(detail["due_on"])
            known.due_ids.add(row.event_id)
        else:
            known = told.setdefault(row.payload["overdue"]["hazard_id"], Told())
            deadline = date.fromisoformat(row.event_id.rsplit("-overdue-", 1)[1])
            known.overdue.append((deadline, _instant(row.created_at)))
    return told


def round_proof_day(history: Sequence[Move]) -> date | None:
    """The day (Asia/Shanghai) of the first proof since the ticket was last opened."""
    start = _round_start(history, None)
    proof = next((m for m in history[start:] if m.to_status == "submitted"), None)
    return in_shanghai(proof.at).date() if proof is not None else None


def _round_start(history: Sequence[Move], until: datetime | None) -> int:
    """Index of the first move after the ticket was last opened (by `until`, if given)."""
    start = 0
    for n, move in enumerate(history):
        if until is not None and move.at > until:
            break
        if move.to_status == "open":
            start = n + 1
    return start


def missed(history: Sequence[Move], deadline: date, reported_at: datetime) -> bool:
    """Whether an overdue report of `deadline`, made at `reported_at`, was of a deadline
    missed: the round it was made in had no proof by then, or its first came after the
    deadline."""
    start = _round_start(history, reported_at)
    proof = next((m for m in history[start:] if m.to_status == "submitted"), None)
    if proof is None or proof.at > reported_at:
        return True
    return in_shanghai(proof.at).date() > deadline


def _corrected(
    bind: sa.Connection, ticket: Any, history: Sequence[Move], known: Told
) -> dict[str, Any] | None:
    """Steps 1 and 2 for one ticket: its row updated, and its audit entry (None: no
    change)."""
    now: dict[str, date | None] = {}
    proof_day = ticket.proof_submitted_on
    if ticket.status == "open":
        proof_day = None
    elif (first := round_proof_day(history)) is not None:
        proof_day = first
    if proof_day != ticket.proof_submitted_on:
        now["proof_submitted_on"] = proof_day
    reports = known.overdue
    if (
        ticket.overdue_reported_for is not None
        and reports
        and not any(missed(history, deadline, at) for deadline, at in reports)
    ):
        now["overdue_reported_for"] = None
    if not now:
        return None
    bind.execute(sa.update(TICKETS).where(TICKETS.c.id == ticket.id).values(**now))
    return {
        "caller": CALLER,
        "action": "update",
        "entity": "ticket",
        "entity_id": ticket.id,
        "before": {name: _plain(getattr(ticket, name)) for name in now},
        "after": {name: _plain(value) for name, value in now.items()},
        "chain": "firm:" + ticket.enterprise_id,
    }


def _plain(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _queue_due_changed(
    bind: sa.Connection, ticket: Any, history: Sequence[Move], known: Told
) -> None:
    """Step 3 for one ticket: HAZARD_DUE_CHANGED with its deadline, when rules was last
    told another one and a failed recheck set it."""
    failed = [m for m in history if m.from_status == "submitted" and m.to_status == "open"]
    if not failed or known.due_on is None or known.due_on == ticket.due_on:
        return
    event_id = f"booking-{ticket.id}-due-{len(failed)}"
    if event_id in known.due_ids:
        return
    payload = {
        "event_id": event_id,
        "enterprise_id": ticket.enterprise_id,
        "kind": DUE_CHANGED,
        "occurred_on": in_shanghai(failed[-1].at).date().isoformat(),
        "due_change": {"hazard_id": ticket.id, "due_on": ticket.due_on.isoformat()},
    }
    bind.execute(
        sa.insert(OUTBOX).values(
            event_id=event_id,
            kind=DUE_CHANGED,
            enterprise_id=ticket.enterprise_id,
            payload=payload,
            created_at=datetime.now(UTC),
            attempts=0,
            last_error="",
        )
    )
