"""Every RFC 3339 timestamp either service answers carries its zone offset (issue 14.5):
here booking's orders, transitions and QR codes, on SQLite and PostgreSQL (SQLite hands
back naive datetimes; the offset must not depend on the database)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def assert_rfc3339(text: str) -> None:
    assert RFC3339.match(text), f"{text!r} is not RFC 3339 with a zone offset"
    instant = datetime.fromisoformat(text)
    assert instant.utcoffset() == timedelta(hours=8), "instants are shown in Asia/Shanghai"


def test_booking_timestamps_carry_their_offset(pair: Pair) -> None:
    firm = pair.register_firm(1, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    qr = pair.issue(firm)
    placed = pair.booking.CreateOrder(
        pair.order_request(qr.token, item="dust_explosion"), timeout=10
    )
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(
            order_id=placed.order_id,
            findings=[
                bpb.FindingInput(
                    clause_ref="GM2023:11(3)", severity=bpb.SEVERITY_MAJOR, description="无泄爆"
                )
            ],
        ),
        timeout=10,
    )
    read = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=placed.order_id), timeout=10)
    stamps = [qr.issued_at, placed.created_at, read.created_at]
    stamps += [t.at for t in [*placed.history, *read.history, *visit.tickets[0].history]]
    assert len(stamps) >= 6
    for stamp in stamps:
        assert_rfc3339(stamp)
    assert pair.rules_status(firm).history
    for item in pair.rules_status(firm).history:
        assert_rfc3339(item.recorded_at)
