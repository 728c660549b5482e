"""Review 54 D6 over real HTTP (uvicorn on a real port, httpx, real servers, SQLite): the
firm's forms (order, proof, sign-in, cancel: every POST under /q/) are refused from
another site. A post carrying the firm's session cookie whose Origin, or without one
whose Referer, names another site (evil.example, a sibling subdomain) is 403
with the Chinese error page and changes nothing. A post from the site's own origin (the
request's host, or `--public-url`'s behind a proxy) goes through, and so does one with
neither header (old browsers, privacy settings). The browser's own posts:
tests/e2e/test_firm_cancel.py (Chromium sends Origin on every form post)."""

from __future__ import annotations

import httpx
import pytest

from services.booking.domain import messages
from services.booking.entrypoints.web.middleware import from_this_site
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.integration.booking.test_web import Site, site  # noqa: F401

EVIL = {"origin": "https://evil.example"}
FOREIGN = [
    EVIL,
    {"origin": "http://other.phone.test"},  # a sibling subdomain of --public-url's
    {"referer": "https://evil.example/page"},  # no Origin: the Referer decides
    {"origin": "null", "referer": "https://evil.example/page"},  # opaque: the Referer decides
    {"origin": "https://evil.example", "referer": "http://phone.test/q/x"},  # Origin first
]


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 403
    title, text = messages.PAGE_FOREIGN_POST
    assert title in answer.text and text in answer.text
    assert answer.headers["x-frame-options"] == "DENY"  # Guard's headers, as on any page


def _base(web: Site) -> str:
    return str(web.client.base_url).rstrip("/")


def _order_form(web: Site, token: str) -> dict[str, object]:
    _, key = web.form(token)
    return {
        "item_codes": ["dust_explosion"],
        "preferred_slots": [web.pair.slot(2), web.pair.slot(3, "PM")],
        "contact_name": "王经理",
        "contact_phone": "13812345678",
        "idempotency_key": key,
    }


def _status(web: Site, order_id: str) -> int:
    order = web.pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    return int(order.status)


def test_a_cancel_post_from_another_site_is_refused_with_the_session_cookie(
    site: Site,  # noqa: F811
) -> None:
    firm, token = site.firm(71)
    site.sign_in(firm, token)
    order_id = site.placed(token)
    path = f"/q/{token}/orders/{order_id}/cancel"
    for headers in FOREIGN:
        _refused(site.client.post(path, data={"reason": "恶作剧"}, headers=headers))
        assert _status(site, order_id) == bpb.ORDER_STATUS_DISPATCHED, headers
    own = site.client.post(path, data={"reason": "不需要了"}, headers={"origin": _base(site)})
    assert own.status_code == 303
    assert _status(site, order_id) == bpb.ORDER_STATUS_CANCELLED


def test_the_other_firm_forms_are_refused_from_another_site_too(
    site: Site,  # noqa: F811
) -> None:
    firm, token = site.firm(72)
    site.pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone="13912345678"), timeout=10
    )
    _refused(site.client.post(f"/q/{token}/sign-in", data={"phone": "13912345678"}, headers=EVIL))
    assert site.pair.sms.sent == []  # no code sent
    site.sign_in(firm, token)
    _refused(site.client.post(f"/q/{token}/order", data=_order_form(site, token), headers=EVIL))
    listed = site.pair.booking.ListOrders(bpb.ListOrdersRequest(enterprise_id=firm), timeout=10)
    assert list(listed.orders) == []
    ticket_id = site.visit(site.placed(token))
    proof = {"note": "已整改"}
    photo = {"photo": ("fixed.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")}
    _refused(
        site.client.post(f"/q/{token}/tickets/{ticket_id}", data=proof, files=photo, headers=EVIL)
    )
    ticket = site.pair.booking.ListTickets(bpb.ListTicketsRequest(enterprise_id=firm), timeout=10)
    assert [t.status for t in ticket.tickets] == [bpb.TICKET_STATUS_OPEN]
    _refused(site.client.post(f"/q/{token}/sign-out", headers=EVIL))


def test_own_origin_public_url_or_no_header_at_all_goes_through(site: Site) -> None:  # noqa: F811
    firm, token = site.firm(73)
    site.sign_in(firm, token)
    cases = [
        {},  # neither header: old browsers, privacy settings
        {"origin": "null"},  # opaque, no Referer: in-app web views, pages from before
        {"origin": "http://phone.test"},  # --public-url's origin (behind a proxy)
        {"referer": f"{_base(site)}/q/{token}/order"},  # no Origin, the site's own Referer
        {"origin": _base(site)},  # the request's own origin
    ]
    for headers in cases:
        form = _order_form(site, token)
        answer = site.client.post(f"/q/{token}/order", data=form, headers=headers)
        assert answer.status_code == 303, (headers, answer.text[:200])
        cancel = f"{answer.headers['location']}/cancel"
        assert site.client.post(cancel, data={}, headers=headers).status_code == 303


@pytest.mark.parametrize(
    ("origin", "referer", "own"),
    [
        ("", "", True),
        ("https://phone.test", "", False),  # another host
        ("https://Booking.Example", "", True),  # --public-url's, any case
        ("https://booking.example:443", "", True),  # its default port spelled out
        ("http://booking.example", "", True),  # TLS ended at a proxy: the scheme is not compared
        ("https://booking.example:8443", "", False),
        ("http://127.0.0.1:8080", "", True),  # the request's own host and port
        ("https://127.0.0.1:8080", "", True),
        ("http://127.0.0.1:8081", "", False),
        ("null", "", True),  # opaque and no Referer: let through, SameSite guards
        ("null", "https://evil.example/x", False),  # opaque: the Referer decides
        ("null", "https://booking.example/q/t", True),
        ("", "null", False),
        ("", "https://booking.example/q/t/order", True),
        ("", "https://booking.example.evil/q/t", False),
        ("", "not a url", False),
        ("https://[bad", "", False),
        ("file://", "", False),
    ],
)
def test_from_this_site(origin: str, referer: str, own: bool) -> None:
    """The request came to 127.0.0.1:8080 over http; --public-url is https://booking.example/."""
    assert (
        from_this_site(origin, referer, "http", "127.0.0.1:8080", "https://booking.example/") == own
    )


def test_a_chinese_public_url_matches_the_punycode_origin_browsers_send() -> None:
    """Review 55 D1: browsers send an internationalised host in its ASCII (punycode) form."""
    public = "https://义乌安全.中国/"
    sent = "https://" + "义乌安全.中国".encode("idna").decode("ascii")
    assert from_this_site(sent, "", "http", "10.0.0.5:8080", public)
    assert not from_this_site("https://xn--evil.example", "", "http", "10.0.0.5:8080", public)
