"""The inspection gate (docs/policy.md §6) as a pure function of what is already booked.

The caller (service layer) holds a lock on the firm while it reads the firm's allowed
inspections, calls `check`, and records the verdict, so two racing requests see each
other's result: the counting is serialised by the database, the rules live here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class InspectionKind(StrEnum):
    ROUTINE = "routine"
    CAMPAIGN = "campaign"
    COMPLAINT = "complaint"
    REFERRAL = "referral"
    DATA_MONITORING = "data_monitoring"
    ACCIDENT = "accident"
    RECHECK = "recheck"
    ENTERPRISE_REQUEST = "enterprise_request"
    LICENSING = "licensing"


@dataclass(frozen=True)
class PastInspection:
    """An allowed, counted inspection of this firm already on record: one visit's opening
    one, or one that joined the visit (`joint_id`)."""

    authority: str
    planned_on: date
    joint_id: str


@dataclass(frozen=True)
class GateRules:
    counted_kinds: frozenset[str]  # upper-case kind names, from policy.yaml
    per_authority_per_year: int
    joint_window_days: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    joint: bool
    joint_id: str
    counted: bool
    reason_code: str
    reason: str
    yearly_count: int  # the firm's counted visits in the planned year, after this verdict
    yearly_cap: int


def is_counted(kind: InspectionKind, rules: GateRules) -> bool:
    return kind.name in rules.counted_kinds


def check(
    *,
    authority: str,
    kind: InspectionKind,
    planned_on: date,
    whitelisted: bool,
    yearly_cap: int,
    past: Sequence[PastInspection],
    rules: GateRules,
    new_joint_id: Callable[[], str],
) -> Verdict:
    """The first verdict of docs/policy.md §6 that applies.

    `past` may hold any of the firm's allowed counted inspections; only those in the
    planned date's calendar year count. A joint visit is formed only within that year,
    so a visit is always counted in the year it happens.
    """
    year = [p for p in past if p.planned_on.year == planned_on.year]
    visits = len({p.joint_id for p in year})
    if not is_counted(kind, rules):
        return Verdict(
            True,
            False,
            new_joint_id(),
            False,
            "triggered",
            "触发式检查（投诉举报、转办、监测预警、事故、复查、企业申请、许可），不计入年度频次",
            visits,
            yearly_cap,
        )
    if whitelisted:
        return Verdict(
            False,
            False,
            "",
            True,
            "whitelist",
            "无事不扰：该企业在白名单内，不安排常规或专项现场检查",
            visits,
            yearly_cap,
        )
    own = sum(1 for p in year if p.authority == authority)
    if own >= rules.per_authority_per_year:
        return Verdict(
            False,
            False,
            "",
            True,
            "authority_cap",
            f"同一执法主体每年对同一企业现场检查不超过{rules.per_authority_per_year}次，"
            f"{authority} {planned_on.year}年已检查{own}次",
            visits,
            yearly_cap,
        )
    partner = _nearest_partner(year, authority, planned_on, rules.joint_window_days)
    if partner is not None:
        return Verdict(
            True,
            True,
            partner.joint_id,
            True,
            "joint",
            f"综合查一次：与{partner.authority} {partner.planned_on.isoformat()} "
            "的检查合并为一次联合检查",
            visits,
            yearly_cap,
        )
    if visits >= yearly_cap:
        return Verdict(
            False,
            False,
            "",
            True,
            "yearly_cap",
            f"该企业{planned_on.year}年现场检查已达上限{yearly_cap}次",
            visits,
            yearly_cap,
        )
    return Verdict(True, False, new_joint_id(), True, "allowed", "准予检查", visits + 1, yearly_cap)


def _nearest_partner(
    year: Sequence[PastInspection], authority: str, planned_on: date, window: int
) -> PastInspection | None:
    """The inspection a planned one joins (docs/policy.md §6 step 4), of the year's
    allowed counted inspections. A planned inspection may join a visit (a joint id)
    this authority is not in yet when it is within ±`window` days of one of the visit's
    inspections (each measured from its own day, one that joined the visit too: the
    spec's "another authority already has an allowed counted inspection within ±14
    days") and the visit's planned dates, this one included, span at most 2 × `window`
    days: one day then lies within ±`window` of every inspection it holds, which is what
    lets it be one visit on one day. Without that bound joins chained without limit (26
    authorities on 26 days of a year counted as one visit of a firm capped at 1: review
    53 N2); the opening day alone as the anchor (review 51 D3) ignored the spec's
    "another authority's". Of the visits that qualify, the nearest inspection is joined;
    a tie goes to the earlier day, then to the visit whose joint id sorts first (ids are
    made in time order: the older visit), so the answer does not depend on the order of
    `year`."""
    visits: dict[str, list[PastInspection]] = {}
    for p in year:
        visits.setdefault(p.joint_id, []).append(p)
    near = [
        p
        for members in visits.values()
        if _may_join(members, authority, planned_on, window)
        for p in members
        if abs((p.planned_on - planned_on).days) <= window
    ]
    return min(
        near,
        key=lambda p: (abs((p.planned_on - planned_on).days), p.planned_on, p.joint_id),
        default=None,
    )


def _may_join(
    members: Sequence[PastInspection], authority: str, planned_on: date, window: int
) -> bool:
    """Whether `authority`, not yet in the visit of `members`, keeps it within its span
    (2 × `window` days from its first planned date to its last) by joining on
    `planned_on`."""
    if any(p.authority == authority for p in members):
        return False
    days = [p.planned_on for p in members]
    return (max(*days, planned_on) - min(*days, planned_on)).days <= 2 * window
