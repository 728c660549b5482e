"""Every RFC 3339 timestamp either service answers carries its zone offset (issue 14.5):
here the rules history, on SQLite and PostgreSQL (SQLite hands back naive datetimes;
the offset must not depend on the database)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from tests.integration.conftest import upsert
from tests.support import profile, uscc

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def assert_rfc3339(text: str) -> None:
    assert RFC3339.match(text), f"{text!r} is not RFC 3339 with a zone offset"
    instant = datetime.fromisoformat(text)
    assert instant.utcoffset() == timedelta(hours=8), "instants are shown in Asia/Shanghai"


def test_rules_history_items_carry_their_offset(register_stub: RulesServiceStub) -> None:
    upsert(register_stub, profile(1))
    status = register_stub.GetEnterpriseStatus(
        rpb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
    )
    assert status.history
    for item in status.history:
        assert_rfc3339(item.recorded_at)
