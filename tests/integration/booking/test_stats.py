"""GetStats: the figures the city reports quote, by region, domain and month."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest

from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, ledger_visit

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _order(pair: Pair, n: int, region: str, item: str) -> tuple[str, str]:
    firm = pair.register_firm(n, region=region)
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(
        bpb.CreateOrderRequest(
            qr_token=token,
            item_codes=[item],
            preferred_slots=[pair.slot(1), pair.slot(2)],
            contact_name="郑",
            contact_phone="13312345678",
            idempotency_key="k",
        ),
        timeout=10,
    )
    return token, placed.order_id


def _visit(pair: Pair, order_id: str, count: int) -> list[str]:
    descriptions = [f"问题{i}" for i in range(count)]
    visit = pair.booking.RecordVisit(ledger_visit(order_id, *descriptions), timeout=10)
    return [t.ticket_id for t in visit.tickets]


def _fix(pair: Pair, token: str, ticket_id: str) -> None:
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=token, photo=bpb.Photo(content=PNG)
        ),
        timeout=10,
    )
    pair.booking.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True), timeout=10
    )


def test_figures_by_region_domain_and_month(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    pair.expert("E1", ["fire_crowded"], ["稠城街道", "江东街道"])
    token_a, order_a = _order(pair, 1, "稠城街道", "fire_safety")  # visited, 2 hazards
    token_b, order_b = _order(pair, 2, "江东街道", "fire_safety")  # visited, 1 hazard
    _order(pair, 3, "江东街道", "confined_space")  # nobody to send: not answered
    a1, _never_fixed = _visit(pair, order_a, 2)
    (b1,) = _visit(pair, order_b, 1)
    pair.clock.today += timedelta(days=10)
    _fix(pair, token_a, a1)  # 10 days, on time
    pair.clock.today += timedelta(days=25)
    _fix(pair, token_b, b1)  # 35 days, late (deadline +30)
    # orders carry their real creation time; the clock above only moves deadlines
    period = {"from": "2026-01-01", "to": "2030-12-31"}
    stats = pair.booking.GetStats(bpb.GetStatsRequest(**period), timeout=10)
    t = stats.total
    assert (t.bookings_received, t.bookings_answered, t.firms_served) == (3, 2, 2)
    assert (t.hazards_found, t.hazards_eliminated) == (3, 2)
    assert t.on_time_rate == pytest.approx(0.5)
    assert t.median_days_to_fix == pytest.approx(22.5)
    assert t.overdue_open == 1  # a2: 35 days on, never fixed
    regions = {b.key: b.figures for b in stats.by_region}
    assert regions["江东街道"].bookings_received == 2 and regions["江东街道"].bookings_answered == 1
    assert regions["稠城街道"].hazards_found == 2
    domains = {b.key: b.figures.bookings_received for b in stats.by_domain}
    assert domains == {"fire_crowded": 2, "confined_space": 1}
    this_month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    assert [(b.key, b.figures.bookings_received) for b in stats.by_month] == [(this_month, 3)]
    only = pair.booking.GetStats(bpb.GetStatsRequest(region="稠城街道", **period), timeout=10).total
    assert (only.bookings_received, only.hazards_found) == (1, 2)


def test_bad_period_is_invalid_argument(sqlite_pair: Pair) -> None:
    with pytest.raises(grpc.RpcError) as info:
        sqlite_pair.booking.GetStats(bpb.GetStatsRequest(**{"from": "2026-13-01"}), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stats_filter_on_a_listed_township_or_county_only(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    _order(pair, 1, "稠城街道", "fire_safety")
    _order(pair, 2, "城厢街道", "fire_safety")
    period = {"from": "2026-01-01", "to": "2030-12-31"}

    def received(region: str) -> int:
        stats = pair.booking.GetStats(bpb.GetStatsRequest(region=region, **period), timeout=10)
        return stats.total.bookings_received

    assert received("330782001") == received("稠城街道") == received("义乌市") == 1
    assert received("330109") == 1 and received("") == 2
    with pytest.raises(grpc.RpcError) as info:
        received("Chouchheng street!!")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ListRegions" in (info.value.details() or "")


def test_expert_regions_are_listed_townships_stored_by_name(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    expert = pair.expert("E1", ["fire_crowded"], ["330782001", "佛堂镇", "稠城街道"])
    assert list(expert.regions) == ["稠城街道", "佛堂镇"]
    with pytest.raises(grpc.RpcError) as info:
        pair.expert("E2", ["fire_crowded"], ["稠城街道", "Chouchheng street!!"])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expert.regions[1]" in (info.value.details() or "")
    listed = pair.booking.ListExperts(bpb.ListExpertsRequest(region="330782"), timeout=10)
    assert [e.expert_id for e in listed.experts] == ["E1"]
    with pytest.raises(grpc.RpcError) as info:
        pair.booking.ListExperts(bpb.ListExpertsRequest(region="nowhere"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
