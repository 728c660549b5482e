"""Hazards are seen as of the decision's as_of (review 51 D2): a hazard is open on `as_of`
when it was found by then and not verified fixed by then; one found later is nothing.
So what happens after as_of (a hazard found, a verification) never changes a decision as
of that day: a past as_of stays reproducible, as for accidents and penalties."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.vocabulary import Severity
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.domain.decision import Decision, decide
from services.rules.domain.profile import EnterpriseProfile, Hazard, HazardStatus, parse_profile
from tests.support import RULESETS, profile

BOOK = load_rulebook(RULESETS)
AS_OF = date(2026, 6, 30)
DAY = timedelta(days=1)


def _hazard(
    found: date,
    status: HazardStatus = HazardStatus.OPEN,
    closed: date | None = None,
    severity: Severity = Severity.MAJOR,
    late: bool = False,
) -> Hazard:
    ref = "GM2023:14" if severity is Severity.MAJOR else "GEN:extinguishers"
    return Hazard("H-1", ref, severity, found, found + 30 * DAY, status, closed, late)


def _decide(hazards: tuple[Hazard, ...], as_of: date = AS_OF) -> Decision:
    firm: EnterpriseProfile = parse_profile(profile(1), BOOK.fact_types)
    return decide(replace(firm, hazards=hazards), [], BOOK.catalogue, BOOK.policy, as_of)


@pytest.mark.parametrize(
    ("hazard", "open_"),
    [
        (_hazard(AS_OF + DAY), False),  # found the day after: not found yet
        (_hazard(AS_OF), True),  # found on as_of: open that day
        (_hazard(AS_OF, HazardStatus.RECTIFIED), True),  # the firm's word is no proof
        (_hazard(AS_OF - 9 * DAY, HazardStatus.VERIFIED, AS_OF + DAY), True),  # verified later
        (_hazard(AS_OF - 9 * DAY, HazardStatus.VERIFIED, AS_OF), False),  # verified on as_of
        (_hazard(AS_OF - 9 * DAY, HazardStatus.VERIFIED, None), False),  # closed, day unknown
    ],
    ids=["found-after", "found-on", "rectified", "verified-after", "verified-on", "no-closed-on"],
)
def test_a_hazard_is_open_on_as_of_from_its_finding_to_its_verification(
    hazard: Hazard, open_: bool
) -> None:
    assert hazard.open_on(AS_OF) is open_
    decision = _decide((hazard,))
    assert bool(decision.findings) is open_
    assert ("open_hazard" in {b.code for b in decision.whitelist_blockers}) is open_


@settings(max_examples=300, deadline=None)
@given(
    found=st.integers(-60, 60),
    verified=st.one_of(st.none(), st.integers(0, 60)),
    major=st.booleans(),
    late=st.booleans(),
)
def test_what_happens_after_as_of_does_not_change_its_decision(
    found: int, verified: int | None, major: bool, late: bool
) -> None:
    """A hazard's later history (found after as_of; verified after it) leaves the decision
    as of as_of what it was with the history cut at as_of."""
    severity = Severity.MAJOR if major else Severity.GENERAL
    found_on = AS_OF + found * DAY
    closed_on = found_on + verified * DAY if verified is not None else None
    status = HazardStatus.VERIFIED if closed_on is not None else HazardStatus.OPEN
    full = _hazard(found_on, status, closed_on, severity, late and closed_on is not None)
    if found_on > AS_OF:
        known: tuple[Hazard, ...] = ()  # not found yet
    elif closed_on is not None and closed_on > AS_OF:
        known = (_hazard(found_on, HazardStatus.OPEN, None, severity),)  # not verified yet
    else:
        known = (full,)
    assert _decide((full,)) == _decide(known)
