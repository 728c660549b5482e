"""The ids and filters booking's reads and record lookups take are checked as the rules
service checks its own (review 58 F5): a firm's id is a unified social credit code
(`services.common.vocabulary.uscc_problem`), an order's or a ticket's id one booking could
have made (`record_id_problem`: at most 32 ASCII letters and digits), a domain one of the
nine; anything else is INVALID_ARGUMENT with a field violation naming the field, its
message quoting at most a short prefix of the value, never an empty page or NOT_FOUND
(`ListOrders(enterprise_id="9" * 100000)` answered OK with an empty page)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.values import PREVIEW_CHARS
from tests.booking_env import Pair, ledger_visit
from tests.integration.booking.test_bad_values import refusal
from tests.support import uscc

HUGE = "9" * 100_000
FIRM = uscc(1)
BAD_FIRM_IDS = [HUGE, "abc", FIRM[:17], FIRM + " ", " " + FIRM, FIRM.lower(), "企业" * 9]
BAD_FIRM_IDS += [FIRM[:17] + ("0" if FIRM[17] != "0" else "1")]  # the check character wrong
BAD_RECORD_IDS = ["B" * 100_000, "订单" * 10, "B261129 UT2AZL", "B261129UT2AZL ", "x" * 33]
BAD_RECORD_IDS += ["B-261129", "B261129ＵＴ２"]  # a dash, full-width letters and digits


def _refused(call: Callable[[], Any], field: str, value: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.code(), error.details())
    message, violations = refusal(error)
    assert field in [v.field for v in violations], (field, [v.field for v in violations])
    quoted = value[: PREVIEW_CHARS + 1]
    for text in [message, *(v.description for v in violations)]:
        assert len(text) < 400, text[:200]
        assert len(value) <= PREVIEW_CHARS or quoted not in text, text[:200]


def _lookups(pair: Pair, order_id: str, ticket_id: str) -> dict[str, Callable[[str], Any]]:
    """Each RPC that takes a record's id, by the field it is named."""
    b = pair.booking
    return {
        "GetOrder.order_id": lambda v: b.GetOrder(bpb.GetOrderRequest(order_id=v), timeout=30),
        "CancelOrder.order_id": lambda v: b.CancelOrder(
            bpb.CancelOrderRequest(order_id=v, reason="企业停业"), timeout=30
        ),
        "DispatchOrder.order_id": lambda v: b.DispatchOrder(
            bpb.DispatchOrderRequest(order_id=v), timeout=30
        ),
        "RecordVisit.order_id": lambda v: b.RecordVisit(ledger_visit(v, "无台账"), timeout=30),
        "SubmitRectification.ticket_id": lambda v: b.SubmitRectification(
            bpb.SubmitRectificationRequest(
                ticket_id=v, photo=bpb.Photo(content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
            ),
            timeout=30,
        ),
        "RecheckTicket.ticket_id": lambda v: b.RecheckTicket(
            bpb.RecheckTicketRequest(ticket_id=v, passed=True), timeout=30
        ),
    }


def _visited(pair: Pair) -> tuple[str, str]:
    """A firm's order, visited, with one ticket: (order id, ticket id)."""
    firm = pair.register_firm(1, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = pair.booking.CreateOrder(
        pair.order_request(pair.issue(firm).token, item="dust_explosion"), timeout=10
    )
    visit = pair.booking.RecordVisit(ledger_visit(placed.order_id, "无台账"), timeout=10)
    return placed.order_id, visit.tickets[0].ticket_id


def test_an_order_s_or_a_ticket_s_id_booking_never_makes_is_invalid_not_found(
    pair: Pair,
) -> None:
    order_id, ticket_id = _visited(pair)
    for name, call in _lookups(pair, order_id, ticket_id).items():
        field = name.split(".")[1]
        for value in ["", *BAD_RECORD_IDS]:
            _refused(lambda c=call, v=value: c(v), field, value)  # type: ignore[misc]
    # ids booking makes still find their records; a well-formed unknown one is NOT_FOUND
    assert pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10).order_id
    for well_formed in ("B000000NOSUCH", order_id.lower()):
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.GetOrder(bpb.GetOrderRequest(order_id=well_formed), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.RecheckTicket(
            bpb.RecheckTicketRequest(ticket_id="T" + "0" * 31, passed=True), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:  # found: still open, nothing to recheck
        pair.booking.RecheckTicket(
            bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_firm_filter_that_is_no_credit_code_is_invalid_not_an_empty_page(pair: Pair) -> None:
    order_id, _ = _visited(pair)
    for value in BAD_FIRM_IDS:
        _refused(
            lambda v=value: pair.booking.ListOrders(  # type: ignore[misc]
                bpb.ListOrdersRequest(enterprise_id=v), timeout=30
            ),
            "enterprise_id",
            value,
        )
        _refused(
            lambda v=value: pair.booking.ListTickets(  # type: ignore[misc]
                bpb.ListTicketsRequest(enterprise_id=v), timeout=30
            ),
            "enterprise_id",
            value,
        )
    orders = pair.booking.ListOrders(bpb.ListOrdersRequest(enterprise_id=FIRM), timeout=10)
    assert [o.order_id for o in orders.orders] == [order_id]
    tickets = pair.booking.ListTickets(bpb.ListTicketsRequest(enterprise_id=FIRM), timeout=10)
    assert [t.order_id for t in tickets.tickets] == [order_id]
    other = pair.booking.ListOrders(bpb.ListOrdersRequest(enterprise_id=uscc(2)), timeout=10)
    assert list(other.orders) == []  # a well-formed firm without orders: an empty page


@pytest.mark.parametrize("value", ["nope", "GAS", "gas ", "x" * 100_000, "燃气"])
def test_an_expert_domain_filter_that_names_no_domain_is_invalid(pair: Pair, value: str) -> None:
    pair.expert("E1", ["gas"], ["稠城街道"])
    _refused(
        lambda: pair.booking.ListExperts(bpb.ListExpertsRequest(domain=value), timeout=30),
        "domain",
        value,
    )
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(domain="gas"), timeout=10)
    assert [e.expert_id for e in listed.experts] == ["E1"]


def test_regions_dates_and_page_tokens_are_refused_in_a_few_bytes(pair: Pair) -> None:
    long = "稠" * 100_000
    b = pair.booking
    calls: list[tuple[Callable[[], Any], str, str]] = [
        (lambda: b.ListExperts(bpb.ListExpertsRequest(region=long), timeout=30), "region", long),
        (lambda: b.GetStats(bpb.GetStatsRequest(region=long), timeout=30), "region", long),
        (lambda: b.GetStats(bpb.GetStatsRequest(to=HUGE), timeout=30), "to", HUGE),
        (lambda: b.GetStats(bpb.GetStatsRequest(**{"from": HUGE}), timeout=30), "from", HUGE),
        (
            lambda: b.ListOrders(bpb.ListOrdersRequest(page_token=HUGE), timeout=30),
            "page_token",
            HUGE,
        ),
        (
            lambda: b.ListTickets(bpb.ListTicketsRequest(page_token=HUGE), timeout=30),
            "page_token",
            HUGE,
        ),
    ]
    for call, field, value in calls:
        _refused(call, field, value)
