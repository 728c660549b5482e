"""Migration b0011 on SQLite and PostgreSQL (review 54 D3), on a b0010 register with
tickets in flight: the proof day is the round's first proof, an overdue mark the old
sweep left on a proof sent in time no longer makes the closure late (a deadline really
missed stays missed), a ticket reopened before b0010 sends rules its new deadline, every
ticket changed is audited, and a second run adds nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, text

from services.booking.adapters import migrate
from services.booking.adapters.orm import (
    audit_head,
    audit_log,
    firm_cards,
    orders,
    outbox,
    ticket_transitions,
    tickets,
    visits,
)
from services.booking.adapters.rules_client import event_json
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.events import HazardDueChanged
from services.common.audit import verify
from tests.integration.booking.test_booking_key_deferred import _order
from tests.integration.booking.test_ticket_proof_day_migration import AT, _ticket
from tests.support import uscc

FIRM = uscc(1)
DUE, NEW_DUE = date(2026, 7, 1), date(2026, 7, 20)


def _at(day: str, hour: int = 3) -> datetime:
    """`day` at `hour` UTC (11:00 in Shanghai at the default: the same day there)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def _move(ticket_id: str, at: str, to: str, before: str = "") -> dict[str, object]:
    before = before or {"submitted": "open", "open": "submitted", "verified": "submitted"}[to]
    return {
        "ticket_id": ticket_id,
        "at": _at(at),
        "actor": "firm",
        "from_status": before,
        "to_status": to,
    }


def _event(event_id: str, kind: str, at: str, **detail: Any) -> dict[str, object]:
    payload = {"event_id": event_id, "enterprise_id": FIRM, "kind": kind, **detail}
    return _outboxed(payload, at)


def _outboxed(payload: dict[str, Any], at: str) -> dict[str, object]:
    """The outbox row of an event (`payload`, in the rules client's form) written `at`."""
    return {
        "event_id": payload["event_id"],
        "kind": payload["kind"],
        "enterprise_id": FIRM,
        "payload": payload,
        "created_at": _at(at),
        "attempts": 0,
    }


def _found(ticket_id: str) -> dict[str, object]:
    hazard = {
        "hazard_id": ticket_id,
        "clause_ref": "GEN:ledger",
        "severity": "SEVERITY_GENERAL",
        "due_on": DUE.isoformat(),
    }
    return _event(
        f"booking-{ticket_id}-found",
        "EVENT_KIND_GENERAL_HAZARD_FOUND",
        "2026-06-01",
        occurred_on="2026-06-01",
        hazard=hazard,
    )


def _overdue(ticket_id: str, deadline: date, at: str) -> dict[str, object]:
    return _event(
        f"booking-{ticket_id}-overdue-{deadline}",
        "EVENT_KIND_RECTIFICATION_OVERDUE",
        at,
        occurred_on=at,
        overdue={"hazard_id": ticket_id},
    )


def _due_changed(ticket_id: str, n: int, on: str) -> dict[str, Any]:
    event = HazardDueChanged(
        f"booking-{ticket_id}-due-{n}", FIRM, date.fromisoformat(on), ticket_id, due_on=NEW_DUE
    )
    return event_json(event)


# (status, due_on, overdue_reported_for, proof_submitted_on as b0010 left it), moves, reports
CASES: dict[str, Any] = {
    # the slow inspector: proof on 06-10, reported by the old sweep on 07-02 while it
    # waited, a better photo on 07-05
    "A": (
        ("submitted", DUE, DUE, date(2026, 7, 5)),
        [("2026-06-10", "submitted"), ("2026-07-05", "submitted")],
        [(DUE, "2026-07-02")],
    ),
    # the proof came late (07-03), reported by the old sweep on 07-04 while it waited
    "B": (
        ("submitted", DUE, DUE, date(2026, 7, 3)),
        [("2026-07-03", "submitted")],
        [(DUE, "2026-07-04")],
    ),
    # reported while OPEN on 07-02, the proof on 07-03
    "C": (
        ("submitted", DUE, DUE, date(2026, 7, 3)),
        [("2026-07-03", "submitted")],
        [(DUE, "2026-07-02")],
    ),
    # reopened on 06-20 by a failed recheck before b0010: rules still has 07-01
    "D": (
        ("open", NEW_DUE, None, None),
        [("2026-06-10", "submitted"), ("2026-06-20", "open")],
        [],
    ),
    # in time (06-10), reported by the old sweep on 07-02, reopened on 07-05
    "E": (
        ("open", NEW_DUE, DUE, date(2026, 6, 10)),
        [("2026-06-10", "submitted"), ("2026-07-05", "open")],
        [(DUE, "2026-07-02")],
    ),
    # missed 07-01 (reported 07-02 while OPEN); reopened 07-05; in time for 07-20 (proof
    # 07-10) but reported by the old sweep on 07-21
    "F": (
        ("submitted", NEW_DUE, NEW_DUE, date(2026, 7, 10)),
        [("2026-07-03", "submitted"), ("2026-07-05", "open"), ("2026-07-10", "submitted")],
        [(DUE, "2026-07-02"), (NEW_DUE, "2026-07-21")],
    ),
    # reopened after b0010: its HAZARD_DUE_CHANGED is in the outbox already
    "G": (
        ("open", NEW_DUE, None, None),
        [("2026-06-10", "submitted"), ("2026-06-20", "open")],
        [],
    ),
    # verified: judged already, left alone
    "H": (
        ("verified", DUE, DUE, date(2026, 6, 10)),
        [("2026-06-10", "submitted"), ("2026-07-03", "verified")],
        [(DUE, "2026-07-02")],
    ),
}


def _b0010_register(engine: Engine) -> None:
    migrate.upgrade(engine, "b0010")
    with engine.begin() as conn:
        conn.execute(insert(firm_cards).values(enterprise_id=FIRM, name="企业", region="x"))
        conn.execute(insert(orders).values(_order("A")))
        visit = {"id": "V", "order_id": "A", "expert_id": "E1", "visited_on": AT.date()}
        conn.execute(insert(visits).values(**visit, minutes_on_site=60, created_at=AT))
        for ticket_id, ((status, due, reported, proof_day), moves, reports) in CASES.items():
            row = _ticket(ticket_id, status) | {"due_on": due}
            row |= {"overdue_reported_for": reported, "proof_submitted_on": proof_day}
            conn.execute(insert(tickets).values(row))
            found = _move(ticket_id, "2026-06-01", "open", before="-") | {"from_status": ""}
            history = [found, *(_move(ticket_id, *m) for m in moves)]
            conn.execute(insert(ticket_transitions), history)
            conn.execute(insert(outbox).values(_found(ticket_id)))
            for deadline, at in reports:
                conn.execute(insert(outbox).values(_overdue(ticket_id, deadline, at)))
        due_1 = _due_changed("G", 1, "2026-06-20")
        conn.execute(insert(outbox).values(_outboxed(due_1, "2026-06-20")))


def _state(engine: Engine) -> tuple[dict[str, Any], list[Any], list[Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(tickets.c.id, tickets.c.proof_submitted_on, tickets.c.overdue_reported_for)
        ).all()
        events = conn.execute(select(outbox.c.event_id, outbox.c.payload).order_by(outbox.c.id))
        trail = conn.execute(
            select(audit_log.c.entity_id, audit_log.c.before, audit_log.c.after)
            .where(audit_log.c.caller == "migration b0011")
            .order_by(audit_log.c.entity_id)
        ).all()
        assert verify(conn, audit_log, audit_head).ok
        return (
            {r.id: (r.proof_submitted_on, r.overdue_reported_for) for r in rows},
            list(events),
            list(trail),
        )


def test_b0011_corrects_the_tickets_in_flight(engine: Engine) -> None:
    _b0010_register(engine)
    with engine.connect() as conn:
        before = len(conn.execute(select(outbox.c.id)).all())
    migrate.upgrade(engine)
    days, events, trail = _state(engine)
    assert days == {
        "A": (date(2026, 6, 10), None),  # the first proof; the old sweep's mark cleared
        "B": (date(2026, 7, 3), DUE),  # the proof came late: late it stays
        "C": (date(2026, 7, 3), DUE),  # reported while OPEN
        "D": (None, None),
        "E": (None, None),  # in time in its first round: nothing missed
        "F": (date(2026, 7, 10), NEW_DUE),  # its first deadline was missed
        "G": (None, None),
        "H": (date(2026, 6, 10), DUE),
    }
    assert [tuple(e) for e in events[before:]] == [
        (f"booking-{t}-due-1", _due_changed(t, 1, on))
        for t, on in (("D", "2026-06-20"), ("E", "2026-07-05"), ("F", "2026-07-05"))
    ]
    assert [tuple(e) for e in trail] == [
        ("A", {"proof_submitted_on": "2026-07-05", "overdue_reported_for": "2026-07-01"},
         {"proof_submitted_on": "2026-06-10", "overdue_reported_for": None}),
        ("E", {"proof_submitted_on": "2026-06-10", "overdue_reported_for": "2026-07-01"},
         {"proof_submitted_on": None, "overdue_reported_for": None}),
    ]  # fmt: skip
    uow = SqlUnitOfWork(engine)
    with uow:
        late = {t: uow.register.ticket(t).verified_late() for t in "ABCF"}  # type: ignore[union-attr]
    assert late == {"A": False, "B": True, "C": True, "F": True}
    # a second run (the register set back to b0010, its data as b0011 left it) adds nothing
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'b0010'"))
    migrate.upgrade(engine, "b0011")  # (the later revisions' schema changes are there)
    assert _state(engine) == (days, events, trail)


def test_b0011_on_a_register_without_tickets(engine: Engine) -> None:
    migrate.upgrade(engine, "b0010")
    migrate.upgrade(engine, "b0011")
    assert migrate.current_revision(engine) == "b0011"
