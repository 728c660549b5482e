"""Behind a reverse proxy the phone page counts clients by the address the proxy names
(X-Forwarded-For), and only a proxy named in --trusted-proxies is believed (review 64
F6: every client had the proxy's address, so one stranger's 20 wrong passwords refused
every staff member's sign-in for a quarter-hour)."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from services.booking.entrypoints import cli
from services.common.http_server import start_http


async def _who(request: Request) -> PlainTextResponse:
    client = request.client.host if request.client else ""
    return PlainTextResponse(f"{client} {request.url.scheme}")


def _ask(trusted: str) -> str:
    server = start_http(Starlette(routes=[Route("/", _who)]), trusted_proxies=trusted)
    try:
        answer = httpx.get(
            f"http://127.0.0.1:{server.port}/",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            timeout=10,
        )
        return answer.text
    finally:
        server.stop()


def test_a_trusted_proxy_names_the_client_and_its_scheme() -> None:
    assert _ask("127.0.0.1") == "203.0.113.9 https"


@pytest.mark.parametrize("trusted", ["", "192.0.2.1"])
def test_anyone_else_s_forwarded_header_is_not_read(trusted: str) -> None:
    assert _ask(trusted) == "127.0.0.1 http"


def test_the_booking_server_takes_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKING_TRUSTED_PROXIES", raising=False)
    parser = cli._parser()
    args = parser.parse_args(["serve", "--trusted-proxies", "10.0.0.0/8,127.0.0.1"])
    assert args.trusted_proxies == "10.0.0.0/8,127.0.0.1"
    assert parser.parse_args(["serve"]).trusted_proxies == ""
