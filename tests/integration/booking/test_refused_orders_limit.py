"""Refused CreateOrder calls are limited per QR token (review 48 N6), over gRPC and the
phone page, with the limits `serve` gives its context (cli._context): a client sending
invalid orders without end cost parsing and lookups each. Refusals count against a limit
of their own ("20 at once, then 60 an hour"), not against the order limit: a firm that
mistyped keeps its whole quota. Past it (review 60 F1) a call that fails the checks
needing no database is refused by them, unread; a valid one is still taken: whoever holds
the poster's token cannot stop the firm's orders, and the firm's own session is never
under the limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import structlog
from sqlalchemy import func, select

from services.booking.adapters.orm import orders
from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.cli import _context, _parser
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer.ports import BookingContext
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.http_server import start_http
from tests.booking_env import Pair
from tests.support import RULESETS

BURST = 20  # refused calls a token may make at once (cli.REFUSED_ORDERS_PER_QR_TOKEN)


def served(pair: Pair, tmp_path: Path) -> BookingContext:
    """The pair's context with every limiter `serve` builds for its own."""
    args = _parser().parse_args(
        [
            "serve",
            "--menu", str(RULESETS / "menu.yaml"),
            "--regions", str(RULESETS / "regions.yaml"),
            "--qr-keys", str(tmp_path / "keys.json"), "--new-qr-keys",
        ]
    )  # fmt: skip
    ctx = _context(args)
    ctx.rules.close()  # type: ignore[attr-defined]
    limiters = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name.endswith("limiter")}
    return replace(pair.ctx, **limiters)


@pytest.fixture
def stub(pair: Pair, tmp_path: Path) -> Iterator[booking_pb2_grpc.BookingServiceStub]:
    server, port = booking_grpc.create_server(served(pair, tmp_path), pair.booking_engine)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield booking_pb2_grpc.BookingServiceStub(channel)
    finally:
        server.stop(None)


def _stored(pair: Pair) -> int:
    with pair.booking_engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(orders)).scalar_one())


def _refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _code(call: Any) -> grpc.StatusCode:
    return _refusal(call).code()


def _spend(pair: Pair, stub: booking_pb2_grpc.BookingServiceStub, token: str) -> None:
    """A stranger with the poster's token: the refused-call limit spent by empty forms."""
    for n in range(BURST):
        empty = bpb.CreateOrderRequest(qr_token=token, idempotency_key=f"x{n}")
        assert _code(lambda e=empty: stub.CreateOrder(e, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )


def test_strangers_invalid_calls_never_stop_the_firms_valid_order(
    pair: Pair, stub: booking_pb2_grpc.BookingServiceStub
) -> None:
    """Review 60 F1: 20 invalid calls with a firm's public QR token refused every call of
    that token, the firm's valid orders included, for as long as a stranger sent one more
    a minute. Past the limit an invalid call is still refused (by its own error, nothing
    looked up), and a valid order goes through under the order limit."""
    token = pair.issue(pair.register_firm(81)).token
    _spend(pair, stub, token)
    more = bpb.CreateOrderRequest(qr_token=token, idempotency_key="x-more")
    refused = _refusal(lambda: stub.CreateOrder(more, timeout=10))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT  # its own error, as before
    forged = pair.order_request(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), key="f")
    assert _code(lambda: stub.CreateOrder(forged, timeout=10)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    taken = stub.CreateOrder(pair.order_request(token, key="good"), timeout=10)
    assert taken.order_id
    again = stub.CreateOrder(pair.order_request(token, key="good"), timeout=10)
    assert again.order_id == taken.order_id  # a repeat answered with its order
    assert _stored(pair) == 1


def test_past_the_limit_an_invalid_call_is_refused_unread(
    pair: Pair, stub: booking_pb2_grpc.BookingServiceStub
) -> None:
    """What the limit still bounds: within it an invalid call is looked up (its key may
    have taken an order: a repeat is answered with that order, other content with
    ALREADY_EXISTS); past it, a call that fails the checks needing no database is refused
    by them, its key not looked up."""
    token = pair.issue(pair.register_firm(85)).token
    stub.CreateOrder(pair.order_request(token, key="used"), timeout=10)
    mistyped = pair.order_request(token, key="used", phone="1381234567")
    assert _code(lambda: stub.CreateOrder(mistyped, timeout=10)) == (
        grpc.StatusCode.ALREADY_EXISTS  # looked up: the key took another order
    )
    _spend(pair, stub, token)
    refused = _refusal(lambda: stub.CreateOrder(mistyped, timeout=10))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT  # not looked up
    assert "contact_phone" in refused.details()


def test_a_signed_in_firm_is_neither_counted_nor_cut_short(
    pair: Pair, stub: booking_pb2_grpc.BookingServiceStub
) -> None:
    """The firm's own session (its SMS code) is never under the token's refused-call
    limit: its refusals do not count, and strangers' refusals change nothing of its calls."""
    firm = pair.register_firm(86)
    token = pair.issue(firm).token
    session = pair.sign_in(firm, token)
    stub.CreateOrder(pair.order_request(token, key="used"), timeout=10)
    mistyped = pair.order_request(token, key="used", phone="1381234567")
    for n in range(BURST + 5):  # the firm's own typos: not counted
        bad = pair.order_request(token, key=f"typo{n}", phone="1381234567")
        assert _code(lambda b=bad: stub.CreateOrder(b, timeout=10, metadata=session)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    assert _code(lambda: stub.CreateOrder(mistyped, timeout=10)) == (
        grpc.StatusCode.ALREADY_EXISTS  # the token's limit not spent: looked up
    )
    _spend(pair, stub, token)  # now a stranger spends it
    assert _code(lambda: stub.CreateOrder(mistyped, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert _code(lambda: stub.CreateOrder(mistyped, timeout=10, metadata=session)) == (
        grpc.StatusCode.ALREADY_EXISTS  # the firm's session: looked up as ever
    )
    taken = stub.CreateOrder(pair.order_request(token, key="new"), timeout=10, metadata=session)
    assert taken.order_id and taken.contact_phone  # the firm's own view


def test_a_token_running_dry_is_logged_once(
    pair: Pair, stub: booking_pb2_grpc.BookingServiceStub
) -> None:
    token = pair.issue(pair.register_firm(87)).token
    with structlog.testing.capture_logs() as logged:
        _spend(pair, stub, token)
        _spend(pair, stub, token)
    dry = [e for e in logged if e["event"].startswith("refused order calls")]
    assert len(dry) == 1
    assert dry[0]["log_level"] == "warning" and token not in str(dry[0])


def test_a_firm_that_mistyped_keeps_its_whole_order_quota(
    pair: Pair, stub: booking_pb2_grpc.BookingServiceStub
) -> None:
    token = pair.issue(pair.register_firm(83)).token
    for n in range(3):  # mistyped, sent again, mistyped again
        bad = pair.order_request(token, key=f"typo{n}", phone="1381234567")
        assert _refusal(lambda b=bad: stub.CreateOrder(b, timeout=10)).code() == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    for n in range(10):  # the order limit's "10 at once", every one of them
        stub.CreateOrder(pair.order_request(token, key=f"k{n}"), timeout=10)
    spent = _refusal(lambda: stub.CreateOrder(pair.order_request(token, key="k10"), timeout=10))
    assert spent.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert spent.details() == messages.TOO_MANY_ORDERS
    assert _stored(pair) == 10


def test_the_page_takes_the_firms_order_past_the_limit(pair: Pair, tmp_path: Path) -> None:
    """The phone page: past the token's refused-call limit a bad form still shows its
    own errors beside its fields (400, everything typed kept), and a valid one is taken."""
    token = pair.issue(pair.register_firm(84)).token
    http = start_http(create_web_app(served(pair, tmp_path), pair.booking_engine))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=20) as page:

            def post(key: str, phone: str) -> httpx.Response:
                data = {
                    "item_codes": ["fire_safety"],
                    "preferred_slots": [pair.slot(1), pair.slot(2)],
                    "contact_name": "冯师傅",
                    "contact_phone": phone,
                    "note": "仓库在二楼",
                    "idempotency_key": key,
                }
                return page.post(f"/q/{token}/order", data=data, follow_redirects=False)

            for n in range(BURST):
                assert post(f"bad{n}", "1321234567").status_code == 400
            mistyped = post("bad-more", "1321234567")
            good = post("good", "13212345678")
    finally:
        http.stop()
    assert mistyped.status_code == 400
    assert messages.BAD_PHONE in mistyped.text  # beside its field
    assert 'value="冯师傅"' in mistyped.text and "仓库在二楼" in mistyped.text
    assert good.status_code == 303
    assert _stored(pair) == 1
