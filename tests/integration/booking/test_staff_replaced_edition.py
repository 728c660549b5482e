"""The staff ticket page says a GB 35181-2017 clause's edition was replaced, in the words
the firm's ticket page uses (guidance.edition_replaced), and says nothing of a clause
whose edition is in force (uvicorn on a real port, httpx, a real rules server)."""

from __future__ import annotations

import html
from collections.abc import Iterator

import pytest

from services.booking.domain import messages
from services.booking.entrypoints.web import create_web_app
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.http_server import start_http
from tests.booking_env import Pair, ledger_visit
from tests.integration.booking.test_staff_fixes import Web, login

FIRE_2017 = "GB 35181-2017"
FIRE_2025 = "GB 35181-2025《重大火灾隐患判定规则》"  # rulesets/fire35181.yaml successor


@pytest.fixture
def web(sqlite_pair: Pair) -> Iterator[Web]:
    http = start_http(create_web_app(sqlite_pair.ctx, sqlite_pair.booking_engine))
    try:
        yield Web(sqlite_pair, http)
    finally:
        http.stop()


def _superseded(page: str) -> list[str]:
    start = '<p class="superseded">'
    return [html.unescape(part.split("</p>", 1)[0]) for part in page.split(start)[1:]]


def test_the_staff_ticket_page_says_a_replaced_edition_as_the_firms_page_does(
    web: Web,
) -> None:
    pair = web.pair
    firm = pair.register_firm(
        67, name="义乌市稠州日用品店", industry="commerce_trade", venues=["shop"]
    )
    token = pair.issue(firm).token
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    placed = pair.booking.CreateOrder(pair.order_request(token, key="staff-ed"), timeout=10)
    fire = bpb.FindingInput(
        clause_ref="FIRE35181:6.2", severity=bpb.SEVERITY_MAJOR, description="仓库与宿舍同楼"
    )
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(order_id=placed.order_id, findings=[fire]), timeout=10
    )
    other = pair.booking.RecordVisit(
        ledger_visit(
            pair.booking.CreateOrder(
                pair.order_request(token, key="staff-ed-2", days=(3, 4)), timeout=10
            ).order_id,
            "未建立隐患排查治理台账",
        ),
        timeout=10,
    )
    web.user("wangfang", "inspector", region="稠城街道")
    said = messages.EDITION_SUPERSEDED.format(edition=FIRE_2017, successor=FIRE_2025)
    with web.client() as c:
        assert login(c, "wangfang").status_code == 303
        page = c.get(f"/staff/tickets/{visit.tickets[0].ticket_id}")
        assert page.status_code == 200, page.text[:300]
        assert _superseded(page.text) == [said]
        # a clause of a standard in force: nothing said
        page = c.get(f"/staff/tickets/{other.tickets[0].ticket_id}")
        assert page.status_code == 200, page.text[:300]
        assert _superseded(page.text) == []
