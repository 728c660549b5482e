"""The decision policy's thresholds (docs/policy.md), loaded from rulesets/policy.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.vocabulary import Domain

from .profile import CreditRating


@dataclass(frozen=True)
class ColourPolicy:
    fatal_accident_window_months: int = 12
    fatal_accident_min_deaths: int = 1
    red_if_blacklisted: bool = True
    orange_min_general_findings: int = 3
    orange_accident_window_months: int = 36
    orange_credit_ratings: frozenset[CreditRating] = frozenset({CreditRating.D})
    orange_high_risk_grade_zero: bool = True
    yellow_min_general_findings: int = 1
    yellow_penalty_window_months: int = 12
    yellow_credit_ratings: frozenset[CreditRating] = frozenset({CreditRating.C})
    yellow_merchant_score_below: int = 9


@dataclass(frozen=True)
class WhitelistPolicy:
    specialized_sme_only: bool = True
    accident_free_months: int = 36
    penalty_free_months: int = 24
    late_closure_block_months: int = 12
    credit_ratings: frozenset[CreditRating] = frozenset({CreditRating.A, CreditRating.B})
    standardization_grades: frozenset[int] = frozenset({1, 2, 3})
    small_firm_employees_below: int = 50
    min_merchant_score: int = 10
    valid_months: int = 12


@dataclass(frozen=True)
class CapPolicy:
    hazardous_domains: frozenset[Domain] = frozenset(
        {Domain.HAZARDOUS_CHEMICALS, Domain.METAL_SMELTING}
    )
    ordinary: Mapping[int, int] | None = None
    hazardous: Mapping[int, int] | None = None
    whitelist: int = 0
    per_authority_per_year: int = 2

    def yearly_cap(self, grade: int, domains: frozenset[Domain]) -> int:
        table = self.hazardous if domains & self.hazardous_domains else self.ordinary
        return (table or {}).get(grade, 0)


@dataclass(frozen=True)
class GatePolicy:
    joint_window_days: int = 14
    counted_kinds: frozenset[str] = frozenset({"ROUTINE", "CAMPAIGN"})


@dataclass(frozen=True)
class Policy:
    version: str
    colour: ColourPolicy
    whitelist: WhitelistPolicy
    caps: CapPolicy
    gate: GatePolicy
    priority_inspection_due_days: int = 30
    decision_valid_months: int = 12
    grade_zero_service: str = "standardization_coaching"
