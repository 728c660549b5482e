"""The loaded rulesets: standards, clauses, applicability scopes and conditions.

Conditions are a small tree (comparison / all / any) over fact keys. `holds` is the
reference meaning of a condition; the durable_rules adapter compiles the same tree,
and a property test checks that both agree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Union

from .profile import Domain, EnterpriseProfile, FactValue, Industry, Severity

OPERATORS: Mapping[str, Callable[[FactValue, FactValue], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
ORDERING_OPERATORS = frozenset({"gt", "ge", "lt", "le"})
OPERATOR_TEXT = {"eq": "=", "ne": "≠", "gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


@dataclass(frozen=True)
class Comparison:
    """`fact op value`; a fact absent from the profile never matches (not observed)."""

    fact: str
    op: str
    value: FactValue

    def holds(self, facts: Mapping[str, FactValue]) -> bool:
        if self.fact not in facts:
            return False
        actual = facts[self.fact]
        if self.op in ORDERING_OPERATORS and isinstance(actual, bool):
            return False
        try:
            return OPERATORS[self.op](actual, self.value)
        except TypeError:
            return False

    def fact_keys(self) -> tuple[str, ...]:
        return (self.fact,)

    def describe(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else str(self.value)
        return f"{self.fact} {OPERATOR_TEXT[self.op]} {value}"


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]

    def holds(self, facts: Mapping[str, FactValue]) -> bool:
        return all(p.holds(facts) for p in self.parts)

    def fact_keys(self) -> tuple[str, ...]:
        return _unique(k for p in self.parts for k in p.fact_keys())

    def describe(self) -> str:
        return "(" + " AND ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def holds(self, facts: Mapping[str, FactValue]) -> bool:
        return any(p.holds(facts) for p in self.parts)

    def fact_keys(self) -> tuple[str, ...]:
        return _unique(k for p in self.parts for k in p.fact_keys())

    def describe(self) -> str:
        return "(" + " OR ".join(p.describe() for p in self.parts) + ")"


Condition = Union[Comparison, AllOf, AnyOf]  # noqa: UP007 - a runtime alias used in isinstance


def _unique(keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True)
class Scope:
    """A firm matches when every listed dimension matches (an empty scope matches all)."""

    industries: frozenset[Industry] = frozenset()
    domains: frozenset[Domain] = frozenset()
    max_employees: int | None = None

    def matches(self, profile: EnterpriseProfile) -> bool:
        if self.industries and profile.industry not in self.industries:
            return False
        if self.domains and not (self.domains & profile.high_risk_domains):
            return False
        return self.max_employees is None or profile.employees <= self.max_employees

    def describe(self) -> str:
        parts = []
        if self.industries:
            parts.append("industry in " + ", ".join(sorted(self.industries)))
        if self.domains:
            parts.append("domain in " + ", ".join(sorted(self.domains)))
        if self.max_employees is not None:
            parts.append(f"employees ≤ {self.max_employees}")
        return " and ".join(parts) or "every firm"


@dataclass(frozen=True)
class Clause:
    standard_id: str
    clause: str
    severity: Severity
    text: str
    guidance: str
    condition: Condition
    scopes: tuple[Scope, ...]  # applies when any scope matches; empty = every firm
    services: tuple[str, ...]
    verified: bool
    note: str = ""

    @property
    def ref(self) -> str:
        return f"{self.standard_id}:{self.clause}"

    def applies_to(self, profile: EnterpriseProfile) -> bool:
        return not self.scopes or any(s.matches(profile) for s in self.scopes)

    def describe_scope(self) -> str:
        return " OR ".join(s.describe() for s in self.scopes) or "every firm"


@dataclass(frozen=True)
class Standard:
    id: str
    title: str
    issuer: str
    source: str
    in_force_on: str
    version: str  # content hash of the ruleset file
    clauses: tuple[Clause, ...]
    scopes: tuple[Scope, ...] = ()

    @property
    def verified(self) -> bool:
        return all(c.verified for c in self.clauses)

    def applies_to(self, profile: EnterpriseProfile) -> bool:
        """Whether any clause of this standard can apply to the firm at all."""
        return any(c.applies_to(profile) for c in self.clauses)


@dataclass(frozen=True)
class Catalogue:
    """Every loaded standard, the policy, the menu codes, and the combined version."""

    standards: tuple[Standard, ...]
    version: str

    def standard(self, standard_id: str) -> Standard | None:
        return next((s for s in self.standards if s.id == standard_id), None)

    def clause(self, ref: str) -> Clause | None:
        standard_id, _, clause_id = ref.partition(":")
        standard = self.standard(standard_id)
        if standard is None:
            return None
        return next((c for c in standard.clauses if c.clause == clause_id), None)
