"""Use cases of the rules service. Evaluation is stateless; the register's handlers
(issue 4) take a unit of work and are the only place that commits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from services.common.values import preview
from services.rules.domain.dates import parse_iso_date, today_shanghai
from services.rules.domain.decision import Decision, applicable_clauses, decide
from services.rules.domain.errors import FieldViolation, ValidationError
from services.rules.domain.policy import Policy
from services.rules.domain.profile import EnterpriseProfile, FactValue, parse_profile
from services.rules.domain.standards import Catalogue


class Matcher(Protocol):
    """What evaluation needs of a rule engine: the clause refs a fact map satisfies."""

    def match(
        self, facts: Mapping[str, FactValue], standard_ids: Iterable[str]
    ) -> frozenset[str]: ...


@dataclass(frozen=True)
class RulesContext:
    """The loaded rulesets, the compiled engine and the clock, shared by every request."""

    catalogue: Catalogue
    policy: Policy
    fact_types: Mapping[str, str]
    engine: Matcher
    today: Callable[[], date] = today_shanghai


def parse_as_of(text: str | None, field: str = "as_of") -> date:
    """The evaluation date: given, or today in Asia/Shanghai."""
    if not text:
        return today_shanghai()
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        raise ValidationError([FieldViolation(field, f"{preview(text)}: {exc}")]) from exc


def evaluate(ctx: RulesContext, profile: EnterpriseProfile, as_of: date) -> Decision:
    """Match the firm's facts against the clauses that apply to it, then decide."""
    applicable = applicable_clauses(ctx.catalogue, profile)
    standard_ids = dict.fromkeys(c.standard_id for c in applicable)
    refs = ctx.engine.match(profile.facts, standard_ids) if profile.facts else frozenset()
    matched = [c for c in applicable if c.ref in refs]
    return decide(profile, matched, ctx.catalogue, ctx.policy, as_of)


def evaluate_data(
    ctx: RulesContext, data: Mapping[str, Any], as_of: str | None, *, prefix: str = "profile."
) -> Decision:
    """Validate a JSON-shaped profile and the as_of date together, then evaluate."""
    violations: list[FieldViolation] = []
    when: date | None = None
    try:
        when = parse_as_of(as_of)
    except ValidationError as exc:
        violations.extend(exc.violations)
    try:
        profile = parse_profile(data, ctx.fact_types, prefix=prefix)
    except ValidationError as exc:
        violations = exc.violations + violations
    if violations or when is None:
        raise ValidationError(violations)
    return evaluate(ctx, profile, when)
