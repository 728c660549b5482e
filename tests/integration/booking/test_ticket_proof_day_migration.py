"""Migration b0010 on SQLite and PostgreSQL: a ticket waiting for its recheck gets the day
(Asia/Shanghai) of its latest proof from its history, so its closure is judged by it."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, insert, select

from services.booking.adapters import migrate
from services.booking.adapters.orm import firm_cards, orders, ticket_transitions, tickets, visits
from tests.integration.booking.test_booking_key_deferred import _order
from tests.support import uscc

AT = datetime(2026, 6, 1, tzinfo=UTC)


def _ticket(ticket_id: str, status: str) -> dict[str, object]:
    return {
        "id": ticket_id,
        "order_id": "A",
        "visit_id": "V",
        "enterprise_id": uscc(1),
        "clause_ref": "GEN:ledger",
        "severity": "general",
        "description": "无台账",
        "found_on": AT.date(),
        "due_on": date(2026, 7, 1),
        "status": status,
        "expert_id": "E1",
        "created_at": AT,
    }


def _moved(ticket_id: str, to: str, at: datetime) -> dict[str, object]:
    return {
        "ticket_id": ticket_id,
        "at": at,
        "actor": "firm",
        "from_status": "open",
        "to_status": to,
    }


def test_b0010_gives_a_waiting_ticket_the_day_of_its_latest_proof(engine: Engine) -> None:
    migrate.upgrade(engine, "b0009")
    with engine.begin() as conn:
        conn.execute(insert(firm_cards).values(enterprise_id=uscc(1), name="企业", region="x"))
        conn.execute(insert(orders).values(_order("A")))
        visit = {"id": "V", "order_id": "A", "expert_id": "E1", "visited_on": AT.date()}
        conn.execute(insert(visits).values(**visit, minutes_on_site=60, created_at=AT))
        for ticket_id, status in (("T1", "submitted"), ("T2", "open"), ("T3", "verified")):
            conn.execute(insert(tickets).values(_ticket(ticket_id, status)))
        conn.execute(
            insert(ticket_transitions),
            [
                _moved("T1", "submitted", datetime(2026, 6, 20, 3, tzinfo=UTC)),
                # the latest proof: 17:30 UTC is 01:30 the next day in Shanghai
                _moved("T1", "submitted", datetime(2026, 7, 1, 17, 30, tzinfo=UTC)),
                _moved("T1", "open", datetime(2026, 6, 25, tzinfo=UTC)),
                _moved("T3", "submitted", datetime(2026, 6, 5, tzinfo=UTC)),
            ],
        )
    migrate.upgrade(engine, "b0010")  # b0011 takes the round's first proof instead
    with engine.connect() as conn:
        days = dict(conn.execute(select(tickets.c.id, tickets.c.proof_submitted_on)).all())
    assert days == {"T1": date(2026, 7, 2), "T2": None, "T3": None}
