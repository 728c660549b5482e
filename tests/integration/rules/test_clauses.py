"""Every ruleset clause: a profile that breaches it and one that does not, through the
real gRPC server and the real durable_rules engine (cases: tests/cases/clauses/)."""

from __future__ import annotations

from typing import Any

import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.domain.standards import Comparison, Condition
from services.rules.entrypoints.convert import profile_from_json
from tests.support import case_files, load_yaml, profile

FILES = case_files("clauses")
CASES = [(path.stem, i, case) for path in FILES for i, case in enumerate(load_yaml(path))]


def _firm(case: dict[str, Any], n: int) -> dict[str, Any]:
    firm = {
        "industry": "machinery",
        "high_risk_domains": [],
        "employees": 100,
        **case.get("firm", {}),
    }
    return profile(n, facts=case.get("facts") or {}, **firm)


@pytest.mark.parametrize(
    ("stem", "index", "case"),
    CASES,
    ids=[f"{s}-{i}-{c['clause']}-{'breach' if c['breach'] else 'clean'}" for s, i, c in CASES],
)
def test_clause_case(stem: str, index: int, case: dict[str, Any], rules_stub, rulebook) -> None:  # type: ignore[no-untyped-def]
    request = pb.EvaluateRequest(
        profile=profile_from_json(_firm(case, index + 1)), as_of="2026-06-30"
    )
    decision = rules_stub.Evaluate(request, timeout=10)
    refs = {f.clause_ref for f in decision.findings}
    assert (case["clause"] in refs) is case["breach"], case["name"]
    if case["breach"]:
        finding = next(f for f in decision.findings if f.clause_ref == case["clause"])
        clause = rulebook.catalogue.clause(case["clause"])
        assert clause is not None
        cited = list(finding.fact_keys)
        assert set(cited) <= set(clause.condition.fact_keys()) & set(case["facts"])
        # each cited fact holds its own comparison, and they alone breach the clause: an
        # answered alternative that does not hold is no reason (review 51 D5)
        assert all(_leaf_holds(clause.condition, k, case["facts"]) for k in cited), cited
        assert clause.condition.holds({k: case["facts"][k] for k in cited}), cited
        for key in cited:
            value = finding.matched_facts[key]
            sent = case["facts"][key]
            got = value.bool_value if isinstance(sent, bool) else value.number_value
            assert got == sent, key
        assert finding.text == clause.text and finding.guidance == clause.guidance
        assert finding.edition == clause.edition.name


def _leaf_holds(condition: Condition, key: str, facts: dict[str, Any]) -> bool:
    """Whether a comparison of `key` in the condition tree holds on `facts`."""
    if isinstance(condition, Comparison):
        return condition.fact == key and condition.holds(facts)
    return any(_leaf_holds(part, key, facts) for part in condition.parts)


def test_every_clause_has_a_breaching_and_a_clean_case(rulebook) -> None:  # type: ignore[no-untyped-def]
    covered: dict[str, set[bool]] = {}
    for _, _, case in CASES:
        covered.setdefault(case["clause"], set()).add(case["breach"])
    for standard in rulebook.catalogue.standards:
        for clause in standard.clauses:
            assert covered.get(clause.ref) == {True, False}, f"{clause.ref} lacks a case"
