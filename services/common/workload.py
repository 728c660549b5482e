"""A seeded generator of county registers: firms that look like a real one, any size.

Used by the demo city (demo_city.py, which the benchmarks also run): the same seed gives the
same firms on every machine. The mix follows what the city reports describe: mostly
small 工贸 and commerce firms; a minority in the nine high-risk domains; 5–10 % of firms
with a finding, a few % of them MAJOR; some accident, penalty and hazard histories.
Every enterprise id carries a valid GB 32100 check character; regions come from the
deployment's region list. Profiles are the JSON shape the rules service reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.common.vocabulary import uscc_check_char

# (industry, share of a county register): small manufacturing and trade dominate Yiwu.
INDUSTRIES = (
    ("commerce_trade", 0.30),
    ("light_industry", 0.20),
    ("machinery", 0.15),
    ("textile", 0.10),
    ("small_venue", 0.10),
    ("building_materials", 0.04),
    ("chemicals", 0.03),
    ("nonferrous", 0.02),
    ("metallurgy", 0.01),
    ("tobacco", 0.005),
    ("other", 0.045),
)
# (domain, the industries it appears in, probability there)
DOMAINS = (
    ("dust_explosion", ("light_industry", "machinery", "textile", "nonferrous"), 0.15),
    ("confined_space", ("light_industry", "machinery", "building_materials"), 0.05),
    ("ammonia_refrigeration", ("commerce_trade", "light_industry"), 0.03),
    ("hazardous_chemicals", ("chemicals", "commerce_trade", "textile"), 0.30),
    ("metal_smelting", ("metallurgy", "nonferrous", "machinery"), 0.30),
    ("fire_crowded", ("commerce_trade", "small_venue", "textile"), 0.20),
    ("warehousing_logistics", ("commerce_trade",), 0.20),
    ("gas", ("small_venue", "commerce_trade"), 0.10),
    ("special_equipment", ("machinery", "building_materials"), 0.10),
)
# breaches a generated firm may have: (fact, value, is it MAJOR)
GENERAL_BREACHES = (
    ("gen.no_hazard_ledger", True),
    ("gen.training_missing", True),
    ("gen.extinguishers_expired", True),
    ("fire.ebike_indoor_charging", True),
    ("fire.evacuation_blocked", True),
)
MAJOR_BREACHES = (
    ("gm.special_ops_uncertified", 2),
    ("fire.flammables_with_people_same_building", True),
    ("fire.class_ab_in_basement", True),
    ("gm.contractor_not_coordinated", True),
)
CLEAN_FACTS = (
    ("gen.no_hazard_ledger", False),
    ("gen.training_missing", False),
    ("gen.extinguishers_expired", False),
    ("fire.ebike_indoor_charging", False),
    ("gm.special_ops_uncertified", 0),
)


def uscc(serial: int, head: str = "91330782MA") -> str:
    """A unified social credit code with a correct check character (GB 32100-2015)."""
    body = head + f"{serial:0{17 - len(head)}d}"
    return body + uscc_check_char(body)


@dataclass(frozen=True)
class Mix:
    """How many firms have findings: share with any, share of those that are MAJOR."""

    with_finding: float = 0.08
    major_share: float = 0.35
    history: float = 0.05  # accidents, penalties or hazards on record


def profiles(
    count: int,
    *,
    seed: int = 20261127,
    regions: Sequence[str] = ("稠城街道", "北苑街道", "稠江街道", "江东街道", "后宅街道", "佛堂镇"),
    as_of: date = date(2026, 6, 30),
    mix: Mix = Mix(),
) -> Iterator[dict[str, Any]]:
    """`count` profiles, deterministic for a seed; constant memory (a generator)."""
    rng = random.Random(seed)
    names, weights = zip(*INDUSTRIES, strict=True)
    for n in range(count):
        industry = rng.choices(names, weights)[0]
        domains = sorted(d for d, where, p in DOMAINS if industry in where and rng.random() < p)
        firm: dict[str, Any] = {
            "enterprise_id": uscc(n + 1),
            "name": f"义乌市示例{industry}企业{n + 1}号",
            "industry": industry,
            "region": rng.choice(regions),
            "employees": int(rng.lognormvariate(3.2, 0.9)),
            "specialized_sme": rng.random() < 0.3,
            "standardization_grade": rng.choices((0, 1, 2, 3), (0.5, 0.05, 0.2, 0.25))[0],
            "credit_rating": rng.choices("ABCD", (0.6, 0.3, 0.08, 0.02))[0],
            "high_risk_domains": domains,
            "facts": dict(rng.sample(CLEAN_FACTS, 3)),
        }
        if rng.random() < mix.with_finding:
            pool = MAJOR_BREACHES if rng.random() < mix.major_share else GENERAL_BREACHES
            firm["facts"].update(dict([rng.choice(pool)]))
        if rng.random() < mix.history:
            firm.update(_history(rng, as_of, n))
        yield firm


def _history(rng: random.Random, as_of: date, n: int) -> dict[str, Any]:
    day = as_of - timedelta(days=rng.randint(30, 900))
    kind = rng.choice(("accidents", "penalties", "hazards"))
    if kind == "accidents":
        return {"accidents": [{"occurred_on": day.isoformat(), "level": "general", "deaths": 0}]}
    if kind == "penalties":
        return {
            "penalties": [
                {"decided_on": day.isoformat(), "amount_yuan": 5000, "basis": "《安全生产法》"}
            ]
        }
    return {
        "hazards": [
            {
                "hazard_id": f"H{n}",
                "clause_ref": "GEN:ledger",
                "severity": "general",
                "found_on": day.isoformat(),
                "due_on": (day + timedelta(days=30)).isoformat(),
                "status": "verified",
                "closed_on": (day + timedelta(days=20)).isoformat(),
            }
        ]
    }
