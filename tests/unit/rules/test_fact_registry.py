"""The fact-key registry: questions for every key, retired keys refused naming their
replacements, typos answered with the nearest keys, stored old values migrated only
where they say something unambiguous."""

from __future__ import annotations

import re

import pytest

from services.common.standards_renames import FACT_KEYS, migrate_facts
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.errors import ValidationError
from services.rules.domain.facts import FactDefinition, FactRegistry, RetiredFact
from services.rules.domain.profile import parse_profile
from tests.support import ROOT, profile

REGISTRY = FactRegistry(
    {
        "dust.metal_positive_pressure": FactDefinition(
            "dust.metal_positive_pressure", "bool", "GM2023", "金属粉尘正压除尘", "是否正压？"
        ),
        "dust.other_positive_blow_no_ignition_control": FactDefinition(
            "dust.other_positive_blow_no_ignition_control", "bool", "GM2023", "标签", "问题？"
        ),
        "ammonia.quick_freezer_room_workers": FactDefinition(
            "ammonia.quick_freezer_room_workers", "int", "GM2023", "人数", "几人？", "人"
        ),
    },
    {
        "dust.metal_positive_pressure_unprotected": RetiredFact(
            "dust.metal_positive_pressure_unprotected",
            ("dust.metal_positive_pressure", "dust.other_positive_blow_no_ignition_control"),
            "11(4) is 或者",
            when_true={"dust.metal_positive_pressure": True},
            when_false=None,
        )
    },
)


def _violations(facts: dict[str, object], registry: FactRegistry = REGISTRY) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        parse_profile(profile(facts=facts), registry)
    return {v.field: v.description for v in raised.value.violations}


def test_a_retired_key_is_refused_naming_its_replacements() -> None:
    found = _violations({"dust.metal_positive_pressure_unprotected": True})
    (path, message), *_ = found.items()
    assert path.startswith("facts[") and "dust.metal_positive_pressure_unp" in path
    assert "retired" in message
    assert "dust.metal_positive_pressure" in message
    assert "dust.other_positive_blow_no_ignition_control" in message


def test_a_mistyped_key_is_answered_with_the_nearest_known_keys() -> None:
    found = _violations({"dust.metal_positive_presure": True})
    assert (
        "did you mean dust.metal_positive_pressure" in found['facts["dust.metal_positive_presure"]']
    )


def test_a_key_nothing_resembles_gets_no_guess() -> None:
    found = _violations({"zzz": True})
    assert "did you mean" not in found['facts["zzz"]']


def test_a_stored_profile_keeps_a_retired_key_the_migration_left() -> None:
    stored = parse_profile(
        profile(facts={"dust.metal_positive_pressure_unprotected": False}), REGISTRY, stored=True
    )
    assert stored.facts == {"dust.metal_positive_pressure_unprotected": False}


def test_migration_maps_only_what_an_old_value_unambiguously_says() -> None:
    facts, ambiguous = migrate_facts({"dust.metal_positive_pressure_unprotected": True})
    assert (facts, ambiguous) == ({"dust.metal_positive_pressure": True}, [])
    facts, ambiguous = migrate_facts({"dust.metal_positive_pressure_unprotected": False})
    assert facts == {"dust.metal_positive_pressure_unprotected": False}
    assert ambiguous == ["dust.metal_positive_pressure_unprotected"]
    facts, _ = migrate_facts({"chem.single_power_supply": False, "gen.no_hazard_ledger": True})
    assert facts == {
        "chem.no_dual_power_supply": False,
        "chem.control_system_no_ups": False,
        "gen.no_hazard_ledger": True,
    }


def test_a_value_under_the_new_key_wins_over_a_mapped_old_one() -> None:
    facts, _ = migrate_facts(
        {"dust.metal_positive_pressure_unprotected": True, "dust.metal_positive_pressure": False}
    )
    assert facts == {"dust.metal_positive_pressure": False}


def test_the_frozen_migration_table_is_this_release_s_registry(rulebook: Rulebook) -> None:
    """The migrations' frozen copy agrees with facts.yaml's retired entries (it may only
    fall behind in a later release, when facts.yaml retires more keys)."""
    retired = rulebook.fact_types.retired
    assert set(FACT_KEYS) <= set(retired)
    for key, (when_true, when_false) in FACT_KEYS.items():
        assert (when_true, when_false) == (retired[key].when_true, retired[key].when_false), key


def test_every_loaded_key_asks_a_question_and_numbers_have_units(rulebook: Rulebook) -> None:
    registry = rulebook.fact_types
    assert len(registry) >= 150
    for key, definition in registry.definitions.items():
        assert "？" in definition.question, key
        assert definition.label, key
        if definition.type in ("int", "number"):
            assert definition.unit, key


def test_every_loaded_key_is_read_by_some_clause(rulebook: Rulebook) -> None:
    read = {
        k for s in rulebook.catalogue.standards for c in s.clauses for k in c.condition.fact_keys()
    }
    assert set(rulebook.fact_types) == read


def test_every_retired_key_names_loaded_replacements(rulebook: Rulebook) -> None:
    registry = rulebook.fact_types
    assert {
        "dust.metal_positive_pressure_unprotected",
        "chem.single_power_supply",
        "fire.no_daily_patrol",
        "confined.not_identified",
    } <= set(registry.retired)
    for old in registry.retired.values():
        assert old.replaced_by and all(k in registry for k in old.replaced_by), old.key


def test_only_the_first_unknown_keys_get_a_hint_and_the_map_is_bounded(rulebook: Rulebook) -> None:
    """The nearest-key hint compares with every key: a flood of bad keys must stay cheap."""
    facts = {f"dust.metal_positive_presure{i}": True for i in range(40)}
    found = _violations(facts, rulebook.fact_types)
    hinted = [d for d in found.values() if "did you mean" in d]
    assert len(found) == 40 and 0 < len(hinted) <= 5
    many = {f"x{i}": True for i in range(501)}
    assert _violations(many, rulebook.fact_types) == {
        "facts": "at most 500 entries (the registry has fewer keys)"
    }


RENAMES = {
    "dust.zone20_non_ex_electrics": "dust.zone20_electrics_noncompliant",
    "chem.external_distance_short": "chem.external_distance_noncompliant",
}


def test_the_plain_renames_are_the_retired_keys_whose_value_carries_over(
    rulebook: Rulebook,
) -> None:
    """Review 51 K1: of facts.md's keys the registry retired, two only changed their name."""
    assert dict(rulebook.fact_types.renamed) == RENAMES


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("old", sorted(RENAMES))
def test_a_renamed_key_is_read_as_its_current_key(
    rulebook: Rulebook, old: str, value: bool
) -> None:
    parsed = parse_profile(profile(facts={old: value}), rulebook.fact_types)
    assert parsed.facts == {RENAMES[old]: value}


def test_a_renamed_key_sent_beside_its_current_name_is_refused(rulebook: Rulebook) -> None:
    old, new = "dust.zone20_non_ex_electrics", "dust.zone20_electrics_noncompliant"
    found = _violations({old: True, new: True}, rulebook.fact_types)
    assert found == {f'facts["{old}"]': f"the former name of {new}, which is given too: send one"}


def test_a_key_split_in_several_is_still_refused_naming_them(rulebook: Rulebook) -> None:
    found = _violations({"gm.contractor_unmanaged": True}, rulebook.fact_types)
    message = found['facts["gm.contractor_unmanaged"]']
    assert message.startswith("retired fact key; use gm.contractor_not_coordinated, ")
    assert "gm.contractor_not_inspected" in message


def test_docs_list_every_retired_key_with_its_current_ones(rulebook: Rulebook) -> None:
    """docs/standards.md's table of retired keys is facts.yaml's, and says which are read."""
    text = (ROOT / "docs" / "standards.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \| (accepted|refused)[^|]*\|$", text, re.M)
    table = {old: (tuple(re.findall(r"`([^`]+)`", new)), how) for old, new, how in rows}
    registry = rulebook.fact_types
    assert table == {
        key: (r.replaced_by, "accepted" if r.renamed_to else "refused")
        for key, r in registry.retired.items()
    }
