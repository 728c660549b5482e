"""The demo city generator: reproducible, and at the orders of magnitude the city reports
quote (about 300 firms over six streets in the nine high-risk domains, 20 experts, ~145
bookings from ~143 firms, ~700 hazards with most eliminated, some overdue)."""

from __future__ import annotations

from datetime import date, timedelta

from services.common import demo_city
from services.common.vocabulary import Domain, uscc_problem
from services.rules.adapters.ruleset_loader import load_rulebook
from tests.support import RULESETS

TODAY = date(2026, 11, 27)


def test_same_seed_same_city_other_seed_other_city() -> None:
    assert demo_city.city(TODAY) == demo_city.city(TODAY)
    assert demo_city.city(TODAY, seed=1) != demo_city.city(TODAY)


def test_register_of_300_firms_over_six_streets_in_the_high_risk_domains() -> None:
    city = demo_city.city(TODAY)
    assert len(city.firms) == 300
    assert {f.profile["region"] for f in city.firms} == set(demo_city.STREETS)
    domains = {d.value for d in Domain}
    for firm in city.firms:
        assert firm.profile["high_risk_domains"], firm.enterprise_id
        assert set(firm.profile["high_risk_domains"]) <= domains
        assert uscc_problem(firm.enterprise_id) is None
        assert TODAY - timedelta(days=365) <= firm.registered_on < TODAY
    assert len({f.enterprise_id for f in city.firms}) == 300
    assert len(city.experts) == 20
    covered = {d for e in city.experts for d in e.domains}
    assert covered == set(demo_city.DOMAIN_ITEMS)


def test_a_year_of_bookings_and_hazards_like_the_reports() -> None:
    city = demo_city.city(TODAY)
    own = [o for o in city.orders if o not in city.staff_orders()]  # and the demo accounts' 4
    assert len(own) == 145 and len(city.orders) == 145 + len(demo_city.STAFF_WORK)
    assert len({o.enterprise_id for o in own}) == 143
    firms = {f.enterprise_id: f for f in city.firms}
    for order in city.orders:
        created = order.created_at.date()
        assert TODAY - timedelta(days=365) <= created < TODAY
        assert firms[order.enterprise_id].registered_on < created  # registered first
        assert order.slot_day > created
    months = {o.created_at.strftime("%Y-%m") for o in city.orders}
    assert len(months) >= 12
    tickets = city.tickets()
    assert 650 <= len(tickets) <= 900
    verified = [t for t in tickets if t.verified_on is not None]
    assert 0.8 <= len(verified) / len(tickets) < 1.0  # most eliminated
    assert len(verified) >= 600
    overdue = [t for t in tickets if t.verified_on is None and t.due_on < TODAY]
    assert 5 <= len(overdue) <= 60  # some overdue
    assert any(t.late for t in tickets) and any(t.severity == "major" for t in tickets)
    for t in tickets:
        assert t.found_on <= (t.proof_on or t.found_on) <= (t.verified_on or TODAY) <= TODAY


def test_no_expert_is_booked_twice_for_a_half_day() -> None:
    city = demo_city.city(TODAY)
    slots = [(o.expert_id, o.slot_day, o.half) for o in city.orders if o.expert_id]
    assert len(slots) == len(set(slots))


def test_findings_cite_clauses_the_rules_service_knows() -> None:
    catalogue = load_rulebook(RULESETS).catalogue
    refs = [c for c, _ in demo_city.GENERAL_FINDINGS]
    refs += [c for c, _ in demo_city.MAJOR_FINDINGS.values()]
    for ref in refs:
        assert catalogue.clause(ref) is not None, ref
    assert set(demo_city.MAJOR_FINDINGS) == set(demo_city.DOMAIN_ITEMS)


def test_the_demo_accounts_have_work_in_the_city() -> None:
    """Review 59 F10: demo-expert (E-FIRE-01) had no order, and demo-inspector's street no
    proof waiting; their work comes on top of the city's 145 bookings, each order of a
    firm of its own."""
    city = demo_city.city(TODAY)
    mine = city.staff_orders()
    assert mine and {o.expert_id for o in mine} == {demo_city.STAFF_EXPERT_ID}
    assert {o.region for o in mine} == {demo_city.STAFF_REGION}
    others = {o.enterprise_id for o in city.orders if o not in mine}
    assert not others & {o.enterprise_id for o in mine}
    assert any(o.slot_day == TODAY and not o.visited for o in mine)  # a visit to record
    tickets = [t for o in mine for t in o.tickets]
    waiting = [t for t in tickets if t.proof_on and not t.verified_on]
    assert any(t.due_on < TODAY for t in waiting) and any(t.due_on >= TODAY for t in waiting)
    assert any(t.proof_on is None and t.due_on < TODAY for t in tickets)  # overdue, open
    assert any(t.verified_on for t in tickets)
