"""The dashboard's CSV downloads over HTTP: the same access as the page, the same filters
and their errors, and a clear 503 for the white list while rules cannot answer."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from services.booking.domain import messages
from services.booking.entrypoints.web import create_web_app
from services.common.auth import TokenStore
from services.common.http_server import start_http
from tests.booking_env import running_pair

STAFF = "staff-token-0123456789"


def test_csv_downloads_are_guarded_and_checked_like_the_page(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {"tokens": [{"token": STAFF, "caller": "supervisor", "scopes": ["booking.read"]}]}
        )
    )
    with running_pair(tmp_path) as pair:
        app = create_web_app(pair.ctx, pair.booking_engine, staff=TokenStore.load(tokens))
        http = start_http(app)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=20) as client:
                assert client.get("/dashboard/hazards-by-month.csv").status_code == 401
                staff = {"authorization": f"Bearer {STAFF}"}
                got = client.get("/dashboard/hazards-by-month.csv", headers=staff)
                assert got.status_code == 200
                assert got.headers["content-type"] == "text/csv; charset=utf-8"
                assert "filename*=UTF-8''" in got.headers["content-disposition"]
                lines = got.content.decode("utf-8-sig").splitlines()
                assert lines[0] == "月份,发现隐患（处）,整改销号（处）"
                assert len(lines) == 1 + 13  # a year and a day: thirteen calendar months
                assert client.get("/dashboard/nothing.csv", headers=staff).status_code == 404
                bad_day = client.get(
                    "/dashboard/hazards-by-month.csv", params={"from": "yesterday"}, headers=staff
                )
                assert bad_day.status_code == 400
                page = client.get("/dashboard", params={"from": "yesterday"}, headers=staff)
                assert page.status_code == 400 and messages.BAD_DATE in page.text
                ages = client.get("/dashboard", params={"from": "1949-01-01"}, headers=staff)
                assert ages.status_code == 400 and "最长60个月" in ages.text
                backwards = {"from": "2026-05-01", "to": "2026-04-01"}
                assert client.get("/dashboard", params=backwards, headers=staff).status_code == 400
                five_years = {"from": "2021-07-01", "to": "2026-06-01"}
                assert client.get("/dashboard", params=five_years, headers=staff).status_code == 200
                nowhere = client.get(
                    "/dashboard/overdue-by-region.csv", params={"region": "稠城"}, headers=staff
                )
                assert nowhere.status_code == 400 and "没有这个地区" in nowhere.text
                fine = client.get("/dashboard/whitelist.csv", headers=staff)
                assert fine.status_code == 200
                pair.rules_server.stop(None)
                gone = client.get("/dashboard/whitelist.csv", headers=staff)
                assert gone.status_code == 503 and gone.text == messages.WHITELIST_UNAVAILABLE
                page = client.get("/dashboard", headers=staff)
                assert page.status_code == 200 and messages.WHITELIST_UNAVAILABLE in page.text
        finally:
            http.stop()
