"""The rectification tickets' loose ends (branch tickets-fixes), against real booking and
rules gRPC servers and the staff site over real HTTP, booking on SQLite and PostgreSQL:
what "overdue" means for a proof waiting for its recheck, one thing on gRPC, the pages
and the escalation; another expert's order answered as an unknown one."""

from __future__ import annotations

import re
from datetime import timedelta

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.service_layer.tickets import sweep
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.clock import today_shanghai
from tests.booking_env import ledger_visit
from tests.e2e.test_staff_pages import dispatched, proof_waiting
from tests.integration.booking.test_staff_fixes import SUP_TOKEN, Web, web  # noqa: F401


def _ticket(site: Web, ticket_id: str) -> bpb.Ticket:
    found = site.pair.booking.ListTickets(bpb.ListTicketsRequest(page_size=100), timeout=10)
    return next(t for t in found.tickets if t.ticket_id == ticket_id)


def test_a_proof_waiting_past_its_deadline_is_overdue_nowhere(web: Web) -> None:  # noqa: F811
    """A SUBMITTED ticket past its deadline: gRPC's `overdue` was true, ListTickets'
    `overdue_only`, GetStats' `overdue_open` and the supervisors' overdue list counted it,
    while the firm's pages said it waits for the inspector and the sweep did not report
    it. The firm did its part: it is overdue nowhere; an OPEN ticket past the same
    deadline is overdue everywhere (and reported once); the inspector's queue shows the
    proof's recheck behind the deadline."""
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 71, "稠城街道", "证明已交")
    order_id, _ = dispatched(pair, 72, "稠城街道", key="k72")
    visit = pair.booking.RecordVisit(ledger_visit(order_id, "尚未整改"), timeout=10)
    missing = visit.tickets[0].ticket_id
    due = _ticket(web, waiting).due_on
    assert _ticket(web, missing).due_on == due
    pair.clock.today = pair.clock.today + timedelta(days=45)  # both past their deadline

    # gRPC
    assert not _ticket(web, waiting).overdue
    assert _ticket(web, missing).overdue
    listed = pair.booking.ListTickets(
        bpb.ListTicketsRequest(overdue_only=True, page_size=100), timeout=10
    )
    assert [t.ticket_id for t in listed.tickets] == [missing]
    # the orders were made on the real day, the clock's today is another: both in the period
    real = today_shanghai()
    first, last = sorted([real, pair.clock.today])
    every_day = {"from": (first - timedelta(days=1)).isoformat(), "to": last.isoformat()}
    stats = pair.booking.GetStats(bpb.GetStatsRequest(**every_day), timeout=10)
    assert stats.total.overdue_open == 1

    # the supervisors' dashboard: the overdue list and its count
    c = web.client()
    bearer = {"Authorization": f"Bearer {SUP_TOKEN}"}
    board = c.get("/dashboard", params=every_day, headers=bearer)
    assert board.status_code == 200
    section = re.search(r'<section id="overdue">(.*?)</section>', board.text, re.S)
    assert section and "尚未整改" in section.group(1) and "证明已交" not in section.group(1)
    assert re.search(r'id="overdue-open">1<', board.text)

    # the inspector's queue: the proof is there, its recheck behind the deadline
    web.user("wangfang", "inspector", region="稠城街道")
    staff, _ = web.signed_in("wangfang")
    queue = staff.get("/staff/tickets").text
    card = re.search(rf'id="q-{waiting}">(.*?)</a>', queue, re.S)
    assert card and "已过整改期限" in card.group(1) and "已逾期" not in card.group(1)
    page = staff.get(f"/staff/tickets/{waiting}").text
    assert "已逾期" not in page and "已过整改期限" in page
    assert "已逾期" in staff.get(f"/staff/tickets/{missing}").text

    # the escalation: only the missing proof is reported overdue
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 1


def test_another_experts_order_reads_as_an_unknown_one_on_grpc_and_the_staff_pages(
    web: Web,  # noqa: F811
) -> None:
    """An expert asking for another expert's order was told it is out of their reach
    (PERMISSION_DENIED on GetOrder, the staff pages' 403), an unknown id NOT_FOUND (404):
    the answer told that the order exists. Both are now answered the same way. GetOrder:
    tests/integration/security/test_staff_reach.py asks it of every kind of staff caller
    (experts, a region's inspector) with an order out of their reach."""
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    pair.expert("E2", ["dust_explosion"], ["江东街道"])
    theirs, _ = dispatched(pair, 73, "江东街道", expert="E2")
    unknown = theirs[:-1] + ("X" if theirs[-1] != "X" else "Y")
    web.user("zhuanjia", "expert", expert_id="E1")
    staff, _ = web.signed_in("zhuanjia")
    pages = []
    for order_id in (theirs, unknown):
        page = staff.get(f"/staff/orders/{order_id}/visit")
        pages.append((page.status_code, page.text.replace(order_id, "…")))
    assert pages[0] == pages[1] and pages[0][0] == 404
    assert messages.PAGE_STAFF_NOT_FOUND[1] in pages[0][1]
