"""The durable_rules adapter against the reference meaning of conditions, and its hygiene."""

from __future__ import annotations

import gc
import os

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.rules.adapters.engine import engine_for
from services.rules.adapters.ruleset_loader import Rulebook, load_rulebook
from services.rules.domain.standards import AllOf, AnyOf, Condition
from tests.support import RULESETS

_BOOK = load_rulebook(RULESETS)
_KEYS = sorted(_BOOK.fact_types)


def _value(kind: str) -> st.SearchStrategy[object]:
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        return st.integers(min_value=0, max_value=20)
    return st.floats(min_value=0, max_value=2, allow_nan=False).map(lambda x: round(x, 2))


facts_strategy = st.dictionaries(st.sampled_from(_KEYS), st.nothing(), max_size=0) | st.lists(
    st.sampled_from(_KEYS), unique=True, max_size=12
).flatmap(lambda keys: st.fixed_dictionaries({k: _value(_BOOK.fact_types[k]) for k in keys}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=facts_strategy)
def test_engine_agrees_with_reference_conditions(facts: dict[str, object]) -> None:
    """Every clause the C engine fires is one whose condition holds, and none is missed."""
    engine = engine_for(_BOOK.catalogue)
    ids = [s.key for s in _BOOK.catalogue.standards]
    expected = {
        c.ref for s in _BOOK.catalogue.standards for c in s.clauses if c.condition.holds(facts)
    }  # type: ignore[arg-type]
    assert engine.match(facts, ids) == expected  # type: ignore[arg-type]
    assert engine.stored_facts() == 0


def _extreme(kind: str) -> st.SearchStrategy[object]:
    """Any value a caller may send: floats of every magnitude (json writes 1e-05 and
    1e+16, which durable_rules' own reader refuses), whole numbers past 2**64."""
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        return st.integers(min_value=0, max_value=10**30)
    return st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
        [1e-05, -1e-05, 5e-324, 1e16, -1e16, 1e308, 0.00009999, 29.999999999999996]
    )


_NUMBER_KEYS = [k for k in _KEYS if _BOOK.fact_types[k] in ("int", "number")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facts=st.lists(st.sampled_from(_NUMBER_KEYS), unique=True, min_size=1, max_size=8).flatmap(
        lambda keys: st.fixed_dictionaries({k: _extreme(_BOOK.fact_types[k]) for k in keys})
    )
)
def test_engine_agrees_with_reference_on_numbers_of_any_size(facts: dict[str, object]) -> None:
    """Numbers that json writes with an exponent reach the C engine written out in full
    (review 47b F1: they failed with error 204, answered INTERNAL) and compare exactly."""
    test_engine_agrees_with_reference_conditions.hypothesis.inner_test(facts)  # type: ignore[attr-defined]


def _breaching(condition: Condition, into: dict[str, object]) -> None:
    """Fact values that satisfy a condition (the first alternative of an `any`)."""
    if isinstance(condition, AllOf):
        for part in condition.parts:
            _breaching(part, into)
    elif isinstance(condition, AnyOf):
        _breaching(condition.parts[0], into)
    else:
        value = condition.value
        nudge = {"gt": 1, "ge": 0, "lt": -0.01, "le": 0, "eq": 0}
        into[condition.fact] = (
            value if isinstance(value, bool) else value + nudge[condition.op]  # type: ignore[operator]
        )


def test_a_profile_breaching_every_clause_at_once_gets_every_finding() -> None:
    """~100 clauses and their fact keys in one profile: the engine's per-ruleset limit
    (65 matched conditions) must not drop a single finding."""
    engine = engine_for(_BOOK.catalogue)
    facts: dict[str, object] = {}
    clauses = [c for s in _BOOK.catalogue.standards for c in s.clauses]
    for clause in clauses:
        _breaching(clause.condition, facts)
    assert all(c.condition.holds(facts) for c in clauses)  # type: ignore[arg-type]
    found = engine.match(facts, [s.key for s in _BOOK.catalogue.standards])  # type: ignore[arg-type]
    assert found == {c.ref for c in clauses}
    assert len(found) >= 100
    assert engine.stored_facts() == 0


def test_same_catalogue_version_shares_one_compiled_engine(rulebook: Rulebook) -> None:
    assert engine_for(rulebook.catalogue) is engine_for(load_rulebook(RULESETS).catalogue)


@pytest.mark.slow
def test_memory_stays_flat_over_repeated_evaluation(rulebook: Rulebook) -> None:
    """200,000 assert/retract cycles must not grow the process (a leak shows in MBs)."""
    engine = engine_for(rulebook.catalogue)
    ids = [s.key for s in rulebook.catalogue.standards]
    samples = [
        {
            "gm.special_ops_uncertified": i % 4,
            "gen.no_hazard_ledger": i % 2 == 0,
            "fire.exit_width_ratio": (i % 10) / 10,
            "dust.dry_collector_unprotected": True,
        }
        for i in range(100)
    ]
    process = psutil.Process(os.getpid())
    for facts in samples * 100:  # warm up allocator and caches
        engine.match(facts, ids)
    gc.collect()
    before = process.memory_info().rss
    for _ in range(20):
        for facts in samples * 100:
            engine.match(facts, ids)
    gc.collect()
    grown_mb = (process.memory_info().rss - before) / 2**20
    assert engine.stored_facts() == 0
    assert grown_mb < 25, f"RSS grew {grown_mb:.1f} MB over 200,000 evaluations"
