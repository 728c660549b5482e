"""The supervisors' dashboard on the demo city, in a real browser (Chromium, JavaScript off).

Both services are seeded as `make run` seeds them (services/common/demo_city.py through
each service's seeder) on temporary SQLite databases; the rules service serves the
white-list history over gRPC. Every chart must be drawn (SVG marks) with non-empty data
in its table, the CSV downloads must carry the tables' numbers, the page must fit a
360 px phone and use a desk's width, and with the rules service gone the white-list
chart says so while the rest still renders. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import text

from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.domain.headline import about
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer import demo as booking_demo
from services.common import demo_city
from services.common.http_server import start_http
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server as rules_grpc
from services.rules.service_layer import demo as rules_demo
from services.rules.service_layer.unit_of_work import UnitOfWork as RulesUnitOfWork
from tests.booking_env import running_pair
from tests.e2e.test_phone_page import fits_phone
from tests.support import RULESETS

CHARTS = ("overdue-by-region", "hazards-by-month", "fix-by-domain", "whitelist")
# the marks pygal draws for data: bars (rect), line points (circle)
MARKS = "rect.reactive, circle.reactive, path.reactive"

pytestmark = pytest.mark.slow


def table(page: Page, key: str) -> list[list[str]]:
    """The chart's table, header row first, as the page shows it (hidden in <details>)."""
    rows = page.locator(f"#table-{key} tr")
    return [
        [c.strip() for c in rows.nth(i).locator("th, td").all_text_contents()]
        for i in range(rows.count())
    ]


def test_the_dashboard_draws_every_chart_of_the_demo_city(browser: Browser, tmp_path: Path) -> None:
    with running_pair(tmp_path) as pair:
        city = demo_city.city(pair.clock.today)
        rules_ctx = replace(rules_grpc.context_from(load_rulebook(RULESETS)), today=pair.clock)
        added = rules_demo.seed_city(lambda: RulesUnitOfWork(pair.rules_engine), rules_ctx, city)
        assert added == len(city.firms)
        seeded = booking_demo.seed_city(SqlUnitOfWork(pair.booking_engine), pair.ctx, city)
        assert seeded is not None and seeded.orders == len(city.orders)
        # seeding again adds nothing, in either service
        assert (
            rules_demo.seed_city(lambda: RulesUnitOfWork(pair.rules_engine), rules_ctx, city) == 0
        )
        assert booking_demo.seed_city(SqlUnitOfWork(pair.booking_engine), pair.ctx, city) is None

        # both services agree: every booking firm is in the rules register (the events'
        # replay in rules takes a minute: tests/integration/test_demo_city_seeding.py)
        with pair.booking_engine.connect() as b, pair.rules_engine.connect() as r:
            cards = {row[0] for row in b.execute(text("SELECT enterprise_id FROM firm_cards"))}
            known = {row[0] for row in r.execute(text("SELECT enterprise_id FROM firms"))}
        assert len(cards) == len({o.enterprise_id for o in city.orders}) and cards <= known

        http = start_http(create_web_app(pair.ctx, pair.booking_engine, limits=None))
        base = f"http://127.0.0.1:{http.port}"
        desk = browser.new_context(
            viewport={"width": 1280, "height": 900}, java_script_enabled=False, locale="zh-CN"
        )
        phone = browser.new_context(
            viewport={"width": 360, "height": 740}, java_script_enabled=False, locale="zh-CN"
        )
        try:
            page = desk.new_page()
            page.goto(f"{base}/dashboard")
            page.screenshot(path=str(tmp_path / "dashboard-desk.png"), full_page=True)

            answered = [o for o in city.orders if not o.cancelled]
            firms = {o.enterprise_id for o in city.orders if o.visited}
            eliminated = [t for t in city.tickets() if t.verified_on is not None]
            assert page.locator("#headline").inner_text() == messages.HEADLINE.format(
                answered=len(answered), firms=len(firms), eliminated=about(len(eliminated))
            )
            tables = {}
            for key in CHARTS:
                section = page.locator(f"section#{key}")
                assert section.locator("svg.chart").count() >= 1, key
                assert section.locator(f"svg.chart :is({MARKS})").count() > 0, key
                rows = table(page, key)
                assert len(rows) > 1, key  # a header and data
                assert any(float(c.rstrip("%")) > 0 for r in rows[1:] for c in r[1:]), key
                assert page.locator(f"#table-{key} caption").count() == 1
                assert page.locator(f"#table-{key} th[scope=col]").count() == len(rows[0])
                assert page.locator(f"#table-{key} th[scope=row]").count() == len(rows) - 1
                tables[key] = rows
            # the months of the year, and the white list from rules
            assert len(tables["hazards-by-month"]) - 1 >= 12
            assert len(tables["whitelist"]) - 1 >= 12
            overdue = sum(int(r[1]) for r in tables["overdue-by-region"][1:])
            assert overdue == sum(
                1 for t in city.tickets() if t.verified_on is None and t.due_on < city.today
            )
            # a desk's width is used: two charts side by side
            first = page.locator("section#overdue-by-region").bounding_box()
            second = page.locator("section#hazards-by-month").bounding_box()
            assert first and second and abs(first["y"] - second["y"]) < 1

            # each CSV holds the table's numbers, for Excel (BOM, UTF-8)
            with httpx.Client(base_url=base, timeout=20) as client:
                for key in CHARTS:
                    got = client.get(f"/dashboard/{key}.csv")
                    assert got.status_code == 200
                    assert got.headers["content-type"] == "text/csv; charset=utf-8"
                    assert got.headers["content-disposition"].startswith("attachment; filename=")
                    assert got.content.startswith(b"\xef\xbb\xbf")
                    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
                    assert rows == tables[key], key

            # a street: its charts, its overdue list
            page.goto(f"{base}/dashboard?region=稠城街道")
            street = table(page, "overdue-by-region")
            assert [r[0] for r in street[1:]] == ["稠城街道"]
            assert page.locator("#overdue tbody tr").count() == int(street[1][1])

            # a phone: one column, nothing wider than the screen
            small = phone.new_page()
            small.goto(f"{base}/dashboard")
            small.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
            assert fits_phone(small)
            assert small.locator("svg.chart").count() == page.locator("svg.chart").count()

            # the rules service goes away: the white-list chart says so, the rest renders
            pair.rules_server.stop(None)
            page.goto(f"{base}/dashboard")
            page.screenshot(path=str(tmp_path / "dashboard-no-rules.png"), full_page=True)
            assert messages.WHITELIST_UNAVAILABLE in page.locator("section#whitelist").inner_text()
            assert page.locator("section#whitelist svg").count() == 0
            for key in CHARTS[:3]:
                assert page.locator(f"section#{key} svg.chart :is({MARKS})").count() > 0
        finally:
            desk.close()
            phone.close()
            http.stop()
