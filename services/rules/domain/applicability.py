"""Which clauses apply to a firm, computed once per kind of firm (issue 15, the hot path).

A clause's scopes read only a firm's industry, high-risk domains, venues, hazardous-
chemicals roles and how its head count compares with the scopes' `max_employees`
thresholds; the editions in force depend only on the date. So every firm with the same
(date, industry, domains, venues, roles, size class) gets the same applicable clauses:
`Applicability` computes them with `applicable_clauses` the first time such a firm is
seen and keeps them. A county register has a few hundred such kinds; past `MAX_KINDS`
the memory is emptied and refilled (it is only a cache: the answer never changes).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date

from .decision import applicable_clauses
from .profile import EnterpriseProfile
from .standards import Catalogue, Clause

MAX_KINDS = 20_000


@dataclass(frozen=True)
class Applicable:
    """The clauses that cover a kind of firm, their refs and their editions (in order)."""

    clauses: tuple[Clause, ...]
    refs: tuple[str, ...]  # clauses[i].ref, computed once
    editions: tuple[str, ...]  # the distinct `edition_key`s of the clauses, first-seen order


class Applicability:
    """`applicable_clauses` remembered per kind of firm (see the module docstring)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._thresholds = sorted(
            {
                scope.max_employees
                for standard in catalogue.standards
                for clause in standard.clauses
                for scope in clause.scopes
                if scope.max_employees is not None
            }
        )
        self._known: dict[tuple[object, ...], Applicable] = {}

    def size_class(self, employees: int) -> int:
        """How many `max_employees` thresholds the head count exceeds: two firms in one
        class pass and fail exactly the same `employees <= max_employees` tests."""
        return bisect.bisect_left(self._thresholds, employees)

    def of(self, profile: EnterpriseProfile, as_of: date) -> Applicable:
        """The clauses that cover this firm on `as_of` (as `applicable_clauses` says)."""
        kind = (
            as_of,
            profile.industry,
            profile.high_risk_domains,
            profile.venues,
            profile.hazchem_roles,
            self.size_class(profile.employees),
        )
        found = self._known.get(kind)
        if found is None:
            clauses = tuple(applicable_clauses(self._catalogue, profile, as_of))
            found = Applicable(
                clauses,
                tuple(c.ref for c in clauses),
                tuple(dict.fromkeys(c.edition_key for c in clauses)),
            )
            if len(self._known) >= MAX_KINDS:
                self._known.clear()
            self._known[kind] = found
        return found
