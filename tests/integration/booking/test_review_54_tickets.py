"""Review 54 (tickets) on SQLite and PostgreSQL: a better photo sent after the deadline
leaves an in-time proof in time (D1, real servers), and a sweep racing a late proof that
reports its own overdue neither fails nor reports twice (D4, PostgreSQL row locks)."""

from __future__ import annotations

from datetime import timedelta

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.service_layer.tickets import sweep
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from tests.booking_env import Pair
from tests.integration.booking.test_review_52_tickets import deliver, prove, visited


def test_a_better_photo_after_the_deadline_leaves_an_in_time_proof_in_time(pair: Pair) -> None:
    firm, token, ticket_id = visited(pair, 4)  # MAJOR: due in 15 days
    pair.clock.today += timedelta(days=13)
    prove(pair, firm, token, ticket_id)
    pair.clock.today += timedelta(days=4)  # past the deadline, the recheck still to come
    prove(pair, firm, token, ticket_id)  # the page's 重新上传整改照片
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
