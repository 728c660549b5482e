"""Review 52 F1: the firm cancels its own order on the phone page, over real HTTP
(uvicorn on a real port, httpx, real rules and booking servers, SQLite).

The signed-in firm's order page links a confirmation page (/q/<token>/orders/<id>/cancel)
whose form posts the cancellation, with an optional reason, through CancelOrder's use
case; the freed half-day goes to an order that waited for it. Refused: a visitor without
the firm's session (sent to sign in; also what a cross-site post is, its SameSite=Lax
cookie left behind; a post from another origin with the cookie:
test_firm_posts_origin.py), another firm's order, an order already visited, a reason
with a control character or too long; a post sent again shows the order cancelled once.
The order form's 409 ("先取消原预约") links the cancel page. The browser flow:
tests/e2e/test_firm_cancel.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from services.booking.domain import messages
from services.booking.entrypoints.web import create_web_app
from services.booking.entrypoints.web.limits import WebLimits
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.http_server import start_http
from services.common.ratelimit import Rate
from tests.booking_env import running_pair
from tests.integration.booking.test_pages_polish import shown
from tests.integration.booking.test_web import Site, site  # noqa: F401


def status_of(web: Site, order_id: str) -> bpb.Order:
    return web.pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)


def cancel(web: Site, token: str, order_id: str, reason: str = "") -> httpx.Response:
    return web.client.post(f"/q/{token}/orders/{order_id}/cancel", data={"reason": reason})


def cancellations(order: bpb.Order) -> list[str]:
    return [h.reason for h in order.history if h.to_status == "cancelled"]


def test_the_signed_in_firm_cancels_its_order_and_the_half_day_goes_to_a_waiting_order(
    site: Site,  # noqa: F811
) -> None:
    web = site
    # one visit a day, on day 2 only: the second firm's order waits for the first's half-day
    web.pair.expert("E1", ["dust_explosion"], ["稠城街道"], days=range(2, 3), max_visits_per_day=1)
    firm, token = web.firm(81, name="甲企业五金厂")
    _, other = web.firm(82)
    web.sign_in(firm, token)
    order_id = web.placed(token)
    waiting = web.pair.booking.CreateOrder(
        web.pair.order_request(other, item="dust_explosion", days=(2, 3)), timeout=10
    )
    assert status_of(web, order_id).status == bpb.ORDER_STATUS_DISPATCHED
    assert waiting.status == bpb.ORDER_STATUS_SUBMITTED
    page = web.client.get(f"/q/{token}/orders/{order_id}").text
    assert f'href="/q/{token}/orders/{order_id}/cancel"' in page  # the cancel control
    confirm = web.client.get(f"/q/{token}/orders/{order_id}/cancel")
    assert confirm.status_code == 200
    assert messages.CANCEL_WARNING in confirm.text and "专家E1" in shown(confirm.text)
    assert f'action="/q/{token}/orders/{order_id}/cancel"' in confirm.text
    done = cancel(web, token, order_id, "  已自行整改，\r\n不需要了 ")
    assert done.status_code == 303
    assert done.headers["location"] == f"/q/{token}/orders/{order_id}?cancelled=1"
    after = web.client.get(done.headers["location"]).text
    assert messages.ORDER_CANCELLED in after and 'id="order-status">已取消<' in after
    assert 'id="cancel-order"' not in after  # nothing left to cancel
    kept = status_of(web, order_id)
    assert kept.status == bpb.ORDER_STATUS_CANCELLED
    assert cancellations(kept) == ["已自行整改，\n不需要了"]  # trimmed, as typed
    assert [h.actor for h in kept.history if h.to_status == "cancelled"] == ["firm"]
    moved = status_of(web, waiting.order_id)  # the freed half-day, redispatched at once
    assert moved.status == bpb.ORDER_STATUS_DISPATCHED and moved.slot == web.pair.slot(2)


def test_without_the_firms_session_the_page_offers_sign_in_and_nothing_is_cancelled(
    site: Site,  # noqa: F811
) -> None:
    web = site
    firm, token = web.firm(83)
    order_id = web.placed(token)  # a passer-by's phone: no session
    page = web.client.get(f"/q/{token}/orders/{order_id}").text
    back = quote(f"/q/{token}/orders/{order_id}/cancel", safe="/")
    assert f'/q/{token}/sign-in?next={back}"' in page and 'id="cancel-order"' not in page
    assert web.pair.ctx.hotline in shown(page)
    for answer in (
        web.client.get(f"/q/{token}/orders/{order_id}/cancel"),
        cancel(web, token, order_id, "恶作剧"),  # also a cross-site post (no Lax cookie)
    ):
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/q/{token}/sign-in?next=" + quote(
            f"/q/{token}/orders/{order_id}/cancel", safe=""
        )
    assert status_of(web, order_id).status == bpb.ORDER_STATUS_DISPATCHED
    # signing in from there comes back to the cancel page
    web.pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone="13912345678"), timeout=10
    )
    web.client.post(f"/q/{token}/sign-in", data={"phone": "13912345678"})
    code = web.pair.sms.last_code("13912345678")
    signed = web.client.post(
        f"/q/{token}/sign-in/code",
        data={"phone": "13912345678", "code": code, "next": f"/q/{token}/orders/{order_id}/cancel"},
    )
    assert signed.headers["location"] == f"/q/{token}/orders/{order_id}/cancel"


def test_another_firms_order_cannot_be_cancelled(site: Site) -> None:  # noqa: F811
    web = site
    firm, token = web.firm(84, name="甲企业五金厂")
    _, other = web.firm(85, name="乙企业纺织厂")
    theirs = web.pair.booking.CreateOrder(
        web.pair.order_request(other, item="dust_explosion", days=(2, 3)), timeout=10
    )
    web.sign_in(firm, token)
    for answer in (
        web.client.get(f"/q/{token}/orders/{theirs.order_id}/cancel"),
        cancel(web, token, theirs.order_id),
    ):
        assert answer.status_code == 404  # as an id that names nothing
        assert "乙企业" not in answer.text
    # through the other firm's own code, firm A's session is no one's: sign in as B
    through = cancel(web, other, theirs.order_id)
    assert through.status_code == 303 and through.headers["location"].startswith(
        f"/q/{other}/sign-in?next="
    )
    assert status_of(web, theirs.order_id).status == bpb.ORDER_STATUS_DISPATCHED


def test_a_visited_order_is_not_cancelled_and_the_page_says_why(site: Site) -> None:  # noqa: F811
    web = site
    firm, token = web.firm(86)
    web.sign_in(firm, token)
    order_id = web.placed(token)
    web.visit(order_id)
    page = web.client.get(f"/q/{token}/orders/{order_id}").text
    assert 'id="cancel-order"' not in page
    refused = cancel(web, token, order_id, "晚了")
    assert refused.status_code == 409
    assert messages.CANCEL_NOT_OPEN.format(status="专家已上门") in refused.text
    assert "<textarea" not in refused.text  # no form to send again
    assert status_of(web, order_id).status == bpb.ORDER_STATUS_VISITED


def test_a_cancel_posted_again_shows_the_order_cancelled_once(site: Site) -> None:  # noqa: F811
    web = site
    firm, token = web.firm(87)
    web.sign_in(firm, token)
    order_id = web.placed(token)
    first = cancel(web, token, order_id, "不需要了")
    again = cancel(web, token, order_id, "不需要了")  # a double tap, Back and send again
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"]
    assert cancellations(status_of(web, order_id)) == ["不需要了"]
    form = web.client.get(f"/q/{token}/orders/{order_id}/cancel")  # a stale link
    assert messages.CANCEL_NOT_OPEN.format(status="已取消") in form.text


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("不需要\x07了", messages.CONTROL_CHARACTERS),
        ("字" * 501, messages.CANCEL_REASON_TOO_LONG.format(n=500)),
    ],
)
def test_a_bad_reason_comes_back_beside_its_field_and_cancels_nothing(
    site: Site,  # noqa: F811
    reason: str,
    said: str,
) -> None:
    web = site
    firm, token = web.firm(88)
    web.sign_in(firm, token)
    order_id = web.placed(token)
    answer = cancel(web, token, order_id, reason)
    assert answer.status_code == 400
    field = re.search(r'id="f-reason">(.*?)</div>', answer.text, re.S)
    assert field and said in field.group(1)
    assert reason in html.unescape(field.group(1))  # kept as typed
    assert status_of(web, order_id).status == bpb.ORDER_STATUS_DISPATCHED
    fine = cancel(web, token, order_id, "字" * 500)
    assert fine.status_code == 303


def test_the_order_forms_cancel_first_answer_links_the_cancel_page(site: Site) -> None:  # noqa: F811
    web = site
    firm, token = web.firm(89)
    web.sign_in(firm, token)
    order_id = web.placed(token)
    _, key = web.form(token)
    edited = web.order(token, key, contact_phone="13900001111")  # Back, another mobile
    assert edited.status_code == 409 and "请先取消原预约" in edited.text
    link = re.search(r'href="([^"]+)" id="cancel-earlier">([^<]+)<', edited.text)
    assert link and link.group(1) == f"/q/{token}/orders/{order_id}/cancel"
    assert link.group(2) == messages.CANCEL_EARLIER_ORDER.format(order_id=order_id)
    assert web.client.get(link.group(1)).status_code == 200
    assert cancel(web, token, order_id).status_code == 303
    assert web.order(token, key, contact_phone="13900001111").status_code == 303  # anew


@pytest.fixture
def limited_site(tmp_path: Path) -> Iterator[Site]:
    """`site` with a per-QR-token post limit of 3 (the two sign-in posts; a signed-in
    firm's posts count per session, with the same limit: web/limits.py)."""
    limits = WebLimits(
        per_address=Rate.per_minute(1000, burst=1000),
        posts_per_address=Rate.per_minute(1000, burst=1000),
        posts_per_token=Rate(per_second=1 / 3600, burst=3),
    )
    with running_pair(tmp_path) as pair:
        http = start_http(create_web_app(pair.ctx, pair.booking_engine, limits=limits))
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        base = f"http://127.0.0.1:{http.port}"
        with httpx.Client(base_url=base, timeout=20, follow_redirects=False) as client:
            try:
                yield Site(pair, http, client, [])
            finally:
                http.stop()


def test_a_cancel_over_the_post_limit_keeps_the_reason_and_cancels_nothing(
    limited_site: Site,
) -> None:
    web = limited_site
    firm, token = web.firm(90)
    web.sign_in(firm, token)
    order_id = web.placed(token)
    for _ in range(2):  # the session's other posts: its budget spent
        assert web.client.post(f"/q/{token}/order", data={}).status_code == 400
    answer = cancel(web, token, order_id, "限流时的原因")
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) >= 1
    wait = answer.headers["Retry-After"]
    assert messages.CANCEL_POSTS_TOO_FAST.format(seconds=wait) in answer.text
    assert "限流时的原因" in answer.text
    assert status_of(web, order_id).status == bpb.ORDER_STATUS_DISPATCHED
