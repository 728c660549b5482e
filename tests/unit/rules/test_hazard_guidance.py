"""An open hazard's finding carries its clause's guidance as it is: the deadline is the
hazard's own field (profile `Hazard.due_on`), which every client shows as a field, so
the guidance does not say it again (stop 35; review 62 found it said twice on a page)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.common.vocabulary import Severity
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.domain import labels
from services.rules.domain.decision import decide
from services.rules.domain.profile import EnterpriseProfile, Hazard, HazardStatus, parse_profile
from tests.support import RULESETS, profile

BOOK = load_rulebook(RULESETS)
AS_OF = date(2026, 6, 30)
FOUND = AS_OF - timedelta(days=9)
DUE = date(2026, 7, 21)


@pytest.mark.parametrize(
    ("ref", "severity"),
    [("GM2023:14", Severity.MAJOR), ("GEN:extinguishers", Severity.GENERAL)],
)
def test_an_open_hazards_guidance_is_its_clauses_without_the_deadline(
    ref: str, severity: Severity
) -> None:
    firm: EnterpriseProfile = parse_profile(profile(1), BOOK.fact_types)
    hazard = Hazard("H-1", ref, severity, FOUND, DUE, HazardStatus.OPEN, None, False)
    decision = decide(replace(firm, hazards=(hazard,)), [], BOOK.catalogue, BOOK.policy, AS_OF)
    (finding,) = [f for f in decision.findings if f.hazard_id == "H-1"]
    clause = BOOK.catalogue.clause(ref, AS_OF)
    assert clause is not None and clause.guidance
    assert finding.guidance == clause.guidance
    assert DUE.isoformat() not in finding.guidance and "整改期限" not in finding.guidance


def test_a_hazard_whose_clause_is_gone_gets_the_fixed_guidance_alone() -> None:
    firm: EnterpriseProfile = parse_profile(profile(1), BOOK.fact_types)
    hazard = Hazard(
        "H-2", "GEN:no-such-clause", Severity.GENERAL, FOUND, DUE, HazardStatus.OPEN, None, False
    )
    decision = decide(replace(firm, hazards=(hazard,)), [], BOOK.catalogue, BOOK.policy, AS_OF)
    (finding,) = [f for f in decision.findings if f.hazard_id == "H-2"]
    assert finding.guidance == labels.HAZARD_GUIDANCE_GONE
