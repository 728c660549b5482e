"""Golden decisions in the domain alone: a reference matcher (Condition.holds) stands in
for durable_rules, so a failure here is in the policy, not the engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.profile import FactValue, parse_profile
from services.rules.entrypoints import convert
from services.rules.service_layer import handlers
from tests import golden


class ReferenceMatcher:
    """A fake engine: evaluates each clause's condition tree in plain Python."""

    def __init__(self, rulebook: Rulebook) -> None:
        self._clauses = [c for s in rulebook.catalogue.standards for c in s.clauses]

    def match(self, facts: Mapping[str, FactValue], editions: Iterable[str]) -> frozenset[str]:
        wanted = set(editions)
        return frozenset(
            c.ref for c in self._clauses if c.edition_key in wanted and c.condition.holds(facts)
        )


def test_there_are_golden_cases() -> None:
    assert len(golden.DECISION_CASES) >= 40


@pytest.mark.parametrize("path", golden.DECISION_CASES, ids=lambda p: p.stem)
def test_golden_decision_in_domain(path: Path, rulebook: Rulebook) -> None:
    case = golden.load(path)
    ctx = handlers.RulesContext(
        rulebook.catalogue, rulebook.policy, rulebook.fact_types, ReferenceMatcher(rulebook)
    )
    profile = parse_profile(case["profile"], rulebook.fact_types)
    decision = handlers.evaluate(ctx, profile, handlers.parse_as_of(case["as_of"]))
    assert golden.actual(convert.decision_to_proto(decision), case) == golden.expected(case)
