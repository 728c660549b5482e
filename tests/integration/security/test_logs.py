"""No secrets or personal data in logs: bearer tokens, QR tokens and phone numbers never
appear, even when a caller puts them where they do not belong."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import grpc
import structlog

from services.common import logging as common_logging
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.auth import TokenStore
from services.common.security import Security
from services.rules.entrypoints import grpc_server as rules_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.booking_env import running_pair
from tests.support import profile

BEARER = "tok-secret-bearer-0123456789"
PHONE = "13987654321"


def test_redact_masks_tokens_and_phones() -> None:
    event = common_logging.redact(
        None,
        "info",
        {
            "event": f"calling with Bearer {BEARER} for {PHONE}",
            "token": "abc",
            "contact_phone": PHONE,
            "qr_token": "k1.x.y.z",
            "n": 5,
        },
    )
    assert BEARER not in json.dumps(event) and PHONE not in json.dumps(event)
    assert event["contact_phone"] == "***" and event["n"] == 5
    assert "139****4321" in event["event"]


def test_no_token_or_phone_in_the_logs_of_real_calls(tmp_path: Path, rulebook) -> None:  # type: ignore[no-untyped-def]
    sink = io.StringIO()
    common_logging.configure("debug", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sink))
    try:
        tokens = tmp_path / "tokens.json"
        tokens.write_text(
            json.dumps(
                {"tokens": [{"token": BEARER, "caller": "auditor", "scopes": ["rules.evaluate"]}]}
            )
        )
        server, port = rules_grpc.create_server(
            rulebook, security=Security(TokenStore.load(tokens))
        )
        server.start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            stub.Evaluate(
                rpb.EvaluateRequest(profile=profile_from_json(profile(1))),
                metadata=(("authorization", f"Bearer {BEARER}"),),
                timeout=10,
            )
            with contextlib.suppress(
                grpc.RpcError
            ):  # a phone number where a name should be, and a bad token
                stub.Evaluate(
                    rpb.EvaluateRequest(
                        profile=profile_from_json(profile(2, name=PHONE, employees=-1))
                    ),
                    metadata=(("authorization", f"Bearer {BEARER}x"),),
                    timeout=10,
                )
        server.stop(None)
        with running_pair(tmp_path) as pair:
            firm = pair.register_firm(3)
            pair.expert("E1", ["fire_crowded"], ["稠城街道"])
            qr = pair.issue(firm).token
            with grpc.insecure_channel(f"127.0.0.1:{pair.booking_port}") as channel:
                booking = booking_pb2_grpc.BookingServiceStub(channel)
                booking.CreateOrder(
                    bpb.CreateOrderRequest(
                        qr_token=qr,
                        item_codes=["fire_safety"],
                        preferred_slots=[pair.slot(1), pair.slot(2)],
                        contact_name="吴",
                        contact_phone=PHONE,
                        idempotency_key="k",
                    ),
                    timeout=10,
                )
                with contextlib.suppress(
                    grpc.RpcError
                ):  # an invalid order: the error message must not echo the phone
                    booking.CreateOrder(
                        bpb.CreateOrderRequest(
                            qr_token=qr,
                            item_codes=["nope"],
                            preferred_slots=[],
                            contact_name=PHONE,
                            contact_phone=PHONE + "0",
                            idempotency_key="k2",
                        ),
                        timeout=10,
                    )
    finally:
        common_logging.configure("info")
    text = sink.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(e.get("caller") == "auditor" for e in lines)
    assert any(e.get("method", "").endswith("CreateOrder") for e in lines)
    assert BEARER not in text
    assert qr not in text and qr.split(".")[-1] not in text
    assert PHONE not in text
