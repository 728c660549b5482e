"""Every profile field (docs/api.md, EnterpriseProfile) is checked, and each violation
names its field."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.vocabulary import uscc_check_char, uscc_problem
from services.rules.domain.errors import ValidationError
from services.rules.domain.profile import EnterpriseProfile, HazardStatus, parse_profile
from tests.support import profile

FACT_TYPES = {
    "gm.special_ops_uncertified": "int",
    "gen.no_hazard_ledger": "bool",
    "fire.exit_width_ratio": "number",
    "x.label": "string",
}


def parse(data: dict[str, Any]) -> EnterpriseProfile:
    return parse_profile(data, FACT_TYPES, prefix="profile.")


def fields_of(data: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as info:
        parse(data)
    return {v.field for v in info.value.violations}


def test_known_real_world_code_shape_verifies() -> None:
    # the check character is computed over the GB 32100 alphabet with the standard weights
    assert uscc_check_char("91350100M000100Y4") == "3"
    assert uscc_problem("91350100M000100Y43") is None


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("91350100M000100Y4", "18 characters"),
        ("91350100M000100Y44", "check character"),
        ("91350100M000100Y4I", "alphabet"),  # I is not in the alphabet
        ("91350100m000100y43", "alphabet"),  # lower case is not accepted
    ],
)
def test_bad_credit_codes_are_named(code: str, why: str) -> None:
    assert why in (uscc_problem(code) or "")


def test_clean_profile_parses_with_defaults() -> None:
    data = profile()
    del data["merchant_score"], data["credit_rating"]
    parsed = parse(data)
    assert parsed.merchant_score == 12
    assert parsed.credit_rating is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"enterprise_id": ""}, "profile.enterprise_id"),
        ({"enterprise_id": "91350100M000100Y44"}, "profile.enterprise_id"),
        ({"name": ""}, "profile.name"),
        ({"name": "x" * 201}, "profile.name"),
        ({"name": 5}, "profile.name"),
        ({"industry": "banking"}, "profile.industry"),
        ({"industry": None}, "profile.industry"),
        ({"region": ""}, "profile.region"),
        ({"employees": -1}, "profile.employees"),
        ({"employees": "30"}, "profile.employees"),
        ({"employees": True}, "profile.employees"),
        ({"specialized_sme": "yes"}, "profile.specialized_sme"),
        ({"standardization_grade": 4}, "profile.standardization_grade"),
        ({"credit_rating": "AA"}, "profile.credit_rating"),
        ({"blacklisted": 1}, "profile.blacklisted"),
        ({"merchant_score": -1}, "profile.merchant_score"),
        ({"high_risk_domains": ["mining"]}, "profile.high_risk_domains[0]"),
        ({"high_risk_domains": "gas"}, "profile.high_risk_domains"),
        (
            {"accidents": [{"occurred_on": "2026-02-30", "level": "general", "deaths": 0}]},
            "profile.accidents[0].occurred_on",
        ),
        (
            {"accidents": [{"occurred_on": "2026-01-01", "level": "small", "deaths": 0}]},
            "profile.accidents[0].level",
        ),
        (
            {"accidents": [{"occurred_on": "2026-01-01", "level": "general", "deaths": -2}]},
            "profile.accidents[0].deaths",
        ),
        (
            {"penalties": [{"decided_on": "20260101", "amount_yuan": 1}]},
            "profile.penalties[0].decided_on",
        ),
        (
            {"penalties": [{"decided_on": "2026-01-01", "amount_yuan": -1}]},
            "profile.penalties[0].amount_yuan",
        ),
        (
            {"penalties": [{"decided_on": "2026-01-01", "amount_yuan": float("nan")}]},
            "profile.penalties[0].amount_yuan",
        ),
        (
            {
                "hazards": [
                    {
                        "hazard_id": "H1",
                        "clause_ref": "GM2023 11(1)",
                        "severity": "major",
                        "found_on": "2026-01-01",
                        "due_on": "2026-02-01",
                        "status": "open",
                    }
                ]
            },
            "profile.hazards[0].clause_ref",
        ),
        (
            {
                "hazards": [
                    {
                        "hazard_id": "H1",
                        "clause_ref": "GM2023:11(1)",
                        "severity": "major",
                        "found_on": "2026-03-01",
                        "due_on": "2026-02-01",
                        "status": "open",
                    }
                ]
            },
            "profile.hazards[0].due_on",
        ),
        (
            {
                "hazards": [
                    {
                        "hazard_id": "H1",
                        "clause_ref": "GM2023:11(1)",
                        "severity": "grave",
                        "found_on": "2026-01-01",
                        "due_on": "2026-02-01",
                        "status": "open",
                    }
                ]
            },
            "profile.hazards[0].severity",
        ),
        (
            {
                "hazards": [
                    {
                        "hazard_id": "H1",
                        "clause_ref": "GEN:ledger",
                        "severity": "general",
                        "found_on": "2026-01-01",
                        "due_on": "2026-02-01",
                        "status": "open",
                        "closed_late": True,
                    }
                ]
            },
            "profile.hazards[0].closed_late",
        ),
        ({"facts": {"gm.typo": True}}, 'profile.facts["gm.typo"]'),
        ({"facts": {"gen.no_hazard_ledger": 1}}, 'profile.facts["gen.no_hazard_ledger"]'),
        (
            {"facts": {"gm.special_ops_uncertified": 1.5}},
            'profile.facts["gm.special_ops_uncertified"]',
        ),
        (
            {"facts": {"gm.special_ops_uncertified": -1}},
            'profile.facts["gm.special_ops_uncertified"]',
        ),
        ({"facts": {"fire.exit_width_ratio": "0.7"}}, 'profile.facts["fire.exit_width_ratio"]'),
        (
            {"facts": {"fire.exit_width_ratio": float("inf")}},
            'profile.facts["fire.exit_width_ratio"]',
        ),
        ({"facts": {"gen.no_hazard_ledger": None}}, 'profile.facts["gen.no_hazard_ledger"]'),
        ({"nickname": "x"}, "profile.nickname"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    assert field in fields_of(profile(**change))


def test_every_bad_field_is_reported_at_once() -> None:
    bad = profile(enterprise_id="X", employees=-5, industry="?", facts={"nope": True})
    assert fields_of(bad) == {
        "profile.enterprise_id",
        "profile.employees",
        "profile.industry",
        'profile.facts["nope"]',
    }


def test_duplicate_hazard_ids_are_rejected() -> None:
    hazard = {
        "hazard_id": "H1",
        "clause_ref": "GEN:ledger",
        "severity": "general",
        "found_on": "2026-01-01",
        "due_on": "2026-02-01",
        "status": "open",
    }
    assert "profile.hazards[1].hazard_id" in fields_of(profile(hazards=[hazard, hazard]))


def test_int_fact_accepts_whole_floats_from_protobuf_values() -> None:
    parsed = parse(profile(facts={"gm.special_ops_uncertified": 3.0}))
    assert parsed.facts["gm.special_ops_uncertified"] == 3
    assert isinstance(parsed.facts["gm.special_ops_uncertified"], int)


def test_rectified_is_still_open_until_verified() -> None:
    hazard = {
        "hazard_id": "H1",
        "clause_ref": "GEN:ledger",
        "severity": "general",
        "found_on": "2026-01-01",
        "due_on": "2026-02-01",
        "status": "rectified",
    }
    parsed = parse(profile(hazards=[hazard]))
    assert parsed.hazards[0].status is HazardStatus.RECTIFIED
    assert parsed.hazards[0].is_open


def test_not_an_object() -> None:
    with pytest.raises(ValidationError):
        parse_profile([], FACT_TYPES)  # type: ignore[arg-type]


def test_control_characters_are_refused_by_the_parser_itself() -> None:
    """The transports refuse control characters first (malformed.py); the parser does
    too, so a path without them (the CLI's in-process `evaluate`, review finding 2)
    refuses them alike. Free text (a penalty's basis) may break lines; a stored profile
    is read as it was kept."""
    bad = profile(
        name="义乌\x07化工厂",
        region="稠城街道\x00",
        penalties=[{"decided_on": "2025-01-02", "amount_yuan": 1, "basis": "第\x1b条"}],
        facts={"x.label": "a\x7f"},
    )
    with pytest.raises(ValidationError) as info:
        parse(bad)
    assert {v.field: v.description for v in info.value.violations} == {
        "profile.name": "must not contain control characters (U+0007 at 2)",
        "profile.region": "must not contain control characters (U+0000 at 4)",
        "profile.penalties[0].basis": "must not contain control characters (U+001B at 1)",
        'profile.facts["x.label"]': "must not contain control characters (U+007F at 1)",
    }
    lines = [{"decided_on": "2025-01-02", "amount_yuan": 1, "basis": "第一条\n第二条"}]
    assert parse(profile(penalties=lines)).penalties[0].basis == "第一条\n第二条"
    stored = parse_profile(profile(name="义乌\x07化工厂"), FACT_TYPES, stored=True)
    assert stored.name == "义乌\x07化工厂"


@pytest.mark.parametrize(
    "bad", ["12812345678", "1381234567", "１３８１２３４５６７８", "138****567"]
)
def test_contact_mobile_must_be_a_mainland_mobile(bad: str) -> None:
    assert fields_of(profile(1, contact_mobile=bad)) == {"profile.contact_mobile"}


def test_a_masked_contact_is_read_as_sent_and_stands_for_the_number_it_masks() -> None:
    """Review 56 D1: a caller without rules.contact reads 138****5678 and may send the
    profile back; the parser takes the masked number as sent and the register keeps the
    one on record it masks (events.contact_kept); a masked number masking no number on
    record names none and is refused."""
    from services.rules.domain.events import contact_kept

    assert parse(profile(1, contact_mobile="138****5678")).contact_mobile == "138****5678"
    assert contact_kept("13812345678", "138****5678") == "13812345678"
    assert contact_kept("13812345678", "13900001111") == "13900001111"
    assert contact_kept("13812345678", "") == ""
    for stored in ("", "13712345678"):
        with pytest.raises(ValidationError) as info:
            contact_kept(stored, "138****5678")
        assert [v.field for v in info.value.violations] == ["profile.contact_mobile"]


def test_contact_mobile_is_optional_and_kept_as_stored() -> None:
    from services.rules.domain.profile import canonical_stored_profile, profile_to_data

    assert parse(profile(1)).contact_mobile == ""
    given = parse(profile(1, contact_mobile="13812345678"))
    assert given.contact_mobile == "13812345678"
    data = profile_to_data(given)
    assert data["contact_mobile"] == "13812345678"
    assert "contact_mobile" not in profile_to_data(parse(profile(1)))  # stored as before
    assert canonical_stored_profile(data, FACT_TYPES) == given
    assert canonical_stored_profile({**data, "contact_mobile": "1381234567"}, FACT_TYPES) is None


def test_a_number_fact_is_a_measured_quantity_never_negative() -> None:
    """Review 51 (spec silent 11): an exit width of -0.5 times the rule breached 6.5 as if
    measured; it is refused naming the fact. Zero (and -0.0) is a measurement; a stored
    profile is read as it was kept."""
    with pytest.raises(ValidationError) as info:
        parse(profile(facts={"fire.exit_width_ratio": -0.5}))
    assert {v.field: v.description for v in info.value.violations} == {
        'profile.facts["fire.exit_width_ratio"]': "must be a number >= 0 (a measured quantity)"
    }
    assert parse(profile(facts={"fire.exit_width_ratio": -0.0})).facts["fire.exit_width_ratio"] == 0
    assert parse(profile(facts={"fire.exit_width_ratio": 0})).facts["fire.exit_width_ratio"] == 0
    kept = parse_profile(profile(facts={"fire.exit_width_ratio": -0.5}), FACT_TYPES, stored=True)
    assert kept.facts["fire.exit_width_ratio"] == -0.5
