"""派单: eligibility, free slots, region preference, and round-robin fairness."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.booking.domain.dispatch import (
    FAIRNESS_WINDOW_DAYS,
    Candidate,
    ExpertView,
    candidates,
    first_free_slot,
    needed_domains,
)
from services.booking.domain.slots import Slot, parse_slot

FIRM = "91330782MA20000013"
REGION = "稠城街道"
ELSEWHERE = "北苑街道"
D2, D3 = date(2026, 6, 2), date(2026, 6, 3)
AM2, PM2, AM3, PM3 = Slot(D2, "AM"), Slot(D2, "PM"), Slot(D3, "AM"), Slot(D3, "PM")
ALL_SLOTS = frozenset({AM2, PM2, AM3, PM3})
ITEM_DOMAINS: dict[str, str | None] = {
    "fire_safety": "fire_crowded",
    "dust_explosion": "dust_explosion",
    "confined_space": "confined_space",
    "gas_safety": "gas",
    "hazardous_chemicals": "hazardous_chemicals",
    "warehouse_safety": "warehousing_logistics",
    "first_lesson": None,
    "standardization_coaching": None,
}


def expert(expert_id: str, **change: Any) -> ExpertView:
    base = ExpertView(
        expert_id=expert_id,
        domains=frozenset({"fire_crowded"}),
        regions=frozenset({REGION}),
        slots=ALL_SLOTS,
        max_visits_per_day=2,
        active=True,
    )
    return replace(base, **change)


def run(
    experts: Sequence[ExpertView],
    needed: frozenset[str] = frozenset({"fire_crowded"}),
    preferred: Sequence[Slot] = (AM2, PM2),
    region: str = REGION,
) -> list[Candidate]:
    return candidates(
        enterprise_id=FIRM, region=region, needed=needed, preferred=preferred, experts=experts
    )


def ids(result: list[Candidate]) -> list[str]:
    return [c.expert_id for c in result]


# ---- needed_domains ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "domains"),
    [
        (["fire_safety"], {"fire_crowded"}),
        (["fire_safety", "gas_safety", "fire_safety"], {"fire_crowded", "gas"}),
        (["first_lesson"], set()),  # no domain needed
        (["first_lesson", "standardization_coaching"], set()),
        (["first_lesson", "dust_explosion"], {"dust_explosion"}),
        ([], set()),
        (["not_on_the_menu"], set()),
    ],
)
def test_needed_domains(items: list[str], domains: set[str]) -> None:
    assert needed_domains(items, ITEM_DOMAINS) == frozenset(domains)


def test_fairness_window_is_thirty_days() -> None:
    assert FAIRNESS_WINDOW_DAYS == 30


# ---- eligibility ------------------------------------------------------------------------


def test_domains_must_cover_every_item() -> None:
    needed = frozenset({"fire_crowded", "gas"})
    experts = [
        expert("E1", domains=frozenset({"fire_crowded"})),
        expert("E2", domains=frozenset({"gas"})),
        expert("E3", domains=frozenset({"fire_crowded", "gas"})),
        expert("E4", domains=frozenset({"fire_crowded", "gas", "dust_explosion"})),
        expert("E5", domains=frozenset()),
    ]
    assert ids(run(experts, needed)) == ["E3", "E4"]


def test_items_without_a_domain_need_none() -> None:
    experts = [expert("E1", domains=frozenset()), expert("E2", domains=frozenset({"gas"}))]
    assert ids(run(experts, needed_domains(["first_lesson"], ITEM_DOMAINS))) == ["E1", "E2"]


def test_inactive_experts_are_excluded() -> None:
    assert ids(run([expert("E1", active=False), expert("E2")])) == ["E2"]
    assert run([expert("E1", active=False)]) == []


def test_conflict_of_interest_is_excluded() -> None:
    experts = [
        expert("E1", conflicts=frozenset({FIRM})),
        expert("E2", conflicts=frozenset({"91330782MA20000021"})),
    ]
    assert ids(run(experts)) == ["E2"]


def test_conflicted_local_expert_does_not_block_the_outside_one() -> None:
    experts = [
        expert("E1", conflicts=frozenset({FIRM})),
        expert("E2", regions=frozenset({ELSEWHERE})),
    ]
    assert run(experts) == [Candidate("E2", AM2)]


def test_nobody_available_gives_no_candidates() -> None:
    assert run([]) == []
    assert run([expert("E1", slots=frozenset({AM3}))]) == []


# ---- free slots -------------------------------------------------------------------------


def test_slot_must_be_offered() -> None:
    assert run([expert("E1", slots=frozenset({PM2}))]) == [Candidate("E1", PM2)]


def test_booked_slot_is_not_free() -> None:
    assert run([expert("E1", booked=frozenset({AM2}))]) == [Candidate("E1", PM2)]
    assert run([expert("E1", booked=frozenset({AM2, PM2}))]) == []


@pytest.mark.parametrize(
    ("visits_that_day", "max_per_day", "free"),
    [(0, 1, True), (1, 2, True), (1, 1, False), (2, 2, False), (3, 2, False), (0, 0, False)],
)
def test_max_visits_per_day(visits_that_day: int, max_per_day: int, free: bool) -> None:
    e = expert("E1", visits_per_day={D2: visits_that_day}, max_visits_per_day=max_per_day)
    assert (first_free_slot(e, [AM2]) == AM2) is free


def test_a_full_day_does_not_block_another_day() -> None:
    e = expert("E1", visits_per_day={D2: 2}, max_visits_per_day=2)
    assert run([e], preferred=[AM2, PM2, PM3]) == [Candidate("E1", PM3)]


@pytest.mark.parametrize(
    ("preferred", "chosen"),
    [([PM3, AM2], PM3), ([AM2, PM3], AM2), ([PM2, AM3, AM2], PM2)],
)
def test_first_free_slot_in_the_firms_order(preferred: list[Slot], chosen: Slot) -> None:
    assert run([expert("E1")], preferred=preferred) == [Candidate("E1", chosen)]


def test_first_free_slot_skips_unavailable_preferences() -> None:
    e = expert("E1", slots=frozenset({AM2, PM2, PM3}), booked=frozenset({PM2}))
    assert first_free_slot(e, [AM3, PM2, PM3, AM2]) == PM3
    assert first_free_slot(e, []) is None


def test_each_candidate_gets_its_own_first_free_slot() -> None:
    experts = [expert("E1", booked=frozenset({AM2})), expert("E2", recent_visits=1)]
    assert run(experts) == [Candidate("E1", PM2), Candidate("E2", AM2)]


# ---- region preference ------------------------------------------------------------------


def test_only_local_experts_when_any_local_is_free() -> None:
    experts = [
        expert("E1", regions=frozenset({ELSEWHERE}), recent_visits=0),
        expert("E2", regions=frozenset({REGION, ELSEWHERE}), recent_visits=9),
    ]
    assert ids(run(experts)) == ["E2"]


def test_any_region_when_no_local_expert_is_free() -> None:
    experts = [
        expert("E1", regions=frozenset({ELSEWHERE}), recent_visits=3),
        expert("E2", regions=frozenset({REGION}), booked=frozenset({AM2, PM2})),
        expert("E3", regions=frozenset({"佛堂镇"}), recent_visits=1),
        expert("E4", regions=frozenset({REGION}), active=False),
    ]
    assert ids(run(experts)) == ["E3", "E1"]


def test_local_expert_without_the_domain_does_not_count_as_local() -> None:
    experts = [
        expert("E1", domains=frozenset({"gas"})),
        expert("E2", regions=frozenset({ELSEWHERE})),
    ]
    assert ids(run(experts)) == ["E2"]


# ---- fairness ---------------------------------------------------------------------------


def test_fewest_recent_visits_first() -> None:
    experts = [
        expert("E1", recent_visits=5),
        expert("E2", recent_visits=0),
        expert("E3", recent_visits=2),
    ]
    assert ids(run(experts)) == ["E2", "E3", "E1"]


def test_then_least_recently_assigned_with_never_assigned_first() -> None:
    experts = [
        expert("E1", last_assigned_at=datetime(2026, 5, 30, tzinfo=UTC)),
        expert("E2", last_assigned_at=datetime(2026, 5, 1, tzinfo=UTC)),
        expert("E3"),  # never assigned
        expert("E4", last_assigned_at=datetime(2026, 5, 20, tzinfo=UTC)),
    ]
    assert ids(run(experts)) == ["E3", "E2", "E4", "E1"]


def test_visit_count_outranks_assignment_recency() -> None:
    experts = [
        expert("E1", recent_visits=1),
        expert("E2", recent_visits=0, last_assigned_at=datetime(2026, 5, 31, tzinfo=UTC)),
    ]
    assert ids(run(experts)) == ["E2", "E1"]


def test_then_expert_id() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    experts = [
        expert("E3", last_assigned_at=at),
        expert("E1", last_assigned_at=at),
        expert("E2", last_assigned_at=at),
        expert("E0"),
        expert("E9"),
    ]
    assert ids(run(experts)) == ["E0", "E9", "E1", "E2", "E3"]


def test_order_does_not_depend_on_input_order() -> None:
    experts = [
        expert("E1", recent_visits=1),
        expert("E2", last_assigned_at=datetime(2026, 5, 2, tzinfo=UTC)),
        expert("E3"),
        expert("E4", last_assigned_at=datetime(2026, 5, 1, tzinfo=UTC)),
    ]
    expected = ["E3", "E4", "E2", "E1"]
    assert ids(run(experts)) == expected
    assert ids(run(list(reversed(experts)))) == expected


def test_full_scenario() -> None:
    preferred = [parse_slot("2026-06-03 PM"), parse_slot("2026-06-02 AM")]
    experts = [
        expert("far", regions=frozenset({ELSEWHERE})),
        expert("busy", recent_visits=4),
        expert("conflicted", conflicts=frozenset({FIRM})),
        expert("retired", active=False),
        expert(
            "booked", booked=frozenset({PM3}), last_assigned_at=datetime(2026, 5, 3, tzinfo=UTC)
        ),
        expert("fresh"),
        expert("gasonly", domains=frozenset({"gas"})),
    ]
    assert run(experts, preferred=preferred) == [
        Candidate("fresh", PM3),
        Candidate("booked", AM2),
        Candidate("busy", PM3),
    ]


def test_any_region_is_the_fallback_after_every_local_expert_was_lost() -> None:
    local = expert("L1", recent_visits=5)
    remote = expert("R1", regions=frozenset({"佛堂镇"}))
    assert [c.expert_id for c in run([remote, local])] == ["L1"]
    fallback = candidates(
        enterprise_id=FIRM,
        region=REGION,
        needed=frozenset({"fire_crowded"}),
        preferred=(AM2, PM2),
        experts=[remote, local],
        any_region=True,
    )
    assert [c.expert_id for c in fallback] == ["R1", "L1"]  # by fairness, region ignored
