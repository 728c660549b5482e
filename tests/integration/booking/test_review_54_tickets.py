"""Review 54 (tickets) on SQLite and PostgreSQL: a better photo sent after the deadline
leaves an in-time proof in time, and the day that decides it is audited (D1, D3 c, real
servers), and a sweep racing a late proof that
reports its own overdue neither fails nor reports twice (D4, PostgreSQL row locks)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.booking.adapters.orm import audit_log, outbox
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain.firm_access import FirmAccess
from services.booking.service_layer.tickets import submit_rectification, sweep
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from tests.booking_env import Pair
from tests.integration.booking.test_dispatch_ahead import _wait_until_blocked
from tests.integration.booking.test_review_52_tickets import (
    MAJOR_CLAUSE,
    PNG,
    deliver,
    prove,
    visited,
)


def test_a_better_photo_after_the_deadline_leaves_an_in_time_proof_in_time(pair: Pair) -> None:
    firm, token, ticket_id = visited(pair, 4)  # MAJOR: due in 15 days
    pair.clock.today += timedelta(days=13)
    prove(pair, firm, token, ticket_id)
    pair.clock.today += timedelta(days=4)  # past the deadline, the recheck still to come
    prove(pair, firm, token, ticket_id)  # the page's 重新上传整改照片
    # the day that decides lateness is audited (D3 c): set by the first proof only
    with pair.booking_engine.connect() as conn:
        changes = conn.execute(
            select(audit_log.c.after)
            .where(audit_log.c.entity == "ticket", audit_log.c.entity_id == ticket_id)
            .order_by(audit_log.c.id)
        ).scalars()
        days = [c["proof_submitted_on"] for c in changes if "proof_submitted_on" in c]
    assert days == [None, (pair.clock.today - timedelta(days=4)).isoformat()]  # created, proof
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 0
    done = pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
    )
    assert not done.closed_late
    assert deliver(pair) == 2  # found, verified: no overdue
    status = pair.rules_status(firm)
    [hazard] = status.profile.hazards
    assert hazard.status == rpb.HAZARD_STATUS_VERIFIED and not hazard.closed_late
    assert "late_rectification" not in {b.code for b in status.decision.whitelist_blockers}


class _HeldAtCommit(UnitOfWork):
    """The real submission's unit of work, held between its last write and its commit
    (its row lock and its overdue event not yet committed) while `meanwhile` runs."""

    def __init__(self, pair: Pair, meanwhile: Any) -> None:
        super().__init__(pair.booking_engine)
        self.meanwhile = meanwhile

    def commit(self) -> None:
        self.session.flush()
        self.meanwhile(self.session.connection())
        super().commit()


def test_a_sweep_racing_a_late_proof_reports_every_other_ticket_once(pair: Pair) -> None:
    """t3_sweep_vs_late_proof: the firm's late proof commits its own overdue while the
    sweep runs; the sweep used to write the same event id and lose its whole batch."""
    if pair.booking_engine.dialect.name == "sqlite":
        pytest.skip("SQLite takes one writer at a time: a sweep cannot overlap a proof")
    firm, token, late = visited(pair, 5)
    other = pair.booking.RecordVisit(  # a second order of the firm, visited the same day
        bpb.RecordVisitRequest(
            order_id=pair.booking.CreateOrder(
                pair.order_request(token, key="k5b"), timeout=10
            ).order_id,
            findings=[bpb.FindingInput(
                clause_ref=MAJOR_CLAUSE, severity=bpb.SEVERITY_MAJOR, description="灭火器过期"
            )],
        ),
        timeout=10,
    ).tickets[0].ticket_id  # fmt: skip
    pair.clock.today += timedelta(days=16)  # the day after both deadlines
    due = (pair.clock.today - timedelta(days=1)).isoformat()
    swept: dict[str, Any] = {}

    def run_sweep() -> None:
        try:
            swept["reported"] = sweep(UnitOfWork(pair.booking_engine), pair.ctx)
        except Exception as exc:  # reported by the assertion below
            swept["reported"] = f"{type(exc).__name__}: {exc}"

    sweeper = threading.Thread(target=run_sweep)

    def sweep_meanwhile(connection: Any) -> None:
        sweeper.start()
        _wait_until_blocked(pair.booking_engine, connection)

    held = _HeldAtCommit(pair, sweep_meanwhile)
    access = FirmAccess(session_firm=firm)
    submit_rectification(held, pair.ctx, late, access, note="晚了一天", photo=PNG)
    sweeper.join(30)
    assert swept == {"reported": 1}  # the other ticket; the late one reported itself
    with pair.booking_engine.connect() as conn:
        ids = conn.execute(select(outbox.c.event_id).order_by(outbox.c.id)).scalars().all()
    overdue = [i for i in ids if "-overdue-" in i]
    assert overdue == [f"booking-{late}-overdue-{due}", f"booking-{other}-overdue-{due}"]
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 0
