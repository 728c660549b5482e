"""A bad ruleset is a load error naming file, clause and field; the real ones load."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.yaml_files import parse_yaml
from services.rules.adapters.engine import engine_for
from services.rules.adapters.ruleset_loader import RulesetError, load_rulebook
from tests.support import RULESETS


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rulesets"
    shutil.copytree(RULESETS, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(directory: Path) -> str:
    with pytest.raises(RulesetError) as info:
        load_rulebook(directory)
    return str(info.value)


def test_real_rulesets_load_with_every_standard(rulebook) -> None:  # type: ignore[no-untyped-def]
    ids = {s.id for s in rulebook.catalogue.standards}
    assert ids == {"GM2023", "CHEM2017", "FIRE35181", "SMALL", "GEN"}
    gm = rulebook.catalogue.standard("GM2023")
    assert {c.clause for c in gm.clauses} >= {
        "3(1)",
        "3(2)",
        "3(3)",
        "4(1)",
        "11(1)",
        "11(8)",
        "12(1)",
        "12(2)",
        "13(1)",
        "13(2)",
        "14",
    }
    unverified = {c.clause for c in gm.clauses if not c.verified}
    assert {"13(2)", "8(7)", "11(10)"} <= unverified  # one source (standards-text)
    assert not {"11(4)", "12(1)", "12(2)", "13(1)"} & unverified


def test_unknown_fact_key(rules_dir: Path) -> None:
    edit(rules_dir / "gm2023.yaml", "fact: dust.dry_collector_unprotected", "fact: dust.foo")
    message = load_error(rules_dir)
    assert message.startswith("gm2023.yaml: clause 11(3): field when.fact")
    assert "dust.foo" in message


def test_duplicate_clause_id(rules_dir: Path) -> None:
    edit(rules_dir / "gen.yaml", 'id: "training"', 'id: "ledger"')
    assert load_error(rules_dir) == "gen.yaml: clause ledger: field id: duplicate clause id"


def test_bad_operator(rules_dir: Path) -> None:
    edit(rules_dir / "fire35181.yaml", "op: lt, value: 0.75", "op: less, value: 0.75")
    message = load_error(rules_dir)
    assert message.startswith("fire35181.yaml: clause 6.2: field when")


def test_ordering_operator_on_a_bool_fact(rules_dir: Path) -> None:
    edit(
        rules_dir / "small.yaml",
        "fire.ebike_indoor_charging, op: eq, value: true",
        "fire.ebike_indoor_charging, op: gt, value: true",
    )
    assert "small.yaml: clause ebike: field when.op" in load_error(rules_dir)


def test_missing_severity(rules_dir: Path) -> None:
    edit(
        rules_dir / "chem2017.yaml",
        "    title: 外部安全防护距离不符合\n    severity: MAJOR\n",
        "    title: 外部安全防护距离不符合\n",
    )
    message = load_error(rules_dir)
    assert message.startswith("chem2017.yaml: clause 3: field")
    assert "severity" in message


def test_bad_severity_value(rules_dir: Path) -> None:
    edit(
        rules_dir / "chem2017.yaml",
        "    title: 外部安全防护距离不符合\n    severity: MAJOR\n",
        "    title: 外部安全防护距离不符合\n    severity: HUGE\n",
    )
    assert load_error(rules_dir).startswith("chem2017.yaml: clause 3: field severity")


def test_unknown_service_item(rules_dir: Path) -> None:
    edit(rules_dir / "gen.yaml", "services: [standardization_coaching]", "services: [massage]")
    assert "gen.yaml: clause ledger: field services" in load_error(rules_dir)


def test_unknown_domain_in_scope(rules_dir: Path) -> None:
    edit(rules_dir / "gm2023.yaml", "domains: [metal_smelting]", "domains: [mining]")
    assert load_error(rules_dir).startswith("gm2023.yaml: clause 3(3): field applies_to")


@pytest.mark.parametrize("value", ["0.00003", "3.0e+16", "-2.5e-05"])
def test_a_threshold_the_engine_cannot_read_names_its_clause(rules_dir: Path, value: str) -> None:
    """json writes such a float with an exponent, which durable_rules refuses at start."""
    edit(
        rules_dir / "gm2023.yaml",
        "{fact: coalgas.water_seal_max_pressure, op: lt, value: 30}",
        f"{{fact: coalgas.water_seal_max_pressure, op: lt, value: {value}}}",
    )
    assert load_error(rules_dir).startswith("gm2023.yaml: clause 4(8): field when.any[0].value: ")


@pytest.mark.parametrize("value", ["0.0001", "0", "1.0e+15", "-30.5"])
def test_a_threshold_the_engine_reads_loads(rules_dir: Path, value: str) -> None:
    edit(
        rules_dir / "gm2023.yaml",
        "{fact: coalgas.water_seal_max_pressure, op: lt, value: 30}",
        f"{{fact: coalgas.water_seal_max_pressure, op: lt, value: {value}}}",
    )
    engine_for(load_rulebook(rules_dir).catalogue)  # durable_rules compiles it


def test_policy_threshold_must_be_a_number(rules_dir: Path) -> None:
    edit(rules_dir / "policy.yaml", "min_merchant_score: 10", "min_merchant_score: ten")
    assert load_error(rules_dir).startswith("policy.yaml:")


def test_policy_missing_field(rules_dir: Path) -> None:
    edit(rules_dir / "policy.yaml", "    joint_window_days: 14\n", "")
    assert load_error(rules_dir) == "policy.yaml: field joint_window_days: required"


def test_version_is_a_content_hash(rules_dir: Path) -> None:
    before = load_rulebook(rules_dir)
    assert before.catalogue.version == load_rulebook(rules_dir).catalogue.version
    edit(rules_dir / "gen.yaml", "灭火器缺失或超过检验期限", "灭火器缺失或过期")
    after = load_rulebook(rules_dir)
    assert after.catalogue.version != before.catalogue.version
    assert after.catalogue.standard("GEN").version != before.catalogue.standard("GEN").version
    assert after.catalogue.standard("GM2023").version == before.catalogue.standard("GM2023").version


def test_a_title_longer_than_16_characters(rules_dir: Path) -> None:
    edit(
        rules_dir / "chem2017.yaml",
        "title: 外部安全防护距离不符合",
        "title: 外部安全防护距离不符合国家标准要求的情形",
    )
    message = load_error(rules_dir)
    assert message.startswith("chem2017.yaml: clause 3: field title")


def _rewrite(path: Path, change: Callable[[Any], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_an_unverified_clause_says_why(rules_dir: Path) -> None:
    def drop_note(data: Any) -> None:
        clause = next(c for c in data["clauses"] if c["id"] == "13(2)")
        assert clause["verified"] is False
        del clause["note"]

    _rewrite(rules_dir / "gm2023.yaml", drop_note)
    assert load_error(rules_dir) == (
        "gm2023.yaml: clause 13(2): field note: an unverified clause says why"
    )


def test_a_condition_on_a_retired_key_names_its_replacements(rules_dir: Path) -> None:
    edit(
        rules_dir / "gm2023.yaml",
        "fact: dust.dry_collector_unprotected",
        "fact: dust.shared_collection_system",
    )
    message = load_error(rules_dir)
    assert message.startswith("gm2023.yaml: clause 11(3): field when.fact")
    assert "retired" in message and "dust.mixed_media_shared_collector" in message


def test_a_fact_without_its_question(rules_dir: Path) -> None:
    _rewrite(
        rules_dir / "facts.yaml",
        lambda data: data["facts"]["dust.dry_collector_unprotected"].pop("question"),
    )
    assert load_error(rules_dir) == (
        "facts.yaml: fact dust.dry_collector_unprotected: field question: required text"
    )


def test_a_retired_key_must_name_active_replacements(rules_dir: Path) -> None:
    edit(
        rules_dir / "facts.yaml",
        "replaced_by: [chem.no_dual_power_supply,",
        "replaced_by: [chem.nope,",
    )
    assert load_error(rules_dir) == (
        "facts.yaml: fact chem.single_power_supply: field replaced_by: must list active fact keys"
    )


def test_the_loader_reads_every_rulesets_file_as_the_pure_python_safe_loader() -> None:
    for path in sorted(RULESETS.rglob("*.yaml")):
        raw = path.read_bytes()
        assert parse_yaml(raw, path.name) == yaml.safe_load(raw), path.name


def test_a_menu_item_without_a_name_is_a_load_error_and_names_are_served(
    rules_dir: Path,
) -> None:
    """The `evaluate` text names booking items by menu.yaml's names (review 51 C5)."""
    assert load_rulebook(rules_dir).menu_names["first_lesson"] == "开工第一课"
    edit(rules_dir / "menu.yaml", "{code: first_lesson, name: 开工第一课,", "{code: first_lesson,")
    assert load_error(rules_dir) == "menu.yaml: item first_lesson: field name: required text"
