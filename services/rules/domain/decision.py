"""Decisions (docs/policy.md §1–4): findings, risk colour, status, white-list blockers, caps.

Everything here is a pure function of the profile, the clauses that matched, the
policy and the `as_of` date, so a decision can be reproduced and unit-tested without
the engine, a database or a clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from services.common.vocabulary import Severity

from . import labels
from .dates import add_days, add_months, on_record, within_months
from .events import CLOCK_SKEW
from .policy import ColourPolicy, Policy
from .profile import EnterpriseProfile, FactValue, Hazard
from .standards import Catalogue, Clause


class RiskLevel(StrEnum):
    """A firm's risk colour (docs/policy.md §2), lowest first: BLUE 低, YELLOW 一般,
    ORANGE 较大, RED 重大. A decision gives the highest whose reasons hold (BLUE when
    none does); RED makes the firm PRIORITY, only BLUE lets it on the white list."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


class Status(StrEnum):
    WHITELIST = "whitelist"
    ROUTINE = "routine"
    PRIORITY = "priority"


@dataclass(frozen=True)
class Finding:
    """One breached clause, or one open hazard found on site (then `hazard_id` is set)."""

    standard_id: str
    clause: str
    severity: Severity
    text: str
    guidance: str
    fact_keys: tuple[str, ...] = ()
    matched_facts: Mapping[str, FactValue] = field(default_factory=dict)
    services: tuple[str, ...] = ()
    verified: bool = True
    hazard_id: str = ""
    edition: str = ""  # the edition of the standard the clause was judged by
    superseded: bool = False  # that edition was replaced by as_of; its successor is not loaded
    successor: str = ""

    @property
    def ref(self) -> str:
        return f"{self.standard_id}:{self.clause}"


@dataclass(frozen=True)
class Blocker:
    """A white-list criterion the firm fails: a stable code and what to fix, in Chinese."""

    code: str
    reason: str
    arose_on: date | None = None  # the day the cause arose (the penalty's, the accident's …)
    ends_on: date | None = None  # the first day it no longer blocks, when time alone ends it


@dataclass(frozen=True)
class Decision:
    enterprise_id: str
    status: Status
    risk_level: RiskLevel
    findings: tuple[Finding, ...]
    whitelist_blockers: tuple[Blocker, ...]
    inspection_cap_per_year: int
    recommended_services: tuple[str, ...]
    ruleset_version: str
    as_of: date
    valid_until: date
    risk_reasons: tuple[str, ...] = ()
    inspection_due_on: date | None = None


def decision_day(profile: EnterpriseProfile, today: date) -> date:
    """The day a decision the server makes "as of today" speaks for: `today`, or the day
    of the profile's newest record (an accident, a penalty, a hazard found or verified)
    when that is later, but never after `today` + CLOCK_SKEW (a day).

    The register takes a record dated up to CLOCK_SKEW ahead of today (a reporting
    system's clock may run ahead of ours: events.not_yet), and every window ignores what
    lies after as_of. Decided as of today, a fatal accident dated tomorrow was on file and
    in no window: the firm stayed BLUE, and its next update put it back on the white list
    (review 51 D1). Decided as of the newest record's day, nothing on file is ignored by
    the server's own decisions (Evaluate without an as_of; the register's: `register_day`).
    A record stored further ahead (before the register refused such records) stays beyond
    the day, as before."""
    latest = max(_record_days(profile), default=today)
    return min(max(latest, today), today + CLOCK_SKEW)


def register_day(profile: EnterpriseProfile, as_of: date | None, today: date) -> date:
    """The day a decision the register stores speaks for (UpsertEnterprise, an event's
    decision, `reevaluate --all`), asked for `as_of` (None: not asked).

    Not asked, or asked for today or a later day: `as_of` (today when not asked), raised
    to `decision_day` when that is later, the day of a record on file dated tomorrow
    (within the clock skew). A decision the register stores is never blind to a record it
    has taken: asked for today, a fatal accident dated tomorrow was ignored, the firm
    white-listed and the gate refusing visits on the accident's own day (review 53 N1).
    Asked for a past day: `as_of` as given, records after it ignored (a historical
    decision, reproducible). Evaluate, which stores nothing, keeps an `as_of` as given."""
    raised = decision_day(profile, today)
    if as_of is None:
        return raised
    return max(as_of, raised) if as_of >= today else as_of


def _record_days(profile: EnterpriseProfile) -> Iterable[date]:
    """The dates of the profile's records: accidents, penalties, hazards found and closed."""
    yield from (a.occurred_on for a in profile.accidents)
    yield from (p.decided_on for p in profile.penalties)
    for h in profile.hazards:
        yield h.found_on
        if h.closed_on is not None:
            yield h.closed_on


def applicable_clauses(
    catalogue: Catalogue, profile: EnterpriseProfile, as_of: date
) -> list[Clause]:
    """The clauses that cover this firm on `as_of`: of each standard the edition in force
    that day, and of that edition the clauses whose industry / domain / venue / size
    scope matches, in catalogue order."""
    return [c for s in catalogue.in_force(as_of) for c in s.clauses if c.applies_to(profile)]


def answered_out_of_scope(
    catalogue: Catalogue,
    profile: EnterpriseProfile,
    as_of: date,
    only: Collection[int] | None = None,
) -> list[str]:
    """Clauses the profile's facts breach but which do not apply only because the profile
    does not list the venue type or hazardous-chemicals role they name: usually a profile
    written before those fields existed, whose breach would otherwise pass unnoticed.
    `only`: the positions (in this walk over the clauses in force) worth asking."""
    found = []
    clauses = (c for s in catalogue.in_force(as_of) for c in s.clauses)
    for n, clause in enumerate(clauses):
        if (only is None or n in only) and (text := out_of_scope_breach(clause, profile)):
            found.append(text)
    return found


def names_a_kind(clause: Clause) -> bool:
    """Whether a scope of the clause names venue types or hazardous-chemicals roles (only
    such a clause can be breached out of scope, `out_of_scope_breach`)."""
    return any(s.venues or s.hazchem_roles for s in clause.scopes)


def out_of_scope_breach(clause: Clause, profile: EnterpriseProfile) -> str | None:
    """`answered_out_of_scope`'s line for one clause, or None."""
    answered = [k for k in clause.condition.fact_keys() if k in profile.facts]
    if (
        answered
        and clause.condition.holds(profile.facts)
        and not clause.applies_to(profile)
        and any(s.matches_but_for_kind(profile) for s in clause.scopes)
    ):
        return f"{clause.ref} needs venues/hazchem_roles ({', '.join(answered)})"
    return None


def decide(
    profile: EnterpriseProfile,
    matched: Iterable[Clause],
    catalogue: Catalogue,
    policy: Policy,
    as_of: date,
) -> Decision:
    """The whole decision for one firm, given the clauses its facts breach."""
    findings = build_findings(profile, matched, catalogue, as_of)
    level, reasons = risk_level(profile, findings, policy, as_of)
    blockers = whitelist_blockers(profile, level, policy, as_of)
    if not blockers:
        status = Status.WHITELIST
    elif level is RiskLevel.RED:
        status = Status.PRIORITY
    else:
        status = Status.ROUTINE
    if status is Status.WHITELIST:
        cap = policy.caps.whitelist
        valid_until = on_record(add_months(as_of, policy.whitelist.valid_months))
    else:
        cap = policy.caps.yearly_cap(profile.standardization_grade, profile.high_risk_domains)
        valid_until = on_record(add_months(as_of, policy.decision_valid_months))
    due = (
        on_record(add_days(as_of, policy.priority_inspection_due_days))
        if status is Status.PRIORITY
        else None
    )
    return Decision(
        enterprise_id=profile.enterprise_id,
        status=status,
        risk_level=level,
        findings=findings,
        whitelist_blockers=blockers,
        inspection_cap_per_year=cap,
        recommended_services=recommended_services(profile, findings, policy),
        ruleset_version=catalogue.version,
        as_of=as_of,
        valid_until=valid_until,
        risk_reasons=reasons,
        inspection_due_on=due,
    )


def build_findings(
    profile: EnterpriseProfile, matched: Iterable[Clause], catalogue: Catalogue, as_of: date
) -> tuple[Finding, ...]:
    """Fact findings in catalogue order, then one per hazard open on `as_of` (found by
    then, not verified fixed by then: `Hazard.open_on`; docs/policy.md §1).

    A fact finding for a clause that an open hazard already cites is the same observed
    condition: it is folded into the hazard's finding rather than counted twice.
    """
    by_ref = {c.ref: _clause_finding(c, profile.facts, as_of) for c in matched}
    hazard_findings = []
    for hazard in profile.hazards:
        if hazard.open_on(as_of):
            hazard_findings.append(
                _hazard_finding(hazard, catalogue, as_of, by_ref.pop(hazard.clause_ref, None))
            )
    ordered = [*by_ref.values(), *hazard_findings]
    ordered.sort(key=lambda f: f.severity is not Severity.MAJOR)  # stable: majors first
    return tuple(ordered)


def _with_edition(finding: Finding, clause: Clause | None, as_of: date) -> Finding:
    """The finding citing its clause's edition, and whether a successor replaced it."""
    if clause is None:
        return finding
    superseded = clause.edition.superseded_by(as_of)
    return replace(
        finding,
        edition=clause.edition.name,
        superseded=superseded,
        successor=clause.edition.successor if superseded else "",
    )


def _clause_finding(clause: Clause, facts: Mapping[str, FactValue], as_of: date) -> Finding:
    """The finding of a clause the engine matched, citing the facts that made it match:
    of an 或者 the alternatives that hold, of a 并且 both halves (docs/policy.md §1)."""
    keys = clause.condition.matching_keys(facts)
    finding = Finding(
        standard_id=clause.standard_id,
        clause=clause.clause,
        severity=clause.severity,
        text=clause.text,
        guidance=clause.guidance,
        fact_keys=keys,
        matched_facts={k: facts[k] for k in keys},
        services=clause.services,
        verified=clause.verified,
    )
    return _with_edition(finding, clause, as_of)


def _hazard_finding(
    hazard: Hazard, catalogue: Catalogue, as_of: date, same: Finding | None
) -> Finding:
    clause = catalogue.clause(hazard.clause_ref, as_of)
    standard_id, _, clause_id = hazard.clause_ref.partition(":")
    severity = hazard.severity
    if same is not None and same.severity is Severity.MAJOR:
        severity = Severity.MAJOR
    finding = Finding(
        standard_id=standard_id,
        clause=clause_id,
        severity=severity,
        text=clause.text if clause else labels.hazard_clause_gone(hazard.clause_ref),
        # the deadline is the hazard's own field (profile Hazard.due_on), which clients
        # show as such: the guidance does not say it again (stop 35)
        guidance=clause.guidance if clause else labels.HAZARD_GUIDANCE_GONE,
        fact_keys=same.fact_keys if same else (),
        matched_facts=same.matched_facts if same else {},
        services=clause.services if clause else (),
        verified=clause.verified if clause else True,
        hazard_id=hazard.hazard_id,
    )
    return _with_edition(finding, clause, as_of)


def risk_level(
    profile: EnterpriseProfile, findings: tuple[Finding, ...], policy: Policy, as_of: date
) -> tuple[RiskLevel, tuple[str, ...]]:
    """The first colour of docs/policy.md §2 that holds, with every reason that made it."""
    for level, reasons_for in (
        (RiskLevel.RED, _red_reasons),
        (RiskLevel.ORANGE, _orange_reasons),
        (RiskLevel.YELLOW, _yellow_reasons),
    ):
        reasons = reasons_for(profile, findings, policy.colour, as_of)
        if reasons:
            return level, tuple(reasons)
    return RiskLevel.BLUE, ()


def _generals(findings: tuple[Finding, ...]) -> int:
    return sum(1 for f in findings if f.severity is Severity.GENERAL)


def _red_reasons(
    profile: EnterpriseProfile, findings: tuple[Finding, ...], cp: ColourPolicy, as_of: date
) -> list[str]:
    """The texts of the reasons that hold, in the order policy.md lists them (each text
    is only built when its reason holds: this runs for every firm)."""
    reasons = []
    majors = [f.ref for f in findings if f.severity is Severity.MAJOR]
    if majors:
        reasons.append(f"存在重大事故隐患：{'、'.join(majors)}")
    if cp.red_if_blacklisted and profile.blacklisted:
        reasons.append("列入安全生产严重失信主体名单")
    window = cp.fatal_accident_window_months
    if any(
        a.deaths >= cp.fatal_accident_min_deaths and within_months(a.occurred_on, as_of, window)
        for a in profile.accidents
    ):
        reasons.append(f"{window}个月内发生造成人员死亡的生产安全事故")
    return reasons


def _orange_reasons(
    profile: EnterpriseProfile, findings: tuple[Finding, ...], cp: ColourPolicy, as_of: date
) -> list[str]:
    """ORANGE's row of policy.md §2 (rulesets/policy.yaml `colour.orange`), asked when no
    RED reason holds: at least `min_general_findings` GENERAL findings, an accident of
    any kind within `accident_window_months`, a listed credit rating, or a high-risk
    domain with standardization grade 0. The texts of those that hold, in that order."""
    reasons = []
    generals, least = _generals(findings), cp.orange_min_general_findings
    if generals >= least:
        reasons.append(f"一般隐患{generals}项（≥{least}项）")
    window = cp.orange_accident_window_months
    if any(within_months(a.occurred_on, as_of, window) for a in profile.accidents):
        reasons.append(f"{window}个月内发生生产安全事故")
    if profile.credit_rating in cp.orange_credit_ratings:
        reasons.append(f"信用等级为{profile.credit_rating}")
    grade_zero = bool(profile.high_risk_domains) and profile.standardization_grade == 0
    if cp.orange_high_risk_grade_zero and grade_zero:
        reasons.append("属高危领域但未取得安全生产标准化等级")
    return reasons


def _yellow_reasons(
    profile: EnterpriseProfile, findings: tuple[Finding, ...], cp: ColourPolicy, as_of: date
) -> list[str]:
    """YELLOW's row (`colour.yellow`), asked when no ORANGE reason holds: at least
    `min_general_findings` GENERAL findings (fewer than ORANGE's threshold, hence the
    table's "1–2"), a penalty within `penalty_window_months`, a listed credit rating, or
    a 十二分制 score below `merchant_score_below`. The texts of those that hold, in order."""
    reasons = []
    generals, score = _generals(findings), profile.merchant_score
    if generals >= cp.yellow_min_general_findings:
        reasons.append(f"一般隐患{generals}项")
    window, below = cp.yellow_penalty_window_months, cp.yellow_merchant_score_below
    if any(within_months(p.decided_on, as_of, window) for p in profile.penalties):
        reasons.append(f"{window}个月内受到行政处罚")
    if profile.credit_rating in cp.yellow_credit_ratings:
        reasons.append(f"信用等级为{profile.credit_rating}")
    if score < below:
        reasons.append(f"十二分制得分{score}分（低于{below}分）")
    return reasons


def _latest(days: Iterable[date], as_of: date, months: int) -> date | None:
    """The latest of `days` inside the N-month window ending on `as_of`, or None."""
    inside = [d for d in days if within_months(d, as_of, months)]
    return max(inside) if inside else None


def _dated(code: str, reason: str, arose: date | None, months: int | None) -> Blocker:
    """A blocker that arose on `arose` and (with `months`) stops blocking the day after
    its window has passed: the window is inclusive (`within_months`); like every date of
    record, that day is at most 2199-12-31 (`on_record`)."""
    ends = (
        on_record(add_days(add_months(arose, months), 1)) if arose and months is not None else None
    )
    return Blocker(code, reason, arose, ends)


def whitelist_blockers(
    profile: EnterpriseProfile, level: RiskLevel, policy: Policy, as_of: date
) -> tuple[Blocker, ...]:
    """Every white-list criterion of docs/policy.md §3 the firm fails, by name, with the
    day each arose and (when time alone ends it) the first day it no longer blocks."""
    wp = policy.whitelist
    out = []
    if level is not RiskLevel.BLUE:
        out.append(Blocker("risk_not_blue", f"风险等级为{labels.RISK_LEVEL[level]}，须为蓝色"))
    if wp.specialized_sme_only and not profile.specialized_sme:
        out.append(Blocker("not_specialized_sme", "白名单仅面向专精特新企业"))
    # (most firms have no history: no window is computed for them)
    accident = profile.accidents and _latest(
        (a.occurred_on for a in profile.accidents), as_of, wp.accident_free_months
    )
    if accident:
        reason = f"{wp.accident_free_months}个月内发生过生产安全事故"
        out.append(_dated("recent_accident", reason, accident, wp.accident_free_months))
    penalty = profile.penalties and _latest(
        (p.decided_on for p in profile.penalties), as_of, wp.penalty_free_months
    )
    if penalty:
        reason = f"{wp.penalty_free_months}个月内受到过行政处罚"
        out.append(_dated("recent_penalty", reason, penalty, wp.penalty_free_months))
    open_hazards = [h for h in profile.hazards if h.open_on(as_of)]
    if open_hazards:
        first = min((h.found_on for h in open_hazards if h.found_on), default=None)
        reason = f"尚有{len(open_hazards)}项隐患未经复查验收"
        out.append(Blocker("open_hazard", reason, first))
    late = profile.hazards and _latest(
        (h.closed_on for h in profile.hazards if h.closed_late and h.closed_on is not None),
        as_of,
        wp.late_closure_block_months,
    )
    if late:
        reason = f"{wp.late_closure_block_months}个月内有隐患逾期才整改完毕"
        out.append(_dated("late_rectification", reason, late, wp.late_closure_block_months))
    if profile.credit_rating not in wp.credit_ratings:
        reason = labels.credit_blocker(profile.credit_rating or "", wp.credit_ratings)
        out.append(Blocker("credit_rating", reason))
    if profile.blacklisted:
        out.append(Blocker("blacklisted", "列入安全生产严重失信主体名单"))
    small_and_safe = (
        profile.employees < wp.small_firm_employees_below and not profile.high_risk_domains
    )
    if profile.standardization_grade not in wp.standardization_grades and not small_and_safe:
        reason = labels.standardization_blocker(
            profile.standardization_grade,
            wp.standardization_grades,
            wp.small_firm_employees_below,
        )
        out.append(Blocker("standardization", reason))
    if profile.merchant_score < wp.min_merchant_score:
        out.append(
            Blocker(
                "merchant_score",
                f"十二分制得分{profile.merchant_score}分，须不低于{wp.min_merchant_score}分",
            )
        )
    return tuple(out)


def recommended_services(
    profile: EnterpriseProfile, findings: tuple[Finding, ...], policy: Policy
) -> tuple[str, ...]:
    """Booking items that help: the findings' items, plus coaching for grade-0 high-risk firms."""
    services = {s for f in findings for s in f.services}
    if profile.high_risk_domains and profile.standardization_grade == 0:
        services.add(policy.grade_zero_service)
    return tuple(sorted(services))


def without_whitelist(
    decision: Decision, blocker: Blocker, profile: EnterpriseProfile, policy: Policy
) -> Decision:
    """The same decision with the white list withdrawn (a revoking event, docs/policy.md §5)
    and `blocker` (revoked_by_event) among its blockers: for a firm whose entry was in
    force, which the event revokes (the register's `_decision` asks).

    Restoration happens only through a later decision that passes every criterion.
    """
    if decision.status is not Status.WHITELIST:
        return replace(decision, whitelist_blockers=(*decision.whitelist_blockers, blocker))
    return replace(
        decision,
        status=Status.ROUTINE,
        whitelist_blockers=(blocker,),
        inspection_cap_per_year=policy.caps.yearly_cap(
            profile.standardization_grade, profile.high_risk_domains
        ),
        valid_until=on_record(add_months(decision.as_of, policy.decision_valid_months)),
    )
