"""An order's idempotency key and its QR token's order limit, over gRPC and the phone
page, on SQLite and PostgreSQL (reviews 47a F3/F4/N5, 47b F6/F7):

- the order limit ("10 at once, then 20 an hour") is charged only for an order that is
  written: refused forms and repeated keys cost nothing, and a repeat of an
  acknowledged order's key gets that order even when the limit is spent;
- the same key with other content is ALREADY_EXISTS (the page: a form error linking to
  the first order), the same content the same order;
- a key with a control character is refused as a field (the page: a form error), never
  a 500 on PostgreSQL nor stored on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import orders
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer.orders import create_order
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.errors import ValidationError
from services.common.http_server import start_http
from services.common.ratelimit import Rate, RateLimiter
from tests.booking_env import Pair
from tests.integration.conftest import violations

LIMIT = Rate(per_second=1 / 3600, burst=2)  # two orders, then one an hour


def _stored(pair: Pair) -> int:
    with pair.booking_engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(orders)).scalar_one())


@pytest.fixture
def limited(pair: Pair) -> Iterator[booking_pb2_grpc.BookingServiceStub]:
    """A booking server on the pair's database whose QR tokens may order LIMIT."""
    ctx = replace(pair.ctx, order_limiter=RateLimiter(LIMIT))
    server, port = booking_grpc.create_server(ctx, pair.booking_engine)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield booking_pb2_grpc.BookingServiceStub(channel)
    finally:
        server.stop(None)


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()  # type: ignore[no-any-return]


def test_refused_orders_cost_no_order_limit_and_a_repeat_gets_its_order(
    pair: Pair, limited: booking_pb2_grpc.BookingServiceStub
) -> None:
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token = pair.issue(pair.register_firm(1)).token
    for n in range(5):  # a phone one digit short: refused, nothing written, nothing spent
        bad = pair.order_request(token, key=f"bad{n}", phone="1381234567")
        assert _code(lambda b=bad: limited.CreateOrder(b, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    first = limited.CreateOrder(pair.order_request(token, key="a"), timeout=10)
    assert limited.CreateOrder(pair.order_request(token, key="a"), timeout=10).order_id == (
        first.order_id
    )  # a repeat costs nothing either
    limited.CreateOrder(pair.order_request(token, key="b", days=(3, 4)), timeout=10)
    third = pair.order_request(token, key="c", days=(5, 6))
    assert _code(lambda: limited.CreateOrder(third, timeout=10)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    # spent: a retry of an acknowledged order still gets that order, even days later
    # when its half-days have left the booking window
    again = limited.CreateOrder(pair.order_request(token, key="a"), timeout=10)
    assert again.order_id == first.order_id
    pair.clock.today += timedelta(days=3)
    later = limited.CreateOrder(pair.order_request(token, key="a", days=(-2, -1)), timeout=10)
    assert later.order_id == first.order_id
    assert _stored(pair) == 2


def test_the_same_key_with_other_content_is_already_exists(pair: Pair) -> None:
    token = pair.issue(pair.register_firm(2)).token
    first = pair.booking.CreateOrder(pair.order_request(token, key="k"), timeout=10)
    same = pair.order_request(token, key="k", phone="138 1234-5678")  # as the form reads it
    same.preferred_slots.reverse()
    assert pair.booking.CreateOrder(same, timeout=10).order_id == first.order_id
    edits: list[dict[str, Any]] = [
        {"note": "二车间"},
        {"contact_name": "另一人"},
        {"contact_phone": "13900000000"},
        {"item_codes": ["fire_safety", "first_lesson"]},
        {"preferred_slots": [pair.slot(1), pair.slot(3)]},
        {"clause_refs": ["GEN:ledger"]},
    ]
    for edit in edits:
        request = pair.order_request(token, key="k")
        for name, value in edit.items():
            field = getattr(request, name)
            if isinstance(value, list):
                del field[:]
                field.extend(value)
            else:
                setattr(request, name, value)
        with pytest.raises(grpc.RpcError) as info:
            pair.booking.CreateOrder(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS, edit
        assert first.order_id in (info.value.details() or "")
    assert _stored(pair) == 1


def test_a_key_with_a_control_character_is_refused_by_the_use_case(pair: Pair) -> None:
    """Every entrypoint's check (the gRPC interceptor refuses it before; the page does
    not have one): nothing reaches the database."""
    token = pair.issue(pair.register_firm(3)).token
    form = {
        "item_codes": ["fire_safety"],
        "preferred_slots": [pair.slot(1), pair.slot(2)],
        "contact_name": "联系人",
        "contact_phone": "13812345678",
    }
    for key in ("k\x00", "k\x1b", "\x7fk"):
        with pytest.raises(ValidationError) as info:
            create_order(SqlUnitOfWork(pair.booking_engine), pair.ctx, token, form, key)
        assert [v.field for v in info.value.violations] == ["idempotency_key"]
    request = pair.order_request(token, key="k\x00")
    with pytest.raises(grpc.RpcError) as refused:
        pair.booking.CreateOrder(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations(refused.value)
    assert _stored(pair) == 0


# -- the phone page


@pytest.fixture
def page(pair: Pair) -> Iterator[httpx.Client]:
    """The phone page with the default web limits, its orders limited to LIMIT."""
    ctx = replace(pair.ctx, order_limiter=RateLimiter(LIMIT))
    http = start_http(create_web_app(ctx, pair.booking_engine))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=20) as client:
            yield client
    finally:
        http.stop()


def _post(client: httpx.Client, pair: Pair, token: str, key: str, **fields: Any) -> httpx.Response:
    data = {
        "item_codes": ["fire_safety"],
        "preferred_slots": [pair.slot(1), pair.slot(2)],
        "contact_name": "冯师傅",
        "contact_phone": "13212345678",
        "note": "仓库在二楼",
        "idempotency_key": key,
        **fields,
    }
    return client.post(f"/q/{token}/order", data=data, follow_redirects=False)


def test_the_pages_order_limit_spares_refused_forms_and_keeps_the_form(
    pair: Pair, page: httpx.Client
) -> None:
    token = pair.issue(pair.register_firm(4)).token
    for n in range(6):  # typing mistakes: form errors, not spent
        assert _post(page, pair, token, f"bad{n}", contact_phone="1321234567").status_code == 400
    first = _post(page, pair, token, "a")
    assert first.status_code == 303
    assert _post(page, pair, token, "a").headers["location"] == first.headers["location"]
    # other half-days: other orders (the same ones again would show the first order)
    later = [pair.slot(3), pair.slot(4)]
    assert _post(page, pair, token, "b", preferred_slots=later).status_code == 303
    refused = _post(
        page, pair, token, "c", note="第三单的备注", preferred_slots=[pair.slot(2), pair.slot(3)]
    )
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "该二维码预约太频繁" in refused.text  # a form-level error
    assert 'value="冯师傅"' in refused.text and "第三单的备注" in refused.text
    assert 'name="idempotency_key" value="c"' in refused.text  # sent again later: one order
    assert f'value="{pair.slot(3)}" checked' in refused.text
    # a double tap of the acknowledged order still lands on it
    assert _post(page, pair, token, "a").headers["location"] == first.headers["location"]
    assert _stored(pair) == 2


def test_the_page_answers_a_key_reused_with_other_content_with_a_link(
    pair: Pair, page: httpx.Client
) -> None:
    token = pair.issue(pair.register_firm(5)).token
    first = _post(page, pair, token, "k")
    assert first.status_code == 303
    edited = _post(page, pair, token, "k", note="改过的备注")
    assert edited.status_code == 409
    assert "这份预约已经提交过" in edited.text and "改过的备注" in edited.text
    link = re.search(r'<a href="([^"]+)" id="earlier-order">', edited.text)
    assert link and link.group(1) == first.headers["location"]
    fresh = re.search(r'name="idempotency_key" value="([^"]+)"', edited.text)
    assert fresh and fresh.group(1) != "k"  # sent again: a new order, as the firm means
    # (on other half-days: the same ones again would show the open order, order_entry.py)
    other = [pair.slot(3), pair.slot(4)]
    again = _post(page, pair, token, fresh.group(1), note="改过的备注", preferred_slots=other)
    assert again.status_code == 303 and again.headers["location"] != first.headers["location"]
    assert _stored(pair) == 2


def test_a_control_character_in_the_pages_key_is_a_form_error(
    pair: Pair, page: httpx.Client
) -> None:
    token = pair.issue(pair.register_firm(6)).token
    for key in ("k\x00", "k\x1b"):
        response = _post(page, pair, token, key)
        assert response.status_code == 400, response.text
        assert "页面已过期" in response.text and 'value="冯师傅"' in response.text
        fresh = re.search(r'name="idempotency_key" value="([^"]+)"', response.text)
        assert fresh and "\x00" not in fresh.group(1) and len(fresh.group(1)) >= 32
    assert _stored(pair) == 0


def test_ids_with_control_characters_on_the_firms_pages_are_not_found(
    pair: Pair, page: httpx.Client
) -> None:
    """Review 47a F4: a NUL in a /q/ path id reached PostgreSQL (HTTP 500); an id that
    cannot be one names no record: the 404 page, as on the staff pages."""
    firm = pair.register_firm(7)
    token = pair.issue(firm).token
    phone = "13912345678"
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=phone), timeout=10
    )
    assert page.post(f"/q/{token}/sign-in", data={"phone": phone}).status_code == 200
    code = pair.sms.last_code(phone)
    done = page.post(f"/q/{token}/sign-in/code", data={"phone": phone, "code": code})
    assert done.status_code == 303
    placed = _post(page, pair, token, "k")
    assert page.get(placed.headers["location"]).status_code == 200
    for bad in ("B%00", "T%00x", "P%1B"):
        for path in (f"/q/{token}/orders/{bad}", f"/q/{token}/tickets/{bad}"):
            response = page.get(path)
            assert response.status_code == 404, (path, response.text[:200])
            assert "没有找到" in response.text
        assert page.get(f"/q/{token}/photos/{bad}").status_code == 404
        upload = page.post(
            f"/q/{token}/tickets/{bad}",
            data={"note": "已整改"},
            files={"photo": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")},
        )
        assert upload.status_code == 404
    assert page.get(f"/q/{token}/orders/NOSUCH").status_code == 404
