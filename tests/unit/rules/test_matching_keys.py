"""A finding cites the facts that made its clause match (docs/policy.md §1; review 51 D5):
of an 或者 the alternatives that hold, of a 并且 every half, nested accordingly; an
answered alternative that does not hold is not a reason."""

from __future__ import annotations

from datetime import date

from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.decision import build_findings
from services.rules.domain.profile import parse_profile
from services.rules.domain.standards import AllOf, AnyOf, Comparison
from tests.support import profile

A = Comparison("a", "eq", True)
B = Comparison("b", "lt", 30)
C = Comparison("c", "eq", True)


def test_an_alternative_that_does_not_hold_is_not_cited() -> None:
    either = AnyOf((A, B))
    assert either.matching_keys({"a": True, "b": 35}) == ("a",)
    assert either.matching_keys({"a": False, "b": 29.9}) == ("b",)
    assert either.matching_keys({"a": True, "b": 1}) == ("a", "b")
    assert either.matching_keys({"a": False, "b": 30}) == ()


def test_both_halves_are_cited_and_a_half_alone_is_nothing() -> None:
    both = AllOf((A, C))
    assert both.matching_keys({"a": True, "c": True}) == ("a", "c")
    assert both.matching_keys({"a": True, "c": False}) == ()
    assert both.matching_keys({"a": True}) == ()


def test_nested_an_alternative_of_two_halves_counts_only_whole() -> None:
    """SMALL:patrol's shape: (key unit AND no daily patrol) OR no monthly check."""
    patrol = AnyOf((AllOf((A, C)), B))
    assert patrol.matching_keys({"a": True, "c": False, "b": 1}) == ("b",)
    assert patrol.matching_keys({"a": True, "c": True, "b": 31}) == ("a", "c")


def test_the_reviewers_firm_is_cited_for_what_breached_only(rulebook: Rulebook) -> None:
    """Review 51's c_facts.json: 35 kPa meets GM2023 4(8)'s 30 kPa, and 11(4)'s second
    alternative is answered no; neither is a reason."""
    facts = {
        "dust.metal_positive_pressure": True,
        "dust.other_positive_blow_no_ignition_control": False,
        "coalgas.water_seal_max_pressure": 35,
        "coalgas.drainer_shared_across_media": True,
    }
    firm = parse_profile(
        profile(1, industry="metallurgy", high_risk_domains=["dust_explosion"], facts=facts),
        rulebook.fact_types,
    )
    day = date(2026, 1, 10)
    clauses = [rulebook.catalogue.clause(ref, day) for ref in ("GM2023:4(8)", "GM2023:11(4)")]
    findings = build_findings(firm, [c for c in clauses if c], rulebook.catalogue, day)
    cited = {f.ref: (f.fact_keys, dict(f.matched_facts)) for f in findings}
    assert cited == {
        "GM2023:4(8)": (
            ("coalgas.drainer_shared_across_media",),
            {"coalgas.drainer_shared_across_media": True},
        ),
        "GM2023:11(4)": (("dust.metal_positive_pressure",), {"dust.metal_positive_pressure": True}),
    }
