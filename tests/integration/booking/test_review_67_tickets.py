"""Review 67 (the rectification lifecycle end to end) against real rules and booking
servers, booking on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select, update

from services.booking.adapters.orm import orders, outbox, tickets
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.service_layer.tickets import sweep
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.clock import today_shanghai
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.domain import labels as rules_labels
from services.rules.entrypoints import grpc_server as rules_grpc
from tests.booking_env import Pair
from tests.integration.booking.test_review_52_tickets import MAJOR_CLAUSE, deliver, prove
from tests.integration.conftest import violations
from tests.support import RULESETS


def _placed_days_ago(pair: Pair, n: int, days: int) -> tuple[str, str]:
    """Firm `n`'s dispatched order, placed `days` ago: (firm, order). The clock is the
    real day: an order's placing is an instant of the real clock."""
    pair.clock.today = today_shanghai()
    firm = pair.register_firm(n)
    token = pair.issue(firm).token
    pair.expert("E1", ["fire_crowded"], ["稠城街道"], days=range(1, 40))
    order = pair.booking.CreateOrder(pair.order_request(token, key=f"k{n}"), timeout=10)
    with pair.booking_engine.begin() as conn:
        placed = conn.execute(
            select(orders.c.created_at).where(orders.c.id == order.order_id)
        ).scalar_one()
        conn.execute(
            update(orders)
            .where(orders.c.id == order.order_id)
            .values(created_at=placed - timedelta(days=days + 1))
        )
    return firm, order.order_id


def test_a_visit_recorded_late_makes_no_ticket_born_overdue(pair: Pair) -> None:
    """F1: the expert records on the 21st a visit of the 1st; a MAJOR finding's default
    deadline (the 16th) had passed: the ticket was overdue the moment it was made, the
    next sweep reported it to rules, and its closure was late however soon the firm
    fixed it. Now refused naming the finding's due_on; a deadline after today is taken."""
    _, order_id = _placed_days_ago(pair, 1, 20)
    visited_on = (pair.clock.today - timedelta(days=20)).isoformat()
    found = bpb.FindingInput(clause_ref=MAJOR_CLAUSE, severity=bpb.SEVERITY_MAJOR, description="x")
    request = bpb.RecordVisitRequest(order_id=order_id, visited_on=visited_on, findings=[found])
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    default = pair.clock.today - timedelta(days=5)
    assert violations(info.value) == {
        "findings[0].due_on": messages.FINDING_DEFAULT_DUE_PASSED.format(
            day=messages.a_day(default)
        )
    }
    written = pair.clock.today - timedelta(days=2)  # after the visit, before today
    request.findings[0].due_on = written.isoformat()
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(request, timeout=10)
    assert violations(info.value) == {
        "findings[0].due_on": messages.FINDING_DUE_PASSED.format(day=messages.a_day(written))
    }
    with pair.booking_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
    request.findings[0].due_on = (pair.clock.today + timedelta(days=7)).isoformat()
    visit = pair.booking.RecordVisit(request, timeout=10)
    [ticket] = visit.tickets
    assert not ticket.overdue and visit.visited_on == visited_on
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 0


def _rules_restarted_without(pair: Pair, tmp_path: Path, clause_id: str) -> None:
    """Rules restarted on its port with gen.yaml's clause `clause_id` removed (a ruleset
    change while booking's reports wait in the outbox)."""
    rulesets = tmp_path / "rulesets"
    shutil.copytree(RULESETS, rulesets)
    gen = (rulesets / "gen.yaml").read_text(encoding="utf-8")
    start = gen.index(f'  - id: "{clause_id}"')
    end = gen.index("  - id: ", start + 1)
    (rulesets / "gen.yaml").write_text(gen[:start] + gen[end:], encoding="utf-8")
    pair.rules_server.stop(None)
    server, _ = rules_grpc.create_server(
        load_rulebook(rulesets),
        engine=pair.rules_engine,
        address=f"127.0.0.1:{pair.rules_port}",
        today=pair.clock,
    )
    server.start()
    pair.rules_server = server


def _found_then_clause_removed(
    pair: Pair, tmp_path: Path, n: int, severity: int
) -> tuple[str, str, str]:
    """A white-listed firm visited, a finding of `severity` recorded under GEN:training,
    then rules restarted with rulesets without that clause before the report went: the
    firm, its QR token and the ticket."""
    firm = pair.register_firm(n)
    assert pair.rules_status(firm).decision.status == rpb.STATUS_WHITELIST
    token = pair.issue(firm).token
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    order = pair.booking.CreateOrder(pair.order_request(token, key=f"k{n}"), timeout=10)
    found = bpb.FindingInput(clause_ref="GEN:training", severity=severity, description="无培训记录")
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(order_id=order.order_id, findings=[found]), timeout=10
    )
    _rules_restarted_without(pair, tmp_path, "training")
    return firm, token, visit.tickets[0].ticket_id


def test_a_major_ticket_whose_clause_a_ruleset_change_removed_takes_the_firm_off_the_list(
    pair: Pair, tmp_path: Path
) -> None:
    """F2: a MAJOR finding recorded under a clause rules knew, then rules restarted with a
    ruleset without it before the report was delivered: rules refused it for good, the
    outbox parked it, and the firm with an open MAJOR ticket stayed on the white list.
    Now the hazard is recorded (RED, off the list) and its verification brings it back."""
    firm, token, ticket_id = _found_then_clause_removed(pair, tmp_path, 2, bpb.SEVERITY_MAJOR)
    assert deliver(pair) == 1  # not parked
    status = pair.rules_status(firm)
    assert status.decision.status == rpb.STATUS_PRIORITY
    assert [h.hazard_id for h in status.profile.hazards] == [ticket_id]
    prove(pair, firm, token, ticket_id)
    pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
    )
    assert deliver(pair) == 1
    assert pair.rules_status(firm).decision.status == rpb.STATUS_WHITELIST


def test_a_general_ticket_whose_clause_a_ruleset_change_removed_holds_no_event_back(
    pair: Pair, tmp_path: Path
) -> None:
    """F2's GENERAL twin: a GENERAL finding recorded under a clause rules knew, then rules
    restarted without it before the report was delivered: rules refused it for good, the
    outbox parked it and held the firm's later reports (its verification) behind it. Now
    it is recorded (the firm re-evaluated, off the list, the finding saying the clause is
    gone from the rulesets), and its verification goes in its turn."""
    firm, token, ticket_id = _found_then_clause_removed(pair, tmp_path, 3, bpb.SEVERITY_GENERAL)
    assert deliver(pair) == 1  # not parked
    status = pair.rules_status(firm)
    assert status.decision.status == rpb.STATUS_ROUTINE
    assert [(h.hazard_id, h.severity) for h in status.profile.hazards] == [
        (ticket_id, rpb.SEVERITY_GENERAL)
    ]
    [finding] = [f for f in status.decision.findings if f.hazard_id == ticket_id]
    assert finding.text == rules_labels.hazard_clause_gone("GEN:training")
    pair.ctx.rules.warm_clauses()  # type: ignore[attr-defined]  # booking's catalogue anew
    listed = pair.booking.ListTickets(bpb.ListTicketsRequest(page_size=10), timeout=10)
    [shown] = [t for t in listed.tickets if t.ticket_id == ticket_id]
    assert shown.guidance == messages.CLAUSE_GONE_GUIDANCE  # not "" as for an outage
    prove(pair, firm, token, ticket_id)
    pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
    )
    assert deliver(pair) == 1
    with pair.booking_engine.connect() as conn:
        parked = select(func.count()).select_from(outbox).where(outbox.c.failed_at.is_not(None))
        assert conn.execute(parked).scalar_one() == 0
    assert pair.rules_status(firm).decision.status == rpb.STATUS_WHITELIST
