"""Editions by date: a decision applies the edition of each standard that was law on its
`as_of`; a superseded edition keeps applying, flagged, until its successor's text is
loaded; loading the successor is a data change only."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from services.rules.adapters.ruleset_loader import Rulebook, RulesetError, load_rulebook
from services.rules.domain.profile import parse_profile
from services.rules.entrypoints import grpc_server
from services.rules.service_layer import handlers
from tests.support import RULESETS, profile

# A stand-in successor edition for the test only: GB 35181-2025's Chapter 5 text is not
# available to the project (rulesets/sources/fire35181.md), so this clause is invented.
SUCCESSOR = {
    "standard": {
        "id": "FIRE35181",
        "title": "重大火灾隐患判定规则（测试用替代版本）",
        "issuer": "GB 35181-2025",
        "edition": "GB 35181-2025",
        "published_on": date(2025, 4, 25),
        "effective_from": date(2025, 11, 1),
        "source": "test fixture",
        "applies_to": [],
    },
    "clauses": [
        {
            "id": "5.99",
            "title": "测试条款",
            "severity": "MAJOR",
            "text": "测试用条文：安全出口数量不足",
            "applies_to": [{"venues": ["shop"]}],
            "when": {"fact": "fire.exit_count_short", "op": "eq", "value": True},
            "guidance": "测试。",
            "services": ["fire_safety"],
            "verified": False,
            "note": "test fixture, not the standard's text",
        }
    ],
}
SHOP = profile(venues=["shop"], facts={"fire.exit_count_short": True})


def _with_successor(tmp_path: Path) -> Rulebook:
    folder = tmp_path / "rulesets"
    shutil.copytree(RULESETS, folder)
    (folder / "fire35181_2025.yaml").write_text(
        yaml.safe_dump(SUCCESSOR, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return load_rulebook(folder)


def _findings(rulebook: Rulebook, day: date) -> dict[str, tuple[str, bool, str]]:
    ctx = grpc_server.context_from(rulebook)
    decision = handlers.evaluate(ctx, parse_profile(SHOP, rulebook.fact_types), day)
    return {f.ref: (f.edition, f.superseded, f.successor) for f in decision.findings}


def test_the_2017_edition_judges_a_date_before_its_successor(rulebook: Rulebook) -> None:
    assert _findings(rulebook, date(2025, 6, 30)) == {"FIRE35181:6.5": ("GB 35181-2017", False, "")}


def test_after_2025_11_01_the_2017_edition_still_applies_and_says_it_is_superseded(
    rulebook: Rulebook,
) -> None:
    edition, superseded, successor = _findings(rulebook, date(2026, 6, 30))["FIRE35181:6.5"]
    assert (edition, superseded) == ("GB 35181-2017", True)
    assert "GB 35181-2025" in successor


def test_a_loaded_successor_takes_over_from_its_date_without_code(tmp_path: Path) -> None:
    book = _with_successor(tmp_path)
    assert _findings(book, date(2025, 10, 31)) == {"FIRE35181:6.5": ("GB 35181-2017", False, "")}
    assert _findings(book, date(2025, 11, 1)) == {"FIRE35181:5.99": ("GB 35181-2025", False, "")}


def test_a_standard_not_yet_in_force_is_not_applied(rulebook: Rulebook) -> None:
    """部令第10号 took effect 2023-05-15; its 2017 predecessor is not loaded."""
    ctx = grpc_server.context_from(rulebook)
    firm = parse_profile(
        profile(industry="machinery", facts={"gm.special_ops_uncertified": 2}), rulebook.fact_types
    )
    before = handlers.evaluate(ctx, firm, date(2023, 5, 14))
    after = handlers.evaluate(ctx, firm, date(2023, 5, 15))
    assert "GM2023:3(2)" not in {f.ref for f in before.findings}
    assert "GM2023:3(2)" in {f.ref for f in after.findings}


def test_two_editions_from_the_same_day_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "rulesets"
    shutil.copytree(RULESETS, folder)
    clash = {**SUCCESSOR, "standard": {**SUCCESSOR["standard"], "effective_from": date(2018, 7, 1)}}
    (folder / "fire35181_2025.yaml").write_text(
        yaml.safe_dump(clash, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    with pytest.raises(RulesetError, match="two editions in force from the same day"):
        load_rulebook(folder)


def test_current_and_in_force_pick_one_edition_per_standard(tmp_path: Path) -> None:
    catalogue = _with_successor(tmp_path).catalogue
    assert [s.edition.name for s in catalogue.standards if s.id == "FIRE35181"] == [
        "GB 35181-2017",
        "GB 35181-2025",
    ]
    assert catalogue.standard("FIRE35181").edition.name == "GB 35181-2025"  # type: ignore[union-attr]
    old = catalogue.standard("FIRE35181", date(2020, 1, 1))
    assert old is not None and old.edition.name == "GB 35181-2017"
    assert catalogue.clause("FIRE35181:6.5") is not None  # an old finding still resolves
