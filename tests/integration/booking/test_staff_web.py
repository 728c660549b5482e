"""The staff session cookie over plain HTTP, over TLS and behind a TLS proxy, and what a
staff page does without a session (uvicorn on real ports, httpx; the browser tests are
tests/e2e/test_staff_pages.py)."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import httpx

from services.booking.entrypoints.web import create_web_app
from services.common.http_server import start_http
from services.common.server import TlsFiles
from tests.booking_env import Pair
from tests.integration.security.certs import make_pki


def login_cookie(base: str, **client: object) -> str:
    with httpx.Client(base_url=base, **client) as http:  # type: ignore[arg-type]
        response = http.get("/staff/login")
    assert response.status_code == 200
    return response.headers["set-cookie"]


def test_cookie_flags_follow_tls(sqlite_pair: Pair, tmp_path: Path) -> None:
    pair = sqlite_pair
    app = create_web_app(pair.ctx, pair.booking_engine)
    plain = start_http(app)
    pki = make_pki(tmp_path)
    tls = start_http(app, tls=TlsFiles(pki["server"], pki["server_key"], None))
    proxied = start_http(
        create_web_app(replace(pair.ctx, public_url="https://yiwu.example"), pair.booking_engine)
    )
    try:
        header = login_cookie(f"http://127.0.0.1:{plain.port}")
        assert "staff_session=" in header and "HttpOnly" in header
        assert "SameSite=lax" in header and "Path=/" in header
        assert "Secure" not in header and "Max-Age" not in header
        # the request came over TLS
        header = login_cookie(
            f"https://127.0.0.1:{tls.port}", verify=ssl.create_default_context(cafile=pki["ca"])
        )
        assert "Secure" in header
        # plain HTTP behind a TLS proxy: --public-url https://…
        assert "Secure" in login_cookie(f"http://127.0.0.1:{proxied.port}")
    finally:
        for server in (plain, tls, proxied):
            server.stop()


def test_pages_without_a_session_go_to_the_login(sqlite_pair: Pair) -> None:
    http = start_http(create_web_app(sqlite_pair.ctx, sqlite_pair.booking_engine))
    base = f"http://127.0.0.1:{http.port}"
    try:
        with httpx.Client(base_url=base, follow_redirects=False) as client:
            for path in ("/staff", "/staff/tickets", "/staff/visits", "/staff/tickets/T1"):
                response = client.get(path)
                assert response.status_code == 303, path
                assert response.headers["location"] == "/staff/login"
            client.cookies.set("staff_session", "made-up")
            assert client.get("/staff/tickets").status_code == 303
            # a session that has ended (or never was): the login page says so
            refused = client.post("/staff/tickets/T1", data={"result": "pass"})
            assert refused.status_code == 303
            assert refused.headers["location"] == "/staff/login?ended=1"
    finally:
        http.stop()
