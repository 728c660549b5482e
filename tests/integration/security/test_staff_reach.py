"""The two narrowings the scopes cannot say (booking/domain/staff.py `Reach`), over gRPC:
an expert's token reads only the orders and tickets of its own visits, a region-limited
inspector's token only those of its area, and GetStats keeps it to its area as the
dashboard does. A token with neither (a supervisor, the city's inspector) reads all."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.auth import TokenStore
from services.common.security import Security
from tests.booking_env import Pair, ledger_visit, running_pair

TOKENS = {
    "e1": {"scopes": ["booking.expert", "booking.read"], "expert_id": "E1"},
    "e2": {"scopes": ["booking.expert", "booking.read"], "expert_id": "E2"},
    "local": {"scopes": ["booking.inspector", "booking.read"], "region": "稠城街道"},
    "city": {"scopes": ["booking.inspector", "booking.read"]},
    "sup": {"scopes": ["booking.read"]},
    "insp": {"scopes": ["booking.inspector"], "region": "稠城街道"},  # the scope alone
    "admin-e1": {"scopes": ["booking.admin", "booking.expert"], "expert_id": "E1"},
}
HERE, THERE = "稠城街道", "江东街道"


def _bearer(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {name}-token-0123456789"),)


@pytest.fixture
def reach(tmp_path: Path) -> Iterator[tuple[Pair, booking_pb2_grpc.BookingServiceStub]]:
    """Two firms, one per region, each with a visit recorded by the region's expert."""
    with running_pair(tmp_path) as pair:
        pair.expert("E1", ["dust_explosion"], [HERE])
        pair.expert("E2", ["dust_explosion"], [THERE])
        entries = [
            {"caller": f"{name}-caller", "token": f"{name}-token-0123456789", **fields}
            for name, fields in TOKENS.items()
        ]
        path = tmp_path / "tokens.json"
        path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
        server, port = booking_grpc.create_server(
            pair.ctx, pair.booking_engine, security=Security(TokenStore.load(path))
        )
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield pair, booking_pb2_grpc.BookingServiceStub(channel)
        finally:
            channel.close()
            server.stop(None)


def _visited(pair: Pair, n: int, region: str, expert: str) -> str:
    """A firm of `region` whose order `expert` visited, finding one hazard: the order id."""
    firm = pair.register_firm(n, name=f"测试五金{n}号厂", region=region)
    placed = pair.booking.CreateOrder(
        pair.order_request(pair.issue(firm).token, item="dust_explosion", days=(n, n + 1)),
        timeout=10,
    )
    assert placed.expert_id == expert, placed
    pair.booking.RecordVisit(ledger_visit(placed.order_id, f"台账{n}"), timeout=10)
    return placed.order_id


def test_experts_and_region_inspectors_read_only_what_is_theirs(
    reach: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    pair, stub = reach
    mine, theirs = _visited(pair, 1, HERE, "E1"), _visited(pair, 2, THERE, "E2")
    expected = {"e1": {mine}, "e2": {theirs}, "local": {mine}, "city": {mine, theirs}}
    expected["sup"] = {mine, theirs}
    for name, orders in expected.items():
        listed = stub.ListOrders(bpb.ListOrdersRequest(), metadata=_bearer(name), timeout=10)
        assert {o.order_id for o in listed.orders} == orders, name
        tickets = stub.ListTickets(bpb.ListTicketsRequest(), metadata=_bearer(name), timeout=10)
        assert {t.order_id for t in tickets.tickets} == orders, name
        for order_id in (mine, theirs):
            ask = bpb.GetOrderRequest(order_id=order_id)
            if order_id in orders:
                assert stub.GetOrder(ask, metadata=_bearer(name), timeout=10).order_id == order_id
                continue
            # answered as an id that names nothing (tickets-fixes): the caller learns
            # nothing of another's order, not even that it exists
            unknown = order_id[:-1] + ("X" if order_id[-1] != "X" else "Y")
            answers = []
            for asked in (order_id, unknown):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.GetOrder(
                        bpb.GetOrderRequest(order_id=asked), metadata=_bearer(name), timeout=10
                    )
                said = (refused.value.details() or "").replace(asked, "…")
                answers.append((refused.value.code(), said))
            assert (
                answers[0]
                == answers[1]
                == (
                    grpc.StatusCode.NOT_FOUND,
                    messages.no_such("order", "…"),
                )
            ), name


def test_stats_keep_a_region_inspector_to_its_area(
    reach: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    pair, stub = reach
    _visited(pair, 1, HERE, "E1")
    _visited(pair, 2, THERE, "E2")
    period = {"from": "2026-01-01", "to": "2030-12-31"}  # orders carry their real time

    def stats(name: str, region: str = "") -> bpb.Stats:
        ask = bpb.GetStatsRequest(region=region, **period)
        return stub.GetStats(ask, metadata=_bearer(name), timeout=10)

    whole, local, asked = stats("sup"), stats("local"), stats("sup", HERE)
    assert whole.total.bookings_received == 2
    assert local == asked and local.total.bookings_received == 1
    for outside in (THERE, "义乌市"):  # another town, and the county around its own
        with pytest.raises(grpc.RpcError) as refused:
            stats("local", outside)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.value.details() == messages.REGION_OUTSIDE_AREA


def test_stats_are_read_by_whom_may_open_the_dashboard(
    reach: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    """tickets-fixes: GetStats answered an expert's token (booking.read) the county's
    figures, which the dashboard keeps from an expert. Now the dashboard's rule
    (authz.may_open_dashboard): supervisors, inspectors (their area; an inspector's scope
    alone will do, as on the dashboard) and admins; an expert PERMISSION_DENIED."""
    pair, stub = reach
    _visited(pair, 1, HERE, "E1")
    _visited(pair, 2, THERE, "E2")
    ask = bpb.GetStatsRequest(**{"from": "2026-01-01", "to": "2030-12-31"})
    received = {
        name: stub.GetStats(ask, metadata=_bearer(name), timeout=10).total.bookings_received
        for name in ("sup", "city", "local", "insp", "admin-e1")
    }
    assert received == {"sup": 2, "city": 2, "local": 1, "insp": 1, "admin-e1": 2}
    for name in ("e1", "e2"):
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetStats(ask, metadata=_bearer(name), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert refused.value.details() == messages.STATS_FORBIDDEN, name


def _placed(pair: Pair, n: int, region: str, expert: str) -> str:
    """A firm of `region` whose order is dispatched to `expert`, not visited: its id."""
    firm = pair.register_firm(n, name=f"测试五金{n}号厂", region=region)
    placed = pair.booking.CreateOrder(
        pair.order_request(pair.issue(firm).token, item="dust_explosion", days=(n, n + 1)),
        timeout=10,
    )
    assert placed.expert_id == expert, placed
    return placed.order_id


def _unknown(record_id: str) -> str:
    """An id of the same form as `record_id` that names nothing."""
    return record_id[:-1] + ("0" if record_id[-1] != "0" else "1")


def _answers(call: Callable[[str], object], record_id: str) -> list[tuple[object, str]]:
    """What `call` is answered for `record_id` and for an id that names nothing, each
    with the id it was asked for written "…"."""
    answers = []
    for asked in (record_id, _unknown(record_id)):
        with pytest.raises(grpc.RpcError) as refused:
            call(asked)
        answers.append((refused.value.code(), (refused.value.details() or "").replace(asked, "…")))
    return answers


def test_no_one_acts_outside_their_reach_over_grpc(
    reach: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    """Review 64: an expert rechecks only what they found and records only their own
    visits; a region-limited inspector rechecks only its area's tickets; each refusal
    changes nothing (the ticket still open for whoever may). reach-notfound: each is
    answered as an id that names nothing (NOT_FOUND, the same message), where it was
    PERMISSION_DENIED, which told that the ticket or order exists."""
    pair, stub = reach
    theirs = _visited(pair, 2, THERE, "E2")
    waiting = _placed(pair, 3, THERE, "E2")  # dispatched to E2, not visited yet
    before = [
        t for t in pair.booking.ListTickets(bpb.ListTicketsRequest(), timeout=10).tickets
        if t.order_id == theirs
    ]  # fmt: skip
    ticket_id = before[0].ticket_id
    for name in ("e1", "local"):

        def recheck(asked: str, name: str = name) -> object:
            return stub.RecheckTicket(
                bpb.RecheckTicketRequest(ticket_id=asked, passed=True),
                metadata=_bearer(name),
                timeout=10,
            )

        assert (
            _answers(recheck, ticket_id)
            == [(grpc.StatusCode.NOT_FOUND, messages.no_such("ticket", "…"))] * 2
        ), name
    for order_id in (theirs, waiting):

        def visit(asked: str) -> object:
            return stub.RecordVisit(
                ledger_visit(asked, "台账x"), metadata=_bearer("e1"), timeout=10
            )

        assert (
            _answers(visit, order_id)
            == [(grpc.StatusCode.NOT_FOUND, messages.no_such("order", "…"))] * 2
        ), order_id
    after = [
        t for t in pair.booking.ListTickets(bpb.ListTicketsRequest(), timeout=10).tickets
        if t.order_id == theirs
    ]  # fmt: skip
    assert [t.status for t in after] == [t.status for t in before]
    # the order not visited is still E2's to record
    assert pair.booking.GetOrder(bpb.GetOrderRequest(order_id=waiting), timeout=10).status == (
        bpb.ORDER_STATUS_DISPATCHED
    )
