"""Review 72 (integrator's view): booking's own refusals are Chinese, from its messages
module (README "Errors and retries", who reads which words): a client of booking (a
county's app) shows them to the firm or the staff member, and the phone page and staff
pages show the same use cases' words. Three of them were English: a ticket's or an
order's move its state machine does not allow, GetStats' `from` after `to`, and a
visit's findings and photos past their limits. Real booking and rules gRPC servers."""

from __future__ import annotations

import grpc
import pytest

from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair
from tests.integration.booking.test_bad_values import refusal
from tests.integration.booking.test_recheck_round import waiting_ticket


def chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_a_move_the_tickets_state_does_not_allow_is_refused_in_chinese(pair: Pair) -> None:
    ticket_id, _ = waiting_ticket(pair, 41, "未建立台账")
    passed = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True)
    assert pair.booking.RecheckTicket(passed, timeout=10).status == bpb.TICKET_STATUS_VERIFIED
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecheckTicket(passed, timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    said = info.value.details() or ""
    assert said == "该整改单当前为“复查通过”，不能复查通过", said


def test_stats_with_from_after_to_are_refused_in_chinese(pair: Pair) -> None:
    request = bpb.GetStatsRequest(**{"from": "2026-06-02", "to": "2026-06-01"})
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.GetStats(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = refusal(info.value)
    assert [(v.field, v.description) for v in violations] == [("from", messages.PERIOD_REVERSED)]


def test_a_visit_past_its_limits_is_refused_in_chinese(pair: Pair) -> None:
    from tests.e2e.test_staff_pages import PNG, dispatched

    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 42, "稠城街道")
    finding = bpb.FindingInput(
        clause_ref="GEN:ledger",
        severity=bpb.SEVERITY_GENERAL,
        description="未建立台账",
        due_on="2000-01-01",
        photos=[bpb.Photo(content=PNG)] * 6,
    )
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(
            bpb.RecordVisitRequest(order_id=order_id, findings=[finding]), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, violations = refusal(info.value)
    described = {v.field: v.description for v in violations}
    assert set(described) >= {"findings[0].photos", "findings[0].due_on"}, described
    assert all(chinese(d) for d in described.values()), described
    many = bpb.RecordVisitRequest(order_id=order_id, findings=[finding] * 51)
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(many, timeout=30)
    _, violations = refusal(info.value)
    assert [v.field for v in violations] == ["findings"]
    assert chinese(violations[0].description), violations[0].description
