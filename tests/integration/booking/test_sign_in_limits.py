"""The firm's sign-in under abuse (review of issue 11, defects 2-4), real servers:

* the code limit holds under parallel requests spread over two booking replicas on one
  database, SQLite and PostgreSQL (the firm's card row is locked while counting);
* made-up numbers from a poster's QR token never use up the owner's codes;
* a failing or missing SMS backend gives the owner's number the same answer as an
  unknown number's (no INTERNAL, no 500), and the failure is logged with the number
  masked.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import grpc
import httpx
import pytest
import structlog
from sqlalchemy import func, select

from services.booking.adapters.orm import firm_sign_in_codes
from services.booking.domain.sign_in import CODES_PER_NUMBER_PER_HOUR
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer.ports import SmsFailed
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.db import make_engine
from services.common.http_server import start_http
from tests.booking_env import Pair

MOBILE = "13912345678"
STRANGER = "13700000000"
Stub = booking_pb2_grpc.BookingServiceStub


def _firm_with_mobile(pair: Pair, n: int = 1) -> str:
    firm = pair.register_firm(n, high_risk_domains=["dust_explosion"])
    token = pair.issue(firm).token
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    return token


def _ask(stub: Stub, token: str, phone: str) -> str:
    try:
        stub.RequestSignInCode(
            bpb.RequestSignInCodeRequest(qr_token=token, phone=phone), timeout=30
        )
        return "OK"
    except grpc.RpcError as exc:
        return exc.code().name


@pytest.fixture
def replicas(pair: Pair) -> Iterator[tuple[Pair, list[Stub]]]:
    """The pair's booking server and a second one with its own pool on the same database."""
    engine = make_engine(pair.booking_engine.url.render_as_string(hide_password=False))
    server, port = booking_grpc.create_server(pair.ctx, engine, max_workers=16)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pair, [pair.booking, Stub(channel)]
    server.stop(None)
    engine.dispose()


def test_parallel_requests_on_two_replicas_never_exceed_the_code_limit(
    replicas: tuple[Pair, list[Stub]],
) -> None:
    pair, stubs = replicas
    token = _firm_with_mobile(pair)
    for phone in (MOBILE, STRANGER):
        with cf.ThreadPoolExecutor(16) as pool:
            answers = Counter(pool.map(lambda i, p=phone: _ask(stubs[i % 2], token, p), range(20)))
        assert answers == {"OK": CODES_PER_NUMBER_PER_HOUR, "RESOURCE_EXHAUSTED": 15}, phone
    assert len(pair.sms.sent) == CODES_PER_NUMBER_PER_HOUR
    with pair.booking_engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(firm_sign_in_codes))
    assert rows == 2 * CODES_PER_NUMBER_PER_HOUR


def test_made_up_numbers_cannot_lock_the_owner_out(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    token = _firm_with_mobile(pair)
    for i in range(CODES_PER_NUMBER_PER_HOUR + 2):  # every address here is 127.0.0.1
        assert _ask(pair.booking, token, f"1360000000{i}") == "OK"
    assert _ask(pair.booking, token, MOBILE) == "OK"
    assert [phone for phone, _ in pair.sms.sent] == [MOBILE]


class DownSms:
    def send(self, phone: str, text: str) -> None:
        raise SmsFailed("gateway refused")


@pytest.mark.parametrize("backend", [DownSms(), None], ids=["failing", "none"])
def test_a_failing_or_missing_sms_backend_answers_alike_for_known_and_unknown(
    sqlite_pair: Pair, backend: Any
) -> None:
    pair = sqlite_pair
    token = _firm_with_mobile(pair)
    ctx = replace(pair.ctx, sms=backend)
    http = start_http(create_web_app(ctx, pair.booking_engine))
    server, port = booking_grpc.create_server(ctx, pair.booking_engine)
    server.start()
    try:
        with structlog.testing.capture_logs() as logs:
            with httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=20) as web:
                pages = {
                    phone: web.post(f"/q/{token}/sign-in", data={"phone": phone})
                    for phone in (MOBILE, STRANGER)
                }
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                calls = {phone: _ask(Stub(channel), token, phone) for phone in (MOBILE, STRANGER)}
    finally:
        http.stop()
        server.stop(None)
    assert [p.status_code for p in pages.values()] == [200, 200]
    assert pages[MOBILE].text.replace(MOBILE, "P") == pages[STRANGER].text.replace(STRANGER, "P")
    assert calls == {MOBILE: "OK", STRANGER: "OK"}
    failures = [e for e in logs if "not sent" in e["event"]]
    assert len(failures) == 2 and {e["phone"] for e in failures} == {"139****5678"}
    assert MOBILE not in repr(logs)
    assert not [e for e in logs if "sent" in e]  # no line says whether a number matched
