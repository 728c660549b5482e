"""The clause cases cover each clause's logic, checked mechanically (review 62).

tests/integration/rules/test_clauses.py runs every case through the real server and the
real durable_rules engine; this file checks, without a server, that the cases are there
to be run and could fail:

* each alternative of an 或者 (a part of an `any`) has a breaching case in which that
  alternative alone holds, for a firm the clause applies to;
* each half of a 并且 (a part of an `all`) has a clean case in which every other half
  holds and that one does not, for a firm the clause applies to (so dropping the half
  from the ruleset would make the case fail);
* each threshold (gt/ge/lt/le) has a breaching case just past it and a clean case at it;
* each clause has a clean case with its facts answered (not only absent), in scope;
* every case's expectation is what the clause, read in process, answers: no case that
  cannot fail because it expects what the scope alone decides on the wrong clause.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.profile import parse_profile
from services.rules.domain.standards import AllOf, AnyOf, Clause, Comparison, Condition
from tests.support import case_files, load_yaml, profile

CASES = [case for path in case_files("clauses") for case in load_yaml(path)]
NATIONAL = ("GM2023", "CHEM2017", "FIRE35181")


def _firm(case: dict[str, Any], rulebook: Rulebook) -> Any:
    firm = {
        "industry": "machinery",
        "high_risk_domains": [],
        "employees": 100,
        **case.get("firm", {}),
    }
    return parse_profile(profile(1, facts=case.get("facts") or {}, **firm), rulebook.fact_types)


def _cases(clause: Clause, rulebook: Rulebook) -> list[tuple[dict[str, Any], Any]]:
    return [(c, _firm(c, rulebook)) for c in CASES if c["clause"] == clause.ref]


def _clauses(rulebook: Rulebook, standards: tuple[str, ...] | None = None) -> list[Clause]:
    return [
        c
        for s in rulebook.catalogue.standards
        if standards is None or s.id in standards
        for c in s.clauses
    ]


def _leaves(condition: Condition) -> list[Comparison]:
    if isinstance(condition, Comparison):
        return [condition]
    return [leaf for part in condition.parts for leaf in _leaves(part)]


def test_every_case_expects_what_the_clause_answers(rulebook: Rulebook) -> None:
    wrong = []
    for clause in _clauses(rulebook):
        for case, firm in _cases(clause, rulebook):
            answer = clause.applies_to(firm) and clause.condition.holds(dict(firm.facts))
            if answer is not case["breach"]:
                wrong.append(case["name"])
    assert not wrong, wrong


def test_each_alternative_of_an_or_breaches_alone(rulebook: Rulebook) -> None:
    missing = []
    for clause in _clauses(rulebook, NATIONAL):
        condition = clause.condition
        if not isinstance(condition, AnyOf):
            continue
        cases = _cases(clause, rulebook)
        for i, part in enumerate(condition.parts):
            others = [p for j, p in enumerate(condition.parts) if j != i]
            if not any(
                case["breach"]
                and clause.applies_to(firm)
                and part.holds(dict(firm.facts))
                and not any(o.holds(dict(firm.facts)) for o in others)
                for case, firm in cases
            ):
                missing.append(f"{clause.ref} alternative {part.describe()}")
    assert not missing, missing


def test_each_half_of_an_and_is_needed(rulebook: Rulebook) -> None:
    missing = []
    for clause in _clauses(rulebook, NATIONAL):
        groups = [clause.condition] if isinstance(clause.condition, AllOf) else []
        if isinstance(clause.condition, AnyOf):
            groups = [p for p in clause.condition.parts if isinstance(p, AllOf)]
        cases = _cases(clause, rulebook)
        for group in groups:
            for i, part in enumerate(group.parts):
                others = [p for j, p in enumerate(group.parts) if j != i]
                if not any(
                    not case["breach"]
                    and clause.applies_to(firm)
                    and not part.holds(dict(firm.facts))
                    and part.fact_keys()[0] in firm.facts
                    and all(o.holds(dict(firm.facts)) for o in others)
                    for case, firm in cases
                ):
                    missing.append(f"{clause.ref} half {part.describe()}")
    assert not missing, missing


def _near(op: str, threshold: float, x: float) -> bool:
    """Whether `x` is the value next to the threshold on the breaching side of `op`
    (within one unit: 10 for > 9, 29.9 for < 30) or the threshold itself (>= / <=)."""
    if op == "gt":
        return threshold < x <= threshold + 1
    if op == "lt":
        return threshold - 1 <= x < threshold
    return x == threshold


def _clean_edge(op: str, threshold: float, x: float) -> bool:
    """The threshold itself for > / <; the value next to it outside for >= / <=."""
    if op in ("gt", "lt"):
        return x == threshold
    return _near({"ge": "lt", "le": "gt"}[op], threshold, x)


def test_each_threshold_has_its_edge_cases(rulebook: Rulebook) -> None:
    missing = []
    for clause in _clauses(rulebook, NATIONAL):
        cases = _cases(clause, rulebook)
        for leaf in _leaves(clause.condition):
            if leaf.op not in ("gt", "ge", "lt", "le"):
                continue
            v = float(leaf.value)
            for expected, near in ((True, _near), (False, _clean_edge)):
                if not any(
                    case["breach"] is expected
                    and clause.applies_to(firm)
                    and isinstance(firm.facts.get(leaf.fact), int | float)
                    and near(leaf.op, v, float(firm.facts[leaf.fact]))
                    for case, firm in cases
                ):
                    side = "breach" if expected else "clean"
                    missing.append(f"{clause.ref} {leaf.describe()}: no {side} case at the edge")
    assert not missing, missing


def test_each_clause_has_an_answered_clean_case_in_scope(rulebook: Rulebook) -> None:
    missing = []
    for clause in _clauses(rulebook, NATIONAL):
        keys = set(clause.condition.fact_keys())
        if not any(
            not case["breach"] and clause.applies_to(firm) and keys <= set(firm.facts)
            for case, firm in _cases(clause, rulebook)
        ):
            missing.append(clause.ref)
    assert not missing, missing


@pytest.mark.parametrize("standard", NATIONAL)
def test_each_clause_has_an_out_of_scope_case_when_it_is_scoped(
    rulebook: Rulebook, standard: str
) -> None:
    missing = []
    for clause in _clauses(rulebook, (standard,)):
        if not clause.scopes:
            continue
        if not any(
            not case["breach"]
            and not clause.applies_to(firm)
            and clause.condition.holds(dict(firm.facts))
            for case, firm in _cases(clause, rulebook)
        ):
            missing.append(clause.ref)
    assert not missing, missing


def test_each_venue_type_of_a_scope_breaches_alone(rulebook: Rulebook) -> None:
    """A scope's venue list is an 或者 too: each venue type has a breaching case whose firm
    lists it and no other venue type of that scope, so dropping one from the ruleset
    makes a case fail (removing FIRE35181 6.1's tank_area case went unnoticed; review 69)."""
    missing = []
    for clause in _clauses(rulebook, NATIONAL):
        cases = _cases(clause, rulebook)
        for scope in clause.scopes:
            if len(scope.venues) < 2:
                continue
            for venue in sorted(scope.venues):
                others = scope.venues - {venue}
                if not any(
                    case["breach"]
                    and venue in firm.venues
                    and not (others & firm.venues)
                    and clause.applies_to(firm)
                    for case, firm in cases
                ):
                    missing.append(f"{clause.ref} venue {venue}")
    assert not missing, missing
