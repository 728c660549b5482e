"""The loaded rulesets: standards, clauses, applicability scopes and conditions.

Conditions are a small tree (comparison / all / any) over fact keys. `holds` is the
reference meaning of a condition; the durable_rules adapter compiles the same tree,
and a property test checks that both agree. `matching_keys` names the facts that make
a condition hold: what a finding cites.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Union

from services.common.vocabulary import Domain, Severity

from .profile import EnterpriseProfile, FactValue, HazchemRole, Industry, Venue

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

    def matching_keys(self, facts: Mapping[str, FactValue]) -> tuple[str, ...]:
        """The keys that make this condition hold on `facts` (none when it does not)."""
        return (self.fact,) if self.holds(facts) else ()

    def describe(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else str(self.value)
        return f"{self.fact} {OPERATOR_TEXT[self.op]} {value}"


@dataclass(frozen=True)
class _Group:
    """The parts of an all/any node: the keys they read and how they read aloud."""

    parts: tuple[Condition, ...]
    JOINER: ClassVar[str] = ""

    def fact_keys(self) -> tuple[str, ...]:
        return _unique(k for p in self.parts for k in p.fact_keys())

    def describe(self) -> str:
        return "(" + f" {self.JOINER} ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class AllOf(_Group):
    JOINER: ClassVar[str] = "AND"

    def holds(self, facts: Mapping[str, FactValue]) -> bool:
        return all(p.holds(facts) for p in self.parts)

    def matching_keys(self, facts: Mapping[str, FactValue]) -> tuple[str, ...]:
        """Every half's keys when all hold (并且 needs them all); none otherwise."""
        keys = [p.matching_keys(facts) for p in self.parts]
        return _unique(k for part in keys for k in part) if all(keys) else ()


@dataclass(frozen=True)
class AnyOf(_Group):
    JOINER: ClassVar[str] = "OR"

    def holds(self, facts: Mapping[str, FactValue]) -> bool:
        return any(p.holds(facts) for p in self.parts)

    def matching_keys(self, facts: Mapping[str, FactValue]) -> tuple[str, ...]:
        """The keys of the alternatives that hold (或者: one is enough, each one counts)."""
        return _unique(k for p in self.parts for k in p.matching_keys(facts))


Condition = Union[Comparison, AllOf, AnyOf]  # noqa: UP007 - a runtime alias used in isinstance


def _unique(keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True)
class Scope:
    """A firm matches when every listed dimension matches (an empty scope matches all)."""

    industries: frozenset[Industry] = frozenset()
    domains: frozenset[Domain] = frozenset()
    venues: frozenset[Venue] = frozenset()
    hazchem_roles: frozenset[HazchemRole] = frozenset()
    max_employees: int | None = None

    def matches(self, profile: EnterpriseProfile) -> bool:
        if self.industries and profile.industry not in self.industries:
            return False
        if self.domains and not (self.domains & profile.high_risk_domains):
            return False
        if self.venues and not (self.venues & profile.venues):
            return False
        if self.hazchem_roles and not (self.hazchem_roles & profile.hazchem_roles):
            return False
        return self.max_employees is None or profile.employees <= self.max_employees

    def matches_but_for_kind(self, profile: EnterpriseProfile) -> bool:
        """Whether it would match if the firm listed the venues / hazchem roles it names."""
        if not (self.venues or self.hazchem_roles) or self.matches(profile):
            return False
        wider = Scope(self.industries, self.domains, max_employees=self.max_employees)
        return wider.matches(profile)

    def describe(self) -> str:
        parts = []
        if self.industries:
            parts.append("industry in " + ", ".join(sorted(self.industries)))
        if self.domains:
            parts.append("domain in " + ", ".join(sorted(self.domains)))
        if self.venues:
            parts.append("venue in " + ", ".join(sorted(self.venues)))
        if self.hazchem_roles:
            parts.append("hazardous chemicals " + "/".join(sorted(self.hazchem_roles)))
        if self.max_employees is not None:
            parts.append(f"employees ≤ {self.max_employees}")
        return " and ".join(parts) or "every firm"


@dataclass(frozen=True)
class Edition:
    """Which text of a standard this is and when it was law.

    `effective_from` None means always (rules that are not dated national standards).
    `superseded_on`/`successor` say a newer text replaced it; when that text is not loaded
    this edition keeps applying and every finding says it is superseded.
    """

    name: str = ""
    effective_from: date | None = None
    superseded_on: date | None = None
    successor: str = ""

    def in_force_on(self, day: date) -> bool:
        return self.effective_from is None or self.effective_from <= day

    def superseded_by(self, day: date) -> bool:
        return self.superseded_on is not None and self.superseded_on <= day


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
    title: str = ""  # at most 16 characters, for the poster checklist
    edition: Edition = Edition()  # the edition of the standard this clause belongs to

    @property
    def ref(self) -> str:
        return f"{self.standard_id}:{self.clause}"

    @property
    def edition_key(self) -> str:
        """The key of the edition this clause belongs to (`Standard.key`)."""
        return edition_key(self.standard_id, self.edition)

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
    edition: Edition = Edition()

    @property
    def key(self) -> str:
        """The id of this edition: one compiled ruleset group per key."""
        return edition_key(self.id, self.edition)

    @property
    def verified(self) -> bool:
        return all(c.verified for c in self.clauses)

    def applies_to(self, profile: EnterpriseProfile) -> bool:
        """Whether any clause of this standard can apply to the firm at all."""
        return any(c.applies_to(profile) for c in self.clauses)


@dataclass(frozen=True)
class Catalogue:
    """Every loaded edition of every standard, and the combined version.

    `standards` holds every edition (oldest first within one id); `in_force(day)` picks,
    per standard id, the edition that was law on that day: the latest one whose
    `effective_from` is on or before it. A standard none of whose loaded editions had
    started yet is not applied (its predecessor text is not loaded). The last edition
    keeps applying past its `superseded_on` while no successor is loaded.
    """

    standards: tuple[Standard, ...]
    version: str

    def in_force(self, day: date) -> tuple[Standard, ...]:
        chosen: dict[str, Standard] = {}
        for standard in self.standards:
            if standard.edition.in_force_on(day):
                current = chosen.get(standard.id)
                if current is None or _starts(standard) >= _starts(current):
                    chosen[standard.id] = standard
        return tuple(chosen.values())

    def current(self) -> tuple[Standard, ...]:
        """The latest edition of each standard id (what ListStandards shows first)."""
        latest: dict[str, Standard] = {}
        for standard in self.standards:
            if standard.id not in latest or _starts(standard) >= _starts(latest[standard.id]):
                latest[standard.id] = standard
        return tuple(latest.values())

    def standard(self, standard_id: str, day: date | None = None) -> Standard | None:
        """The edition in force on `day` (default: the latest loaded edition)."""
        pool = self.in_force(day) if day is not None else self.current()
        return next((s for s in pool if s.id == standard_id), None)

    def clause(self, ref: str, day: date | None = None) -> Clause | None:
        """The clause a ref names, in the edition in force on `day` (default: latest),
        falling back to any loaded edition that has it (an old finding's clause)."""
        standard_id, _, clause_id = ref.partition(":")
        standard = self.standard(standard_id, day)
        found = (
            next((c for c in standard.clauses if c.clause == clause_id), None) if standard else None
        )
        if found is not None:
            return found
        return next(
            (
                c
                for s in reversed(self.standards)
                if s.id == standard_id
                for c in s.clauses
                if c.clause == clause_id
            ),
            None,
        )


def edition_key(standard_id: str, edition: Edition) -> str:
    return f"{standard_id}@{edition.name}" if edition.name else standard_id


def _starts(standard: Standard) -> date:
    return standard.edition.effective_from or date.min
