"""Nothing acknowledged is lost, nothing is applied twice; no slot is ever double-booked."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select, update

from services.booking.adapters.orm import assignments, outbox
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain.records import Expert
from services.booking.service_layer.outbox import DeliveryReport, deliver_pending
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server as rules_grpc
from tests.booking_env import Pair
from tests.support import RULESETS

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _visit(pair: Pair, firm: str, token: str, findings: list[tuple[str, int]]) -> list[str]:
    placed = pair.booking.CreateOrder(
        pair.order_request(token, key=firm, phone="13912345678"), timeout=10
    )
    assert placed.status == bpb.ORDER_STATUS_DISPATCHED
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(
            order_id=placed.order_id,
            findings=[
                bpb.FindingInput(clause_ref=ref, severity=sev, description="现场发现")
                for ref, sev in findings
            ],
        ),
        timeout=10,
    )
    return [t.ticket_id for t in visit.tickets]


def _deliver_when_back(pair: Pair, seconds: float = 30) -> DeliveryReport:
    """What the outbox worker does: retry until the rules service answers (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        with pair.booking_engine.begin() as conn:  # skip the backoff wait in a test
            conn.execute(update(outbox).values(next_attempt_at=None))
        report = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
        if not report.waiting or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def test_rules_down_then_up_every_event_applied_exactly_once(pair: Pair) -> None:
    firm = pair.register_firm(1)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token = pair.issue(firm).token
    pair.rules_server.stop(None)  # the rules service goes down
    ids = _visit(
        pair,
        firm,
        token,
        [("GEN:ledger", bpb.SEVERITY_GENERAL), ("FIRE35181:6.5", bpb.SEVERITY_MAJOR)],
    )
    for ticket_id in ids:
        pair.booking.SubmitRectification(
            bpb.SubmitRectificationRequest(
                ticket_id=ticket_id, qr_token=token, photo=bpb.Photo(content=PNG)
            ),
            timeout=10,
        )
    pair.booking.RecheckTicket(bpb.RecheckTicketRequest(ticket_id=ids[0], passed=True), timeout=10)
    down = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert (down.delivered, down.waiting) == (0, True)
    with pair.booking_engine.connect() as conn:
        attempts = conn.execute(
            select(outbox.c.attempts, outbox.c.next_attempt_at).order_by(outbox.c.id)
        ).all()
    assert attempts[0][0] == 1 and attempts[0][1] is not None  # backoff scheduled
    # the rules service comes back on the same port
    server, _ = rules_grpc.create_server(
        load_rulebook(RULESETS),
        engine=pair.rules_engine,
        address=f"127.0.0.1:{pair.rules_port}",
        today=pair.clock,
    )
    server.start()
    pair.rules_server = server
    up = _deliver_when_back(pair)
    assert (up.delivered, up.waiting, up.failed) == (3, False, 0)
    status = pair.rules_status(firm)
    hazards = {h.hazard_id: h.status for h in status.profile.hazards}
    assert hazards == {ids[0]: rpb.HAZARD_STATUS_VERIFIED, ids[1]: rpb.HAZARD_STATUS_OPEN}
    decisions_before = len(status.history)
    # a lost acknowledgement: everything is delivered again, and nothing changes
    with pair.booking_engine.begin() as conn:
        conn.execute(update(outbox).values(delivered_at=None, next_attempt_at=None))
    again = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert again.delivered == 3
    after = pair.rules_status(firm)
    assert len(after.history) == decisions_before
    assert len(after.profile.hazards) == 2


def test_concurrent_dispatches_never_double_book_a_slot(pair: Pair) -> None:
    firms = [pair.register_firm(n) for n in range(10, 22)]
    orders = []
    for firm in firms:  # no expert yet: every order waits
        token = pair.issue(firm).token
        orders.append(
            pair.booking.CreateOrder(
                bpb.CreateOrderRequest(
                    qr_token=token,
                    item_codes=["fire_safety"],
                    preferred_slots=[pair.slot(3), pair.slot(3, "PM")],
                    contact_name="赵",
                    contact_phone="13712345678",
                    idempotency_key="k",
                ),
                timeout=10,
            ).order_id
        )
    with UnitOfWork(pair.booking_engine) as uow:  # an expert appears, not through the handler
        uow.register.add(
            Expert(
                "E9",
                "专家",
                "",
                ["fire_crowded"],
                ["稠城街道"],
                [pair.slot(3), pair.slot(3, "PM")],
                2,
                True,
                [],
            )
        )
        uow.commit()
    with ThreadPoolExecutor(len(orders)) as pool:
        results = list(
            pool.map(
                lambda o: pair.booking.DispatchOrder(
                    bpb.DispatchOrderRequest(order_id=o), timeout=60
                ),
                orders,
            )
        )
    dispatched = [r for r in results if r.status == bpb.ORDER_STATUS_DISPATCHED]
    assert sorted(r.slot for r in dispatched) == [pair.slot(3), pair.slot(3, "PM")]
    assert all(r.dispatch_note for r in results if r.status == bpb.ORDER_STATUS_SUBMITTED)
    with pair.booking_engine.connect() as conn:
        rows = conn.execute(select(assignments.c.expert_id, assignments.c.slot)).all()
    assert len(rows) == len(set(rows)) == 2


def test_waiting_orders_are_dispatched_when_an_expert_becomes_free(pair: Pair) -> None:
    firm = pair.register_firm(30)
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(
        pair.order_request(token, item="confined_space", days=(4, 5), phone="13612345678"),
        timeout=10,
    )
    assert placed.status == bpb.ORDER_STATUS_SUBMITTED and "暂无可派专家" in placed.dispatch_note
    pair.expert("E2", ["confined_space"], ["佛堂镇"], days=range(5, 6))  # other region: fine
    got = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=placed.order_id), timeout=10)
    assert (got.status, got.expert_id, got.slot) == (
        bpb.ORDER_STATUS_DISPATCHED,
        "E2",
        pair.slot(5),
    )


def test_sweep_reports_an_overdue_ticket_once(pair: Pair) -> None:
    from services.booking.service_layer.tickets import sweep

    firm = pair.register_firm(40)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    (ticket_id,) = _visit(
        pair, firm, pair.issue(firm).token, [("GEN:ledger", bpb.SEVERITY_GENERAL)]
    )
    pair.clock.today += timedelta(days=30)  # the deadline day: not overdue yet
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 0
    pair.clock.today += timedelta(days=1)
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 1
    assert sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 0  # once
    overdue = pair.booking.ListTickets(bpb.ListTicketsRequest(overdue_only=True), timeout=10)
    assert [t.ticket_id for t in overdue.tickets] == [ticket_id] and overdue.tickets[0].overdue
    assert deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules).delivered == 2
    status = pair.rules_status(firm)
    assert status.history[0].reason.startswith("事件（隐患逾期未整改，")


def test_a_backed_off_event_is_never_overtaken_by_a_later_one_of_the_same_firm(
    pair: Pair,
) -> None:
    """FOUND waits out a backoff; VERIFIED of the same hazard, written later, must wait too
    (sent first, the rules service would refuse it and the hazard would stay open)."""
    from services.common.clock import now

    firm = pair.register_firm(50)
    other = pair.register_firm(51)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token, token2 = pair.issue(firm).token, pair.issue(other).token
    pair.rules_server.stop(None)
    (ticket_id,) = _visit(pair, firm, token, [("GEN:ledger", bpb.SEVERITY_GENERAL)])
    assert deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules).waiting
    with pair.booking_engine.begin() as conn:  # as after a few failures: a long backoff
        conn.execute(update(outbox).values(next_attempt_at=now() + timedelta(minutes=5)))
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=token, photo=bpb.Photo(content=PNG)
        ),
        timeout=10,
    )
    pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
    )
    (other_ticket,) = _visit(pair, other, token2, [("GEN:ledger", bpb.SEVERITY_GENERAL)])
    server, _ = rules_grpc.create_server(
        load_rulebook(RULESETS),
        engine=pair.rules_engine,
        address=f"127.0.0.1:{pair.rules_port}",
        today=pair.clock,
    )
    server.start()
    pair.rules_server = server
    deadline = time.monotonic() + 30
    while True:  # the rules service is back; the first firm's events still wait their turn
        report = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
        if report.delivered or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (report.delivered, report.failed) == (1, 0)  # only the other firm's event
    assert other_ticket in [h.hazard_id for h in pair.rules_status(other).profile.hazards]
    assert pair.rules_status(firm).profile.hazards == []
    with pair.booking_engine.begin() as conn:  # the backoff is over
        conn.execute(update(outbox).values(next_attempt_at=None))
    done = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert (done.delivered, done.failed) == (2, 0)
    hazards = {h.hazard_id: h.status for h in pair.rules_status(firm).profile.hazards}
    assert hazards == {ticket_id: rpb.HAZARD_STATUS_VERIFIED}


def test_rechecks_racing_on_one_order_close_it(pair: Pair) -> None:
    """Six tickets of one order verified at once: the last recheck must see the others and
    close the order (on PostgreSQL each runs under READ COMMITTED)."""
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    for n in range(60, 62):  # the helper books days 1 and 2: two orders fit
        firm = pair.register_firm(n)
        token = pair.issue(firm).token
        ids = _visit(pair, firm, token, [("GEN:ledger", bpb.SEVERITY_GENERAL)] * 6)
        for ticket_id in ids:
            pair.booking.SubmitRectification(
                bpb.SubmitRectificationRequest(
                    ticket_id=ticket_id, qr_token=token, photo=bpb.Photo(content=PNG)
                ),
                timeout=10,
            )
        with ThreadPoolExecutor(len(ids)) as pool:
            done = list(
                pool.map(
                    lambda t: pair.booking.RecheckTicket(
                        bpb.RecheckTicketRequest(ticket_id=t, passed=True), timeout=60
                    ),
                    ids,
                )
            )
        assert all(t.status == bpb.TICKET_STATUS_VERIFIED for t in done)
        order_id = done[0].order_id
        got = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
        assert got.status == bpb.ORDER_STATUS_CLOSED


def test_the_same_ticket_rechecked_twice_at_once_is_verified_once(pair: Pair) -> None:
    import grpc

    firm = pair.register_firm(70)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token = pair.issue(firm).token
    (ticket_id,) = _visit(pair, firm, token, [("GEN:ledger", bpb.SEVERITY_GENERAL)])
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=token, photo=bpb.Photo(content=PNG)
        ),
        timeout=10,
    )

    def recheck(_: int) -> str:
        try:
            pair.booking.RecheckTicket(
                bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=60
            )
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(recheck, range(6)))
    assert outcomes == ["FAILED_PRECONDITION"] * 5 + ["OK"]
    with pair.booking_engine.connect() as conn:
        events = conn.execute(
            select(outbox.c.event_id).where(outbox.c.event_id == f"booking-{ticket_id}-verified")
        ).all()
    assert len(events) == 1


def test_the_sweep_command_reports_overdue_and_delivers(sqlite_pair: Pair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.support import ROOT

    pair = sqlite_pair
    firm = pair.register_firm(80)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    _visit(pair, firm, pair.issue(firm).token, [("GEN:ledger", bpb.SEVERITY_GENERAL)])
    with pair.booking_engine.begin() as conn:  # the deadline passed long ago
        from services.booking.adapters.orm import tickets

        conn.execute(update(tickets).values(due_on=pair.clock.today - timedelta(days=400)))
    # the sweep process dates its event by the real today: so does rules from here on
    # (an event dated after rules' today is refused, ReportEvent's occurred_on)
    from services.common.clock import today_shanghai

    pair.clock.today = today_shanghai()
    db = pair.booking_engine.url.render_as_string(hide_password=False)
    command = [
        sys.executable,
        "-m",
        "services.booking",
        "sweep",
        "--db",
        db,
        "--rules",
        f"127.0.0.1:{pair.rules_port}",
        "--qr-keys",
        str(tmp_path / "keys.json"),
        "--new-qr-keys",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 overdue ticket(s) reported; 2 event(s) delivered" in result.stdout
    assert pair.rules_status(firm).history[0].reason.startswith("事件（隐患逾期未整改，")
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "0 overdue ticket(s) reported; 0 event(s) delivered" in again.stdout


def test_a_refused_event_is_kept_and_can_be_requeued(sqlite_pair: Pair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rules refuses an event for good (here: a firm it does not know yet); it is parked,
    listed by `outbox`, and delivered after `outbox --retry-failed` once the cause is fixed."""
    import subprocess
    import sys
    from datetime import UTC, datetime

    from services.booking.domain.records import OutboxMessage
    from services.common._generated.rules.v1 import rules_pb2 as rules_pb
    from services.rules.entrypoints.convert import profile_from_json
    from tests.support import ROOT, profile, uscc

    pair = sqlite_pair
    event = {
        "event_id": "manual-1",
        "enterprise_id": uscc(90),
        "kind": "EVENT_KIND_PENALTY",
        "occurred_on": "2026-05-01",
        "penalty": {"amount_yuan": 1000, "basis": "x"},
    }
    with UnitOfWork(pair.booking_engine) as uow:
        uow.register.add(
            OutboxMessage(
                "manual-1", "EVENT_KIND_PENALTY", uscc(90), event, created_at=datetime.now(UTC)
            )
        )
        uow.commit()
    report = deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules)
    assert report.failed == 1
    db = pair.booking_engine.url.render_as_string(hide_password=False)
    listing = subprocess.run(
        [sys.executable, "-m", "services.booking", "outbox", "--db", db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 refused by the rules service" in listing.stdout
    assert "manual-1: NOT_FOUND" in listing.stdout
    pair.rules.UpsertEnterprise(
        rules_pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(90))), timeout=10
    )  # the cause is fixed
    retry = subprocess.run(
        [sys.executable, "-m", "services.booking", "outbox", "--db", db, "--retry-failed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "requeued 1 event(s)" in retry.stdout
    assert deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules).delivered == 1
    assert len(pair.rules_status(uscc(90)).profile.penalties) == 1
