"""The closed loop over gRPC: QR → order → dispatch → visit → proof → recheck, and the
firm's status in the rules service follows every step (through the outbox)."""

from __future__ import annotations

from datetime import date, timedelta

import grpc
import pytest

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.service_layer.outbox import deliver_pending
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from tests.booking_env import Pair, ledger_visit

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def deliver(pair: Pair) -> int:
    return deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules).delivered


def order(pair: Pair, token: str, key: str = "k1", items=("dust_explosion",)):  # type: ignore[no-untyped-def]
    return pair.booking.CreateOrder(
        bpb.CreateOrderRequest(
            qr_token=token,
            item_codes=list(items),
            preferred_slots=[pair.slot(2), pair.slot(3)],
            contact_name="王经理",
            contact_phone="13812345678",
            idempotency_key=key,
        ),
        timeout=10,
    )


def test_the_whole_loop_changes_the_firm_status_and_back(pair: Pair) -> None:
    firm = pair.register_firm(
        1, industry="light_industry", high_risk_domains=["dust_explosion"], standardization_grade=2
    )
    assert pair.rules_status(firm).decision.status == rpb.STATUS_WHITELIST
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    qr = pair.issue(firm)
    assert qr.url.startswith("http://phone.test/q/") and "<svg" in qr.poster_svg
    placed = order(pair, qr.token)
    assert placed.status == bpb.ORDER_STATUS_DISPATCHED
    assert (placed.expert_id, placed.slot) == ("E1", pair.slot(2))
    # a server without tokens trusts its caller (authz.ANONYMOUS) as booking.admin: whole,
    # as GetOrder answered it (masking: tests/integration/security/test_expert_phones.py)
    assert placed.contact_phone == "13812345678"
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(
            order_id=placed.order_id,
            findings=[
                bpb.FindingInput(
                    clause_ref="GM2023:11(3)",
                    severity=bpb.SEVERITY_MAJOR,
                    description="干式除尘器无泄爆装置",
                )
            ],
        ),
        timeout=10,
    )
    ticket = visit.tickets[0]
    assert ticket.due_on == (pair.clock.today.replace(day=16)).isoformat()  # +15 days
    assert deliver(pair) == 1
    status = pair.rules_status(firm)
    assert status.decision.status == rpb.STATUS_PRIORITY
    assert ticket.ticket_id in [h.hazard_id for h in status.profile.hazards]
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket.ticket_id,
            qr_token=qr.token,
            note="已加装泄爆片",
            photo=bpb.Photo(content=PNG),
        ),
        timeout=10,
    )
    done = pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket.ticket_id, passed=True), timeout=10
    )
    assert done.status == bpb.TICKET_STATUS_VERIFIED and not done.closed_late
    assert deliver(pair) == 1
    assert pair.rules_status(firm).decision.status == rpb.STATUS_WHITELIST
    closed = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=placed.order_id), timeout=10)
    assert closed.status == bpb.ORDER_STATUS_CLOSED
    assert [h.to_status for h in closed.history] == ["submitted", "dispatched", "visited", "closed"]


def test_double_submission_makes_one_order(pair: Pair) -> None:
    firm = pair.register_firm(2)
    token = pair.issue(firm).token
    first, second = order(pair, token, "same"), order(pair, token, "same")
    assert first.order_id == second.order_id
    listed = pair.booking.ListOrders(bpb.ListOrdersRequest(enterprise_id=firm), timeout=10)
    assert len(listed.orders) == 1


def test_a_reissued_code_revokes_the_old_one(pair: Pair) -> None:
    firm = pair.register_firm(3)
    old = pair.issue(firm).token
    pair.issue(firm)
    with pytest.raises(grpc.RpcError) as info:
        order(pair, old)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("visited_on", ["9999-12-25", "1999-12-31"])
def test_visit_dates_out_of_range_are_invalid_not_internal(pair: Pair, visited_on: str) -> None:
    firm = pair.register_firm(9, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = order(pair, pair.issue(firm).token)
    request = ledger_visit(placed.order_id, "无台账", visited_on=visited_on, due_on="9999-12-31")
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_visit_dated_after_today_is_refused(pair: Pair) -> None:
    """Review 21, 1: booking took a visit dated a month ahead, whose hazard event rules
    (refusing events dated after today) would never apply: the outbox set it aside."""
    firm = pair.register_firm(9, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = order(pair, pair.issue(firm).token)
    ahead = (pair.clock.today + timedelta(days=30)).isoformat()
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(
            ledger_visit(placed.order_id, "无台账", visited_on=ahead), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "visited_on" in (info.value.details() or "")
    today = pair.clock.today.isoformat()
    visit = pair.booking.RecordVisit(
        ledger_visit(placed.order_id, "无台账", visited_on=today), timeout=10
    )
    assert len(visit.tickets) == 1


def test_a_ticket_keeps_at_most_twenty_proof_photos(pair: Pair) -> None:
    """Review 47a N4: every re-upload (a double tap, four tabs) was kept, never shown;
    the 21st is FAILED_PRECONDITION, nothing stored, and the ticket stays submitted."""
    from services.booking.domain.photos import MAX_PROOFS_PER_ROUND

    firm = pair.register_firm(9, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    qr = pair.issue(firm)
    placed = order(pair, qr.token)
    visit = pair.booking.RecordVisit(ledger_visit(placed.order_id, "无台账"), timeout=10)
    ticket_id = visit.tickets[0].ticket_id

    def submit(n: int) -> bpb.Ticket:
        request = bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=qr.token, note=f"第{n}次", photo=bpb.Photo(content=PNG)
        )
        return pair.booking.SubmitRectification(request, timeout=10)

    for n in range(MAX_PROOFS_PER_ROUND):
        assert submit(n).status == bpb.TICKET_STATUS_SUBMITTED
    with pytest.raises(grpc.RpcError) as info:
        submit(MAX_PROOFS_PER_ROUND)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with UnitOfWork(pair.booking_engine) as uow:
        assert len(uow.register.photos_of(ticket_id, "proof")) == MAX_PROOFS_PER_ROUND
        ticket = uow.register.ticket(ticket_id)
        assert ticket is not None and ticket.proof_note == f"第{MAX_PROOFS_PER_ROUND - 1}次"
    # a failed recheck opens a new round: the firm can send its fix again (review 50 F1)
    pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(
            ticket_id=ticket_id,
            passed=False,
            note="仍未整改",
            new_due_on=(pair.clock.today + timedelta(days=10)).isoformat(),
        ),
        timeout=10,
    )
    assert submit(99).status == bpb.TICKET_STATUS_SUBMITTED
    done = pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
    )
    assert done.status == bpb.TICKET_STATUS_VERIFIED


def test_a_visit_dated_before_its_order_is_refused_and_writes_nothing(pair: Pair) -> None:
    """Review 47b F5: a visit dated years before its order was taken, its tickets born
    overdue, its hazard reported to rules as found then, the firm turned red."""
    firm = pair.register_firm(9, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = order(pair, pair.issue(firm).token)
    before = (pair.clock.today - timedelta(days=1)).isoformat()
    for day in (before, "2020-01-01"):
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.RecordVisit(
                ledger_visit(placed.order_id, "无台账", visited_on=day), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "visited_on" in (info.value.details() or "")
    got = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=placed.order_id), timeout=10)
    assert got.status == bpb.ORDER_STATUS_DISPATCHED  # nothing recorded
    tickets = pair.booking.ListTickets(bpb.ListTicketsRequest(enterprise_id=firm), timeout=10)
    assert list(tickets.tickets) == []
    visit = pair.booking.RecordVisit(
        ledger_visit(placed.order_id, "无台账", visited_on=pair.clock.today.isoformat()),
        timeout=10,
    )
    assert len(visit.tickets) == 1


def test_upsert_expert_names_each_bad_field_and_truncates_nothing(pair: Pair) -> None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    bad = bpb.Expert(
        expert_id="E-BAD",
        name="专家",
        phone="12345",
        domains=["gas"],
        regions=["x" * 101],
        slots=[pair.slot(1)],
        max_visits_per_day=2,
        active=True,
        conflicts=["NOT-A-CODE"],
    )
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=bad), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details_pb2.BadRequest()
    rpc_status.from_call(info.value).details[0].Unpack(details)  # type: ignore[union-attr]
    assert {v.field for v in details.field_violations} == {
        "expert.phone",
        "expert.regions[0]",  # each bad item by its index as sent (review 72)
        "expert.conflicts[0]",
    }
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(), timeout=10)
    assert "E-BAD" not in [e.expert_id for e in listed.experts]


def test_a_visit_with_photos_keeps_them_with_their_ticket(pair: Pair) -> None:
    firm = pair.register_firm(11, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = order(pair, pair.issue(firm).token)
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    photos = [bpb.Photo(content=png, content_type="image/png")] * 2
    descriptions = [f"无台账{i}" for i in range(3)]
    visit = pair.booking.RecordVisit(
        ledger_visit(placed.order_id, *descriptions, photos=photos), timeout=10
    )
    assert len(visit.tickets) == 3
    from sqlalchemy import func, select

    from services.booking.adapters.orm import photos

    with pair.booking_engine.connect() as connection:
        for ticket in visit.tickets:
            query = select(func.count()).where(photos.c.ticket_id == ticket.ticket_id)
            assert connection.execute(query).scalar_one() == 2


def test_resend_since_queues_delivered_events_again_and_rules_ignores_duplicates(
    pair: Pair,
) -> None:
    from services.booking.service_layer.outbox import resend_since
    from services.common.clock import today_shanghai

    firm = pair.register_firm(12, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = order(pair, pair.issue(firm).token)
    pair.booking.RecordVisit(ledger_visit(placed.order_id, "无台账"), timeout=10)
    assert deliver(pair) == 1
    before = pair.rules_status(firm)
    again = resend_since(UnitOfWork(pair.booking_engine), today_shanghai())
    assert len(again) == 1 and again[0].endswith("-found")
    assert deliver(pair) == 1
    after = pair.rules_status(firm)
    assert len(after.history) == len(before.history)  # a duplicate changes nothing
    assert [h.hazard_id for h in after.profile.hazards] == [
        h.hazard_id for h in before.profile.hazards
    ]
    assert resend_since(UnitOfWork(pair.booking_engine), date(2199, 12, 31)) == []
