"""Bad values sent to booking: refused with INVALID_ARGUMENT, never INTERNAL, never stored,
and the refusal quotes at most a short prefix of what was sent (issue 13, defects 5–8)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.records import Expert
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair

HUGE = "GEN:" + "x" * (1 << 20)  # 1 MiB
LONG = "y" * 4000  # past the client's default 8 KB metadata limit once echoed twice


def refusal(call: grpc.RpcError) -> tuple[str, list[error_details_pb2.BadRequest.FieldViolation]]:
    """The message and the field violations of a refused call."""
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            violations.extend(bad.field_violations)
    return call.details() or "", violations


def assert_small_refusal(call: grpc.RpcError, *fields: str) -> None:
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, (call.code(), call.details()[:200])
    message, violations = refusal(call)
    assert len(message) < 1000
    assert all(len(v.field) + len(v.description) < 400 for v in violations)
    for field in fields:
        assert field in {v.field for v in violations}, [v.field for v in violations]
    trailers = dict(call.trailing_metadata() or ())
    assert len(trailers.get("grpc-status-details-bin", b"")) < 4000


def ordered(pair: Pair, n: int = 9) -> tuple[str, str]:
    firm = pair.register_firm(n, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(
        pair.order_request(token, item="dust_explosion", key=f"k{n}"), timeout=10
    )
    return token, placed.order_id


@pytest.mark.parametrize("clause_ref", [HUGE, "GEN:" + LONG])
def test_a_huge_clause_ref_is_refused_in_a_few_bytes(pair: Pair, clause_ref: str) -> None:
    _, order_id = ordered(pair)
    request = bpb.RecordVisitRequest(
        order_id=order_id,
        findings=[
            bpb.FindingInput(
                clause_ref=clause_ref, severity=bpb.SEVERITY_GENERAL, description="无台账"
            )
        ],
    )
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecordVisit(request, timeout=30)
    assert_small_refusal(info.value, "findings[0].clause_ref")


def test_huge_slots_items_and_ids_are_refused_in_a_few_bytes(pair: Pair) -> None:
    firm = pair.register_firm(3)
    token = pair.issue(firm).token
    for request in (
        bpb.CreateOrderRequest(
            qr_token=token,
            item_codes=[LONG + str(i) for i in range(10)],
            preferred_slots=[pair.slot(1), pair.slot(2)],
            contact_name="郑",
            contact_phone="13312345678",
            idempotency_key="k1",
        ),
        bpb.CreateOrderRequest(
            qr_token=token,
            item_codes=["fire_safety"],
            preferred_slots=[LONG, LONG + "1"],
            contact_name="郑",
            contact_phone="13312345678",
            idempotency_key="k2",
        ),
    ):
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.CreateOrder(request, timeout=30)
        assert_small_refusal(info.value)
    expert = bpb.Expert(
        expert_id="E9", name="专家", domains=["gas"], slots=[LONG], max_visits_per_day=2
    )
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=30)
    assert_small_refusal(info.value, "expert.slots[0]")
    for call in (
        lambda: pair.booking.GetOrder(bpb.GetOrderRequest(order_id=HUGE), timeout=30),
        lambda: pair.booking.DispatchOrder(bpb.DispatchOrderRequest(order_id=HUGE), timeout=30),
        lambda: pair.booking.RecheckTicket(
            bpb.RecheckTicketRequest(ticket_id=HUGE, passed=True), timeout=30
        ),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
        assert len(info.value.details() or "") < 1000


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_stats_with_dates_out_of_range_are_invalid_not_internal(pair: Pair, day: str) -> None:
    for request in (
        bpb.GetStatsRequest(to=day),
        bpb.GetStatsRequest(**{"from": day}),
        bpb.GetStatsRequest(**{"from": "2026-01-01", "to": day}),
    ):
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.GetStats(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


@pytest.mark.parametrize("day", ["２０２６-01-01", "2026-02-30"])
def test_stats_refuse_other_digits_or_no_such_day_in_the_projects_words(
    pair: Pair, day: str
) -> None:
    """Review 72: full-width digits (a Chinese input method) and 2026-02-30 were refused
    with Python's parser text ("Invalid isoformat string", "day is out of range")."""
    for request, field in (
        (bpb.GetStatsRequest(**{"from": day}), "from"),
        (bpb.GetStatsRequest(to=day), "to"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.GetStats(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        _, violations = refusal(info.value)
        described = {v.field: v.description for v in violations}
        assert set(described) == {field}, described
        assert "YYYY-MM-DD" in described[field], described
        assert "isoformat" not in described[field], described
        assert "out of range for month" not in described[field], described


def test_stats_at_the_edges_of_the_documented_range_answer(pair: Pair) -> None:
    stats = pair.booking.GetStats(
        bpb.GetStatsRequest(**{"from": "1949-01-01", "to": "2199-12-31"}), timeout=10
    )
    assert stats.total.bookings_received == 0


@pytest.mark.parametrize("slot", ["9999-12-31 PM", "0001-01-01 AM", "1948-12-31 AM"])
def test_expert_slots_outside_the_documented_dates_are_refused(pair: Pair, slot: str) -> None:
    expert = bpb.Expert(
        expert_id="E-FAR",
        name="远期专家",
        domains=["gas"],
        slots=[pair.slot(1), slot],
        max_visits_per_day=2,
    )
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
    assert_small_refusal(info.value, "expert.slots[1]")
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(), timeout=10)
    assert "E-FAR" not in [e.expert_id for e in listed.experts]


@pytest.mark.parametrize(
    "bad", ["\x00", "\x07", "\x1b[31m", "\x7f", "\n", "\x9b", "\u202e", "\u2066"]
)
def test_control_characters_in_names_are_refused_on_both_databases(pair: Pair, bad: str) -> None:
    firm = pair.register_firm(4)
    token = pair.issue(firm).token
    request = pair.order_request(token, key="nul")
    request.contact_name = f"郑{bad}先生"
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.CreateOrder(request, timeout=10)
    assert_small_refusal(info.value, "contact_name")
    expert = bpb.Expert(expert_id="E-NUL", name=f"专家{bad}", domains=["gas"], max_visits_per_day=2)
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
    assert_small_refusal(info.value, "expert.name")
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(), timeout=10)
    assert "E-NUL" not in [e.expert_id for e in listed.experts]
    orders = pair.booking.ListOrders(bpb.ListOrdersRequest(enterprise_id=firm), timeout=10)
    assert list(orders.orders) == []


@pytest.mark.parametrize("blank", ["\u200b\u200b", "\u3000", "\u2060\u200c"])
def test_names_of_nothing_visible_are_refused(pair: Pair, blank: str) -> None:
    """Review 47a F6: a contact name of zero-width characters alone was taken."""
    firm = pair.register_firm(6)
    token = pair.issue(firm).token
    request = pair.order_request(token, key="blank")
    request.contact_name = blank
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.CreateOrder(request, timeout=10)
    assert_small_refusal(info.value, "contact_name")
    expert = bpb.Expert(expert_id="E-BLANK", name=blank, domains=["gas"], max_visits_per_day=2)
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
    assert_small_refusal(info.value, "expert.name")


def test_free_text_may_break_lines_but_holds_no_other_control_character(pair: Pair) -> None:
    firm = pair.register_firm(5)
    token = pair.issue(firm).token
    request = pair.order_request(token, key="lines")
    request.note = "第一行\r\n第二行"
    placed = pair.booking.CreateOrder(request, timeout=10)
    assert placed.note == "第一行\r\n第二行"
    request = pair.order_request(token, key="nul-note")
    request.note = "备注\x00"
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.CreateOrder(request, timeout=10)
    assert_small_refusal(info.value, "note")


def test_an_expert_sent_without_max_visits_per_day_takes_the_documented_two(pair: Pair) -> None:
    """proto3 sends an unset int32 as 0: the documented default (2), not a refusal."""
    expert = bpb.Expert(expert_id="E-DEF", name="默认专家", domains=["gas"], active=True)
    answer = pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
    assert answer.max_visits_per_day == 2
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(), timeout=10)
    assert [e.max_visits_per_day for e in listed.experts if e.expert_id == "E-DEF"] == [2]
    expert.max_visits_per_day = 3
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
    assert_small_refusal(info.value, "expert.max_visits_per_day")


BAD_EXPERT_IDS = (" E-01 ", "E-01 ", "E-01\u200b", "E 01", "专家01", "-E01", "E" * 65, "")


def test_expert_ids_are_taken_as_sent_and_keep_to_their_alphabet(pair: Pair) -> None:
    """' E-01 ' was trimmed and overwrote E-01; a zero-width space made a look-alike."""
    pair.expert("E-01", ["gas"], ["稠城街道"])
    for expert_id in BAD_EXPERT_IDS:
        expert = bpb.Expert(expert_id=expert_id, name="冒名专家", domains=["fire_crowded"])
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
        assert_small_refusal(info.value, "expert.expert_id")
        assert "字母" in refusal(info.value)[1][0].description
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(), timeout=10)
    assert [(e.expert_id, e.name, list(e.domains)) for e in listed.experts] == [
        ("E-01", "专家E-01", ["gas"])
    ]


def test_an_expert_stored_before_ids_were_checked_can_still_be_updated(pair: Pair) -> None:
    """Review 21, 4: an expert stored as '专家01' (before EXPERT_ID) could no longer be
    updated or deactivated: UpsertExpert is the only way to write one."""
    with SqlUnitOfWork(pair.booking_engine) as uow:
        old = Expert("专家01", "老专家", "13800000000", ["gas"], ["稠城街道"], [], 2, True, [])
        uow.register.add(old)
        uow.commit()
    expert = bpb.Expert(
        expert_id="专家01", name="老专家", domains=["gas"], regions=["稠城街道"], active=False
    )
    saved = pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
    assert (saved.expert_id, saved.active) == ("专家01", False)
    new = bpb.Expert(expert_id="专家02", name="新专家", domains=["gas"], regions=["稠城街道"])
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=new), timeout=10)
    assert_small_refusal(info.value, "expert.expert_id")


@pytest.mark.parametrize("status", [99, -1, 6])
def test_an_unknown_status_filter_is_invalid_not_any_status(pair: Pair, status: int) -> None:
    """Review 47b F8: a status number the enum does not name was read as "any"."""
    token = pair.issue(pair.register_firm(1)).token
    pair.booking.CreateOrder(pair.order_request(token), timeout=10)
    calls = [
        lambda: pair.booking.ListOrders(bpb.ListOrdersRequest(status=status), timeout=10),  # type: ignore[arg-type]
        lambda: pair.booking.ListTickets(bpb.ListTicketsRequest(status=status), timeout=10),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in refusal(info.value)[1]] == ["status"]
    # unset is still any status, a named one still filters (no expert: it waits)
    assert len(pair.booking.ListOrders(bpb.ListOrdersRequest(), timeout=10).orders) == 1
    for wanted, count in ((bpb.ORDER_STATUS_SUBMITTED, 1), (bpb.ORDER_STATUS_DISPATCHED, 0)):
        listed = pair.booking.ListOrders(bpb.ListOrdersRequest(status=wanted), timeout=10)
        assert len(listed.orders) == count
