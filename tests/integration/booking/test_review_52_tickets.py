"""Review 52 (tickets) against real rules and booking servers (SQLite and PostgreSQL): a
failed recheck's new deadline reaches the rules register, a failure needs its note over
gRPC and on the staff page alike, and lateness is the firm's, not the inspector's."""

from __future__ import annotations

import re
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import outbox, tickets
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.service_layer.outbox import deliver_pending
from services.booking.service_layer.tickets import sweep
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from tests.booking_env import Pair
from tests.e2e.test_staff_pages import proof_waiting
from tests.integration.booking.test_staff_fixes import Web, sqlite_web  # noqa: F401
from tests.integration.conftest import violations

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MAJOR_CLAUSE = "GM2023:3(1)"  # 重大事故隐患 in the ruleset


def visited(pair: Pair, n: int, severity: int = bpb.SEVERITY_MAJOR) -> tuple[str, str, str]:
    """Firm `n` visited today with one finding under MAJOR_CLAUSE: (firm, token, ticket)."""
    firm = pair.register_firm(n)
    token = pair.issue(firm).token
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    order = pair.booking.CreateOrder(pair.order_request(token, key=f"k{n}"), timeout=10)
    found = bpb.FindingInput(clause_ref=MAJOR_CLAUSE, severity=severity, description="配电箱未接地")
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(order_id=order.order_id, findings=[found]), timeout=10
    )
    return firm, token, visit.tickets[0].ticket_id


def prove(pair: Pair, firm: str, token: str, ticket_id: str) -> None:
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=token, note="已整改", photo=bpb.Photo(content=PNG)
        ),
        metadata=pair.sign_in(firm, token),
        timeout=10,
    )


def deliver(pair: Pair) -> int:
    report = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert not report.failed and not report.waiting
    return report.delivered


def hazard_due(pair: Pair, firm: str, ticket_id: str) -> str:
    status = pair.rules_status(firm)
    return next(h.due_on for h in status.profile.hazards if h.hazard_id == ticket_id)


def test_a_failed_recheck_s_new_deadline_reaches_the_rules_register(pair: Pair) -> None:
    firm, token, ticket_id = visited(pair, 1)
    assert deliver(pair) == 1
    assert hazard_due(pair, firm, ticket_id) == "2026-06-16"
    prove(pair, firm, token, ticket_id)
    new_due = (pair.clock.today + timedelta(days=40)).isoformat()
    failed = pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(
            ticket_id=ticket_id, passed=False, note="仍未接地", new_due_on=new_due
        ),
        timeout=10,
    )
    assert failed.due_on == new_due
    assert deliver(pair) == 1  # HAZARD_DUE_CHANGED, written with the recheck
    assert hazard_due(pair, firm, ticket_id) == new_due
    # what the firm's page shows of its status: one deadline, booking's
    shown = pair.ctx.rules.status(firm)
    assert shown is not None
    [finding] = [f for f in shown.findings if f.hazard_id == ticket_id]
    # rules' guidance ended with the deadline in force, which booking takes and drops from
    # the guidance (said once, beside it: review 62)
    assert finding.due_on == new_due and "整改期限" not in finding.guidance
    assert "2026-06-16" not in finding.guidance
    history = pair.rules_status(firm).history
    assert any(h.event_kind == rpb.EVENT_KIND_HAZARD_DUE_CHANGED for h in history)
    # sent again (a restore of rules from a backup): the same event, applied once
    with pair.booking_engine.begin() as conn:
        conn.execute(outbox.update().values(delivered_at=None))
    assert deliver(pair) == 2
    assert hazard_due(pair, firm, ticket_id) == new_due


def test_a_failed_recheck_without_a_note_is_refused_over_grpc(pair: Pair) -> None:
    firm, token, ticket_id = visited(pair, 2)
    prove(pair, firm, token, ticket_id)
    new_due = (pair.clock.today + timedelta(days=10)).isoformat()
    for note in ("", "   "):
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.RecheckTicket(
                bpb.RecheckTicketRequest(
                    ticket_id=ticket_id, passed=False, note=note, new_due_on=new_due
                ),
                timeout=10,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(info.value) == {"note": messages.RECHECK_NEEDS_NOTE}
    with pair.booking_engine.connect() as conn:
        assert conn.execute(select(tickets.c.status)).scalar_one() == "submitted"
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 1


def test_a_proof_in_time_is_on_time_however_late_the_recheck(pair: Pair) -> None:
    firm, token, ticket_id = visited(pair, 3)
    pair.clock.today += timedelta(days=13)  # two days before the deadline (06-16)
    prove(pair, firm, token, ticket_id)
    pair.clock.today += timedelta(days=4)  # the inspector comes after it
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


def error_of(page: str, field: str) -> str:
    shown = re.search(rf'id="err-{field}" role="alert">([^<]*)<', page)
    assert shown, page[:2000]
    return shown.group(1)


def test_a_failed_recheck_without_a_note_is_refused_next_to_the_note(
    sqlite_web: Web,  # noqa: F811
) -> None:
    pair = sqlite_web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 61, "稠城街道", "未建立台账")
    sqlite_web.user("wangfang", "inspector", region="稠城街道")
    c, tok = sqlite_web.signed_in("wangfang")
    form = {"csrf": tok, "result": "fail", "note": " \u3000 ", "new_due_on": ""}
    answer = c.post(f"/staff/tickets/{waiting}", data=form)
    assert answer.status_code == 400
    # both fields at once: the handler checks the note and the deadline together
    assert error_of(answer.text, "note") == messages.RECHECK_NEEDS_NOTE
    assert error_of(answer.text, "new_due_on") == messages.RECHECK_NEEDS_DEADLINE
    with pair.booking_engine.connect() as conn:
        assert conn.execute(select(tickets.c.status)).scalar_one() == "submitted"
    form |= {"note": "照片看不清", "new_due_on": "2026-07-01"}
    assert c.post(f"/staff/tickets/{waiting}", data=form).status_code == 303
