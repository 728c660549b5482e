"""Refused CreateOrder calls are limited per QR token (review 48 N6), over gRPC and the
phone page, with the limits `serve` gives its context (cli._context): a client sending
invalid orders without end was never slowed (only orders actually written count against
the order limit, "10 at once, then 20 an hour"), while each call still cost parsing and
lookups. Refusals now count against a limit of their own ("20 at once, then 60 an
hour"), not against the order limit: a firm that mistyped keeps its whole quota."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import orders
from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.cli import _context, _parser
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer.ports import BookingContext
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
            "--qr-keys", str(tmp_path / "keys.json"),
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


def test_a_token_sending_invalid_orders_is_slowed_down(
    pair: Pair, stub: booking_pb2_grpc.BookingServiceStub
) -> None:
    token = pair.issue(pair.register_firm(81)).token
    other = pair.issue(pair.register_firm(82)).token
    for n in range(BURST):  # a phone one digit short: refused, counted
        bad = pair.order_request(token, key=f"bad{n}", phone="1381234567")
        assert _refusal(lambda b=bad: stub.CreateOrder(b, timeout=10)).code() == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    bad = pair.order_request(token, key="bad-more", phone="1381234567")
    slowed = _refusal(lambda: stub.CreateOrder(bad, timeout=10))
    assert slowed.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert slowed.details() == messages.TOO_MANY_REFUSED_ORDERS
    trailers = dict(slowed.trailing_metadata() or ())  # type: ignore[attr-defined]
    assert int(trailers["retry-after"]) >= 1
    # while it is spent, the token's valid order waits too: refused before any work
    good = pair.order_request(token, key="good")
    assert _refusal(lambda: stub.CreateOrder(good, timeout=10)).code() == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert _stored(pair) == 0
    # another firm's token is not slowed by it
    assert stub.CreateOrder(pair.order_request(other, key="good"), timeout=10).order_id


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


def test_the_page_shows_the_refusal_with_the_form_kept(pair: Pair, tmp_path: Path) -> None:
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
            refused = post("good", "13212345678")
    finally:
        http.stop()
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert messages.TOO_MANY_REFUSED_ORDERS in refused.text
    assert 'value="冯师傅"' in refused.text and "仓库在二楼" in refused.text
    assert _stored(pair) == 0
