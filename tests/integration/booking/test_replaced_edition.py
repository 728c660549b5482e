"""The rules client's word on a replaced edition, against a real rules server: the
catalogue booking caches says GB 35181-2017 was replaced from rules' `superseded_on` on
(the ticket page's source), and ListApplicableClauses' editions say so for the
self-check's questions; a standard in force says nothing."""

from __future__ import annotations

from datetime import date

from services.booking.adapters.rules_client import RulesClient
from tests.booking_env import Pair

FIRE_2025 = "GB 35181-2025《重大火灾隐患判定规则》"  # rulesets/fire35181.yaml successor


def test_the_cached_catalogue_says_from_which_day_an_edition_was_replaced(
    sqlite_pair: Pair,
) -> None:
    rules = sqlite_pair.ctx.rules
    assert isinstance(rules, RulesClient)
    assert rules.replaced_edition("FIRE35181", date(2025, 10, 31)) is None  # the day before
    assert rules.replaced_edition("FIRE35181", date(2025, 11, 1)) == ("GB 35181-2017", FIRE_2025)
    assert rules.replaced_edition("GM2023", date(2026, 6, 1)) is None
    assert rules.replaced_edition("NOSUCH", date(2026, 6, 1)) is None


def test_the_self_checks_clauses_carry_their_editions_replacement(sqlite_pair: Pair) -> None:
    firm = sqlite_pair.register_firm(70, industry="commerce_trade", venues=["shop"])
    clauses = sqlite_pair.ctx.rules.applicable(firm)
    fire = [c for c in clauses if c.standard_id == "FIRE35181"]
    assert fire and all(
        (c.edition, c.superseded, c.successor) == ("GB 35181-2017", True, FIRE_2025) for c in fire
    )
    others = [c for c in clauses if c.standard_id != "FIRE35181"]
    assert others and not any(c.superseded or c.successor for c in others)
