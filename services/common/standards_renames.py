"""The clause and fact-key renames of the standards-in-full release (2026-11), frozen.

Both services' data migrations read this table, not the rulesets of the day: a
migration must mean the same thing whenever it runs. FACT_KEYS maps a retired key to
what a stored `true` and a stored `false` unambiguously stand for (None: the old value
does not say; the key is kept for a person to settle). CLAUSE_REFS maps a renumbered
clause to its successors; one successor is a rename, several cannot be chosen for a
stored record (the hazard or ticket keeps the old ref and is reported).
See CHANGELOG.md for the full list and the reasons.
"""

from __future__ import annotations

from typing import Any

Mapped = dict[str, Any] | None

FACT_KEYS: dict[str, tuple[Mapped, Mapped]] = {
    "gm.contractor_unmanaged": (
        None,
        {"gm.contractor_not_coordinated": False, "gm.contractor_not_inspected": False},
    ),
    "dust.shared_collection_system": (
        None,
        {
            "dust.mixed_media_shared_collector": False,
            "dust.cross_compartment_shared_collector": False,
            "dust.collectors_interconnected": False,
        },
    ),
    "dust.metal_positive_pressure_unprotected": (
        {"dust.metal_positive_pressure": True},
        None,
    ),
    "dust.settling_chamber_or_dry_tunnel": (
        None,
        {"dust.gravity_settling_chamber": False, "dust.dry_tunnel_duct": False},
    ),
    "dust.zone20_non_ex_electrics": (
        {"dust.zone20_electrics_noncompliant": True},
        {"dust.zone20_electrics_noncompliant": False},
    ),
    "dust.no_tramp_or_spark_removal": (
        None,
        {"dust.no_tramp_removal": False, "dust.sander_duct_no_spark_detection": False},
    ),
    "ammonia.direct_evaporation_in_crowded_rooms": (
        None,
        {"ammonia.direct_evaporation_aircon": False},
    ),
    "ammonia.quick_freezer_shared_room_workers": (
        None,
        None,
    ),
    "confined.not_identified": (
        None,
        None,
    ),
    "chem.external_distance_short": (
        {"chem.external_distance_noncompliant": True},
        {"chem.external_distance_noncompliant": False},
    ),
    "chem.key_process_not_automated": (
        None,
        {
            "chem.key_process_no_auto_control": False,
            "chem.key_process_no_emergency_stop": False,
            "chem.key_process_controls_not_in_use": False,
        },
    ),
    "chem.no_gas_detection_or_ex": (
        None,
        {"chem.gas_detection_noncompliant": False, "chem.ex_electrics_noncompliant": False},
    ),
    "chem.single_power_supply": (
        None,
        {"chem.no_dual_power_supply": False, "chem.control_system_no_ups": False},
    ),
    "chem.storage_mixed_or_excess": (
        None,
        {
            "chem.storage_zoning_noncompliant": False,
            "chem.storage_excess": False,
            "chem.incompatibles_mixed": False,
        },
    ),
    "fire.no_daily_patrol": (
        None,
        {"fire.no_daily_fire_patrol": False, "fire.no_monthly_fire_check": False},
    ),
}

CLAUSE_REFS: dict[str, tuple[str, ...]] = {
    "GM2023:12": ("GM2023:12(1)", "GM2023:12(2)"),
    "GM2023:13": ("GM2023:13(1)", "GM2023:13(2)"),
}


def migrate_facts(facts: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(new facts, retired keys kept because their stored value is ambiguous)."""
    out = {k: v for k, v in facts.items() if k not in FACT_KEYS}
    ambiguous = []
    for key, value in facts.items():
        if key not in FACT_KEYS:
            continue
        when_true, when_false = FACT_KEYS[key]
        mapped = when_true if value is True else when_false if value is False else None
        if mapped is None:
            ambiguous.append(key)
            out[key] = value
            continue
        for new_key, new_value in mapped.items():
            out.setdefault(new_key, new_value)
    return out, sorted(ambiguous)


def migrate_ref(ref: str) -> tuple[str, bool]:
    """(the ref to store, whether it had several successors and was left as it was)."""
    successors = CLAUSE_REFS.get(ref)
    if successors is None:
        return ref, False
    if len(successors) == 1:
        return successors[0], False
    return ref, True
