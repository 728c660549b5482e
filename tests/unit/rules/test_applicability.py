"""The applicable clauses remembered per kind of firm are those computed afresh."""

from __future__ import annotations

import dataclasses
from datetime import date

from services.common.vocabulary import Domain
from services.common.workload import profiles
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.applicability import Applicability
from services.rules.domain.decision import applicable_clauses
from services.rules.domain.profile import HazchemRole, Venue, parse_profile


def test_remembered_clauses_are_the_fresh_ones_for_every_kind_of_firm(rulebook: Rulebook) -> None:
    index = Applicability(rulebook.catalogue)
    firms = [parse_profile(f, rulebook.fact_types) for f in profiles(600, seed=3)]
    # head counts on and around every threshold, venues and hazchem roles too
    edges = sorted({e + d for e in index._thresholds for d in (-1, 0, 1)} | {0})
    extra = [
        dataclasses.replace(
            firms[i % len(firms)],
            employees=max(0, n),
            venues=frozenset(list(Venue)[: i % 3]),
            hazchem_roles=frozenset(list(HazchemRole)[: i % 2]),
            high_risk_domains=frozenset(list(Domain)[i % 4 : i % 4 + 2]),
        )
        for i, n in enumerate(edges * 4)
    ]
    for day in (date(2026, 6, 30), date(2019, 1, 1)):
        for firm in firms + extra:
            for _ in range(2):  # computed, then remembered
                found = index.of(firm, day)
                fresh = applicable_clauses(rulebook.catalogue, firm, day)
                assert list(found.clauses) == fresh
                assert list(found.refs) == [c.ref for c in fresh]
                assert list(found.editions) == list(dict.fromkeys(c.edition_key for c in fresh))


def test_the_memory_is_bounded(rulebook: Rulebook, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.rules.domain import applicability

    monkeypatch.setattr(applicability, "MAX_KINDS", 3)
    index = Applicability(rulebook.catalogue)
    firm = parse_profile(next(profiles(1)), rulebook.fact_types)
    for n in range(10):
        index.of(dataclasses.replace(firm, employees=n * 1000), date(2026, 6, 30))
    assert len(index._known) <= 3
