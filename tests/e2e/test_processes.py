"""Both services as an operator runs them: two processes, tokens, real ports. The booking
service's own background worker delivers a finding to the rules service, the phone page
answers, and SIGTERM stops both cleanly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import httpx

from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.booking_env import ledger_visit
from tests.e2e.procs import Proc, free_port, serve_rules
from tests.support import profile, uscc

TOKENS = {
    "admin": "proc-admin-0123456789abc",
    "booking": "proc-booking-0123456789a",
    "writer": "proc-writer-0123456789ab",
}


def test_two_processes_the_worker_delivers_and_sigterm_stops_both(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "token": TOKENS["admin"],
                        "caller": "admin",
                        "scopes": ["booking.admin", "booking.read"],
                    },
                    {
                        "token": TOKENS["booking"],
                        "caller": "booking-service",
                        "scopes": ["rules.read", "rules.evaluate", "rules.write", "rules.contact"],
                    },
                    {
                        "token": TOKENS["writer"],
                        "caller": "enforcement",
                        "scopes": ["rules.write", "rules.read"],
                    },
                ]
            }
        )
    )
    rules = serve_rules(f"sqlite:///{tmp_path / 'rules.db'}", tokens)
    http_port = free_port()
    booking = Proc(
        [
            "services.booking",
            "--log-json",
            "serve",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            f"127.0.0.1:{http_port}",
            "--db",
            f"sqlite:///{tmp_path / 'booking.db'}",
            "--rules",
            f"127.0.0.1:{rules.ready['port']}",
            "--rules-token",
            TOKENS["booking"],
            "--tokens",
            str(tokens),
            "--public-url",
            f"http://127.0.0.1:{http_port}",
            "--qr-keys",
            str(tmp_path / "qr-keys.json"),
            "--new-qr-keys",
        ],
        "booking service listening",
    )
    try:
        writer = (("authorization", f"Bearer {TOKENS['writer']}"),)
        admin = (("authorization", f"Bearer {TOKENS['admin']}"),)
        with (
            grpc.insecure_channel(f"127.0.0.1:{rules.ready['port']}") as rc,
            grpc.insecure_channel(f"127.0.0.1:{booking.ready['grpc_port']}") as bc,
        ):
            rstub = rules_pb2_grpc.RulesServiceStub(rc)
            bstub = booking_pb2_grpc.BookingServiceStub(bc)
            rstub.UpsertEnterprise(
                rpb.UpsertEnterpriseRequest(
                    profile=profile_from_json(profile(1, name="进程测试企业"))
                ),
                metadata=writer,
                timeout=10,
            )
            issued = bstub.IssueQrCode(
                bpb.IssueQrCodeRequest(enterprise_id=uscc(1)), metadata=admin, timeout=10
            )
            assert issued.url.startswith(f"http://127.0.0.1:{http_port}/q/")
            page = httpx.get(issued.url, timeout=20)
            assert page.status_code == 200 and "进程测试企业" in page.text
            slots = [f"{d} AM" for d in _days_ahead(2)]
            bstub.UpsertExpert(
                bpb.UpsertExpertRequest(
                    expert=bpb.Expert(
                        expert_id="E1",
                        name="专家",
                        domains=["fire_crowded"],
                        regions=["稠城街道"],
                        slots=slots,
                        max_visits_per_day=2,
                        active=True,
                    )
                ),
                metadata=admin,
                timeout=10,
            )
            placed = bstub.CreateOrder(
                bpb.CreateOrderRequest(
                    qr_token=issued.token,
                    item_codes=["fire_safety"],
                    preferred_slots=slots,
                    contact_name="测",
                    contact_phone="13812345678",
                    idempotency_key="k",
                ),
                timeout=10,
            )
            visit = bstub.RecordVisit(
                ledger_visit(placed.order_id, "无台账"), metadata=admin, timeout=10
            )
            hazard_id = visit.tickets[0].ticket_id
            deadline = time.monotonic() + 30  # nobody calls deliver: the worker must
            found: list[str] = []
            while time.monotonic() < deadline and hazard_id not in found:
                status = rstub.GetEnterpriseStatus(
                    rpb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)),
                    metadata=writer,
                    timeout=10,
                )
                found = [h.hazard_id for h in status.profile.hazards]
                time.sleep(0.2)
            assert hazard_id in found
    finally:
        codes = (booking.stop(), rules.stop())
    assert codes == (0, 0)


def _days_ahead(count: int) -> list[str]:
    """The next `count` days after today where the service lives (Asia/Shanghai)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    start = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return [(start + timedelta(days=d)).isoformat() for d in range(1, count + 1)]
