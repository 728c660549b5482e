"""The firm's and the staff's session cookies are Secure for a public URL whose scheme is
https in any case (`HTTPS://…`, `Https://…`): a scheme is case-insensitive, and a TLS
proxy in front of a server that sees plain HTTP is what such a URL says (review 64
leftovers; uvicorn on a real port, httpx, SQLite)."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from services.booking.entrypoints.web import create_web_app
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.http_server import start_http
from tests.booking_env import Pair

MOBILE = "13912345678"


@pytest.mark.parametrize("public_url", ["HTTPS://yiwu.example", "Https://yiwu.example"])
def test_cookies_are_secure_for_an_https_public_url_in_any_case(
    sqlite_pair: Pair, public_url: str
) -> None:
    pair = sqlite_pair
    firm = pair.register_firm(1, high_risk_domains=["dust_explosion"])
    token = pair.issue(firm).token
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    ctx = replace(pair.ctx, public_url=public_url)
    http = start_http(create_web_app(ctx, pair.booking_engine))
    try:
        base = f"http://127.0.0.1:{http.port}"
        with httpx.Client(base_url=base, timeout=20, follow_redirects=False) as client:
            assert client.post(f"/q/{token}/sign-in", data={"phone": MOBILE}).status_code == 200
            done = client.post(
                f"/q/{token}/sign-in/code",
                data={"phone": MOBILE, "code": pair.sms.last_code(MOBILE)},
            )
            assert done.status_code == 303
            firm_cookie = done.headers["set-cookie"]
            assert "firm_session=" in firm_cookie and "Secure" in firm_cookie
            out = client.post(f"/q/{token}/sign-out")
            assert out.status_code == 303
            assert "firm_session=" in out.headers["set-cookie"]
            assert "Secure" in out.headers["set-cookie"]
            staff = client.get("/staff/login").headers["set-cookie"]
            assert "staff_session=" in staff and "Secure" in staff
    finally:
        http.stop()
