"""Use cases of the rules service. Evaluation is stateless; the register's handlers
(issue 4) take a unit of work and are the only place that commits."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol

from services.common.clock import today_shanghai
from services.common.regions import RegionRegistry
from services.common.values import parse_day, trim
from services.common.vocabulary import Severity
from services.rules.domain.applicability import Applicability
from services.rules.domain.decision import Decision, applicable_clauses, decide, decision_day
from services.rules.domain.errors import FieldViolation, ValidationError
from services.rules.domain.facts import FactRegistry
from services.rules.domain.policy import Policy
from services.rules.domain.profile import (
    EnterpriseProfile,
    EnumSpelling,
    FactValue,
    Hazard,
    parse_profile,
    plain_profile,
    short_names,
)
from services.rules.domain.standards import Catalogue, Clause, Standard


class Matcher(Protocol):
    """What evaluation needs of a rule engine: the clause refs a fact map satisfies."""

    def match(self, facts: Mapping[str, FactValue], editions: Iterable[str]) -> frozenset[str]: ...


@dataclass(frozen=True)
class RulesContext:
    """The loaded rulesets, the compiled engine and the clock, shared by every request."""

    catalogue: Catalogue
    policy: Policy
    fact_types: FactRegistry
    engine: Matcher
    today: Callable[[], date] = today_shanghai
    regions: RegionRegistry | None = None  # None: any region (unit tests of the domain)
    # how this context's callers write enum values in what they send, for the errors
    # that list them: the servers' callers the proto names, the CLI's files the short ones
    spelling: EnumSpelling = short_names
    # the applicable clauses per kind of firm, remembered (built from `catalogue`)
    applicability: Applicability = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.applicability is None:
            object.__setattr__(self, "applicability", Applicability(self.catalogue))


def parse_as_of(text: str | None, field: str = "as_of") -> date:
    """The evaluation date: given, or today in Asia/Shanghai."""
    return parse_day(text, field) if text else today_shanghai()


def evaluate(ctx: RulesContext, profile: EnterpriseProfile, as_of: date) -> Decision:
    """Match the firm's facts against the clauses that apply to it, then decide."""
    applicable = ctx.applicability.of(profile, as_of)
    refs = ctx.engine.match(profile.facts, applicable.editions) if profile.facts else ()
    matched = (
        [c for c, ref in zip(applicable.clauses, applicable.refs, strict=True) if ref in refs]
        if refs
        else []
    )
    return decide(profile, matched, ctx.catalogue, ctx.policy, as_of)


def evaluate_data(
    ctx: RulesContext, data: Mapping[str, Any], as_of: str | None, *, prefix: str = "profile."
) -> Decision:
    """Validate a JSON-shaped profile and the as_of date together, then evaluate (as of
    `as_of`, or `server_day` without one)."""
    violations: list[FieldViolation] = []
    when: date | None = None
    try:
        when = parse_day(as_of, "as_of") if as_of else None
    except ValidationError as exc:
        violations.extend(exc.violations)
    try:
        profile = parse_input_profile(ctx, data, prefix)
    except ValidationError as exc:
        violations = exc.violations + violations
    else:
        violations.extend(hazard_violations(ctx, profile.hazards, prefix))
    if violations:
        raise ValidationError(violations)
    return evaluate(ctx, profile, when or server_day(ctx, profile))


def server_day(ctx: RulesContext, profile: EnterpriseProfile) -> date:
    """The day of a decision the server makes without an as_of: today (Asia/Shanghai), or
    the day of the profile's newest record when it is dated ahead within the clock skew
    (decision.decision_day). A record dated further ahead, which the register refuses,
    stays after that day and is not counted (Evaluate refuses no record for its date)."""
    return decision_day(profile, ctx.today())


def evaluate_typed(
    ctx: RulesContext,
    candidate: EnterpriseProfile | None,
    data: Callable[[], Mapping[str, Any]],
    as_of: str | None,
) -> Decision:
    """`evaluate_data` for a profile sent as typed fields (a proto): `candidate`, built
    straight from them, is evaluated when it passes `plain_input_profile`; otherwise
    `data()`, the same profile in the JSON shape, goes through `evaluate_data`, which
    names every bad field. Same decision, same violations, less work for valid input."""
    profile = plain_input_profile(ctx, candidate)
    if profile is None:
        return evaluate_data(ctx, data(), as_of)
    return evaluate(ctx, profile, parse_day(as_of, "as_of") if as_of else server_day(ctx, profile))


def plain_input_profile(
    ctx: RulesContext, candidate: EnterpriseProfile | None
) -> EnterpriseProfile | None:
    """A typed candidate as `parse_input_profile` would accept it (region in canonical
    form, facts coerced), or None when it might be refused (see profile.plain_profile)
    or there is none."""
    if candidate is None:
        return None
    raw = candidate.region
    if ctx.regions is not None and trim(raw):
        name = ctx.regions.canonical(raw)
        if name is None:
            return None
        if name != raw:
            candidate = replace(candidate, region=name)
    return plain_profile(candidate, ctx.fact_types)


def canonical_region(
    ctx: RulesContext, data: Mapping[str, Any], prefix: str
) -> tuple[Mapping[str, Any], list[FieldViolation]]:
    """The profile with its region in the stored form (a code becomes the Chinese name),
    or a violation naming `{prefix}region` when the region is not in regions.yaml. A
    missing or non-text region is left to parse_profile to report."""
    raw = data.get("region") if isinstance(data, Mapping) else None
    if ctx.regions is None or not isinstance(raw, str) or not trim(raw):
        return data, []
    name = ctx.regions.canonical(raw)
    if name is None:
        return data, [FieldViolation(f"{prefix}region", ctx.regions.problem(raw))]
    return ({**data, "region": name} if name != raw else data), []


def parse_input_profile(
    ctx: RulesContext, data: Mapping[str, Any], prefix: str
) -> EnterpriseProfile:
    """A profile a caller sent: validated, its region checked against regions.yaml and
    stored in canonical form; every bad field named at once."""
    data, violations = canonical_region(ctx, data, prefix)
    try:
        profile = parse_profile(data, ctx.fact_types, prefix=prefix, spelling=ctx.spelling)
    except ValidationError as exc:
        raise ValidationError(exc.violations + violations) from None
    if violations:
        raise ValidationError(violations)
    return profile


@dataclass(frozen=True)
class ApplicableClauses:
    """The clauses that cover a firm on a date, and the editions they come from."""

    clauses: list[Clause]
    standards: list[Standard]
    as_of: date


def clauses_for(
    ctx: RulesContext, profile: EnterpriseProfile, as_of: date, severity: Severity | None = None
) -> ApplicableClauses:
    """What applies to this firm on `as_of` (the same filter `evaluate` uses)."""
    clauses = [
        c
        for c in applicable_clauses(ctx.catalogue, profile, as_of)
        if severity is None or c.severity is severity
    ]
    keys = dict.fromkeys(c.edition_key for c in clauses)
    standards = [s for s in ctx.catalogue.in_force(as_of) if s.key in keys]
    return ApplicableClauses(clauses, standards, as_of)


def clauses_for_data(
    ctx: RulesContext,
    data: Mapping[str, Any],
    as_of: str | None,
    severity: Severity | None = None,
) -> ApplicableClauses:
    """Validate a JSON-shaped profile and the date, then list what applies to it."""
    when = parse_as_of(as_of)
    profile = parse_input_profile(ctx, data, "profile.")
    if violations := hazard_violations(ctx, profile.hazards, "profile."):
        raise ValidationError(violations)
    return clauses_for(ctx, profile, when, severity)


def fact_readers(catalogue: Catalogue) -> dict[str, list[str]]:
    """Fact key → the refs of every loaded clause whose condition reads it."""
    readers: dict[str, list[str]] = {}
    for standard in catalogue.standards:
        for clause in standard.clauses:
            for key in clause.condition.fact_keys():
                refs = readers.setdefault(key, [])
                if clause.ref not in refs:
                    refs.append(clause.ref)
    return readers


def clause_problem(catalogue: Catalogue, ref: str) -> str | None:
    """Why `ref` names no clause of the loaded rulesets, or None when it does."""
    if catalogue.clause(ref) is not None:
        return None
    standard_id, _, clause = ref.partition(":")
    if catalogue.standard(standard_id) is None:
        known = ", ".join(dict.fromkeys(s.id for s in catalogue.standards))
        return f"unknown clause {ref[:48]!r}: no standard {standard_id[:16]!r} is loaded ({known})"
    return (
        f"unknown clause {ref[:48]!r}: {standard_id} has no clause {clause[:32]!r} "
        "(GetStandard lists its clauses)"
    )


def hazard_violations(
    ctx: RulesContext,
    hazards: Iterable[Hazard],
    prefix: str,
    on_record: Collection[str] = (),
) -> list[FieldViolation]:
    """One violation per hazard whose clause_ref names no loaded clause. Hazards already
    on record (by hazard_id) are not judged again: the stored one wins over a resent copy."""
    return [
        FieldViolation(f"{prefix}hazards[{i}].clause_ref", problem)
        for i, h in enumerate(hazards)
        if h.hazard_id not in on_record and (problem := clause_problem(ctx.catalogue, h.clause_ref))
    ]
