"""Review 52 (tickets), silent item 5: a clause the ruleset classes as MAJOR (重大事故隐患)
cannot be recorded as a GENERAL finding, over gRPC (real rules and booking servers, SQLite
and PostgreSQL) and on the expert's visit page (uvicorn, SQLite)."""

from __future__ import annotations

import re

import grpc
import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import outbox, tickets, visits
from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair
from tests.integration.booking.test_review_52_tickets import visited
from tests.integration.booking.test_staff_fixes import Web, sqlite_web  # noqa: F401
from tests.integration.booking.test_web_review_47a import expert_at_order
from tests.integration.conftest import violations


def test_a_major_clause_recorded_as_general_is_refused_and_nothing_written(pair: Pair) -> None:
    with pytest.raises(grpc.RpcError) as info:
        visited(pair, 4, severity=bpb.SEVERITY_GENERAL)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(info.value) == {"findings[0].severity": messages.FINDING_BELOW_CLAUSE}
    with pair.booking_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_a_major_clause_recorded_as_general_is_refused_next_to_its_severity(
    sqlite_web: Web,  # noqa: F811
) -> None:
    _, order_id, c, tok = expert_at_order(sqlite_web, 62)
    page = c.get(f"/staff/orders/{order_id}/visit").text
    majors = re.findall(
        r'type="checkbox" name="pick" value="([^"]+)".*?class="badge sev-major"', page, re.S
    )
    assert majors, "the firm has no MAJOR clause to cite"
    form = {"csrf": tok, "minutes_on_site": "60", "ref_0": majors[0], "desc_0": "泄爆口被封堵"}
    form["contact_confirmed"] = "1"  # the order's contact is the firm's (review 54 D2)
    answer = c.post(f"/staff/orders/{order_id}/visit", data=form | {"severity_0": "general"})
    assert answer.status_code == 400
    shown = re.search(
        r'id="severity_0".*?<p class="error" role="alert">([^<]*)<', answer.text, re.S
    )
    assert shown and shown.group(1) == messages.FINDING_BELOW_CLAUSE
    assert "泄爆口被封堵" in answer.text  # what was typed comes back
    assert sqlite_web.count(visits) == 0
    answer = c.post(f"/staff/orders/{order_id}/visit", data=form | {"severity_0": "major"})
    assert answer.status_code == 303
    assert sqlite_web.count(visits) == 1
