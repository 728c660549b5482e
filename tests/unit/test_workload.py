"""The seeded register generator: valid, reproducible, and shaped like a county."""

from __future__ import annotations

from collections import Counter
from datetime import date

from services.common.workload import profiles
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.profile import parse_profile, uscc_problem
from services.rules.entrypoints import grpc_server
from services.rules.service_layer import handlers


def test_the_same_seed_gives_the_same_register_and_another_seed_another() -> None:
    assert list(profiles(50, seed=1)) == list(profiles(50, seed=1))
    assert list(profiles(50, seed=1)) != list(profiles(50, seed=2))


def test_every_generated_firm_is_valid_and_the_mix_is_a_county_s(rulebook: Rulebook) -> None:
    ctx = grpc_server.context_from(rulebook)
    firms = list(profiles(2_000))
    assert len({f["enterprise_id"] for f in firms}) == 2_000
    assert all(uscc_problem(f["enterprise_id"]) is None for f in firms)
    levels = Counter()
    for firm in firms:
        decision = handlers.evaluate(
            ctx, parse_profile(firm, rulebook.fact_types), date(2026, 6, 30)
        )
        levels[any(f.hazard_id == "" for f in decision.findings)] += 1
        levels["major"] += any(f.severity.value == "major" for f in decision.findings)
    with_finding = levels[True] / len(firms)
    assert 0.04 <= with_finding <= 0.12  # 5–10 % with a finding, give or take the draw
    assert 0.005 <= levels["major"] / len(firms) <= 0.05  # a few % MAJOR
    industries = Counter(f["industry"] for f in firms)
    assert industries.most_common(1)[0][0] == "commerce_trade"
