"""The dashboard's figures (service_layer/dashboard_views.py) on the in-memory register."""

from __future__ import annotations

from datetime import date

from services.booking.domain.rules_service import RulesUnavailable, WhitelistSize
from services.booking.domain.tickets import Ticket
from services.booking.service_layer import dashboard_views
from services.booking.service_layer.dashboard_views import MonthHazards
from tests.unit.booking.fakes import FakeRules, context


def ticket(n: int, found: str, verified: str | None) -> Ticket:
    t = Ticket(
        id=f"T{n}",
        order_id="B1",
        visit_id="V1",
        enterprise_id="x",
        clause_ref="GEN:ledger",
        severity="general",
        description="d",
        found_on=date.fromisoformat(found),
        due_on=date.fromisoformat(found),
        status="verified" if verified else "open",
        expert_id="E1",
        created_at=None,  # type: ignore[arg-type]
    )
    t.verified_on = date.fromisoformat(verified) if verified else None
    return t


def test_found_and_eliminated_are_counted_in_their_own_months() -> None:
    months = dashboard_views.month_keys(date(2025, 12, 5), date(2026, 2, 1))
    assert months == ["2025-12", "2026-01", "2026-02"]
    got = dashboard_views.hazards_by_month(
        [
            ticket(1, "2025-12-20", "2026-01-05"),
            ticket(2, "2026-01-02", None),
            ticket(3, "2025-11-30", "2025-12-02"),  # found before the period
            ticket(4, "2026-02-01", "2026-03-01"),  # eliminated after it
        ],
        months,
    )
    assert got == [
        MonthHazards("2025-12", 1, 1),
        MonthHazards("2026-01", 1, 1),
        MonthHazards("2026-02", 1, 0),
    ]


def test_domains_without_a_verified_finding_are_left_out() -> None:
    figures = {"hazards_eliminated": 4, "on_time_rate": 0.75, "median_days_to_fix": 12.0}
    empty = {"hazards_eliminated": 0, "on_time_rate": 0.0, "median_days_to_fix": 0.0}
    got = dashboard_views.fix_by_domain([("gas", figures), ("any", empty)])
    assert [(d.domain, d.eliminated, d.on_time_rate, d.median_days) for d in got] == [
        ("gas", 4, 0.75, 12.0)
    ]


def test_the_white_list_is_none_while_rules_cannot_answer() -> None:
    rules = FakeRules()
    ctx = context(rules)
    rules.sizes = [WhitelistSize("2026-05", 3, 1, 0)]
    assert dashboard_views.whitelist(ctx, "", ["2026-05"]) == rules.sizes
    rules.failure = RulesUnavailable("UNAVAILABLE")
    assert dashboard_views.whitelist(ctx, "", ["2026-05"]) is None
