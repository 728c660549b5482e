"""Events of docs/policy.md §5 and what each does to a firm's profile.

`apply` is pure: it takes the stored profile and an event and returns the new profile
and whether the event revokes the white list. The service layer persists the result
and re-evaluates in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from services.common.values import preview
from services.common.vocabulary import (
    MOBILE_MASKED,
    Severity,
    mask_mobile,
    mobile_problem,
    uscc_problem,
)

from . import labels
from .errors import AlreadyExists, FieldViolation, NotFound, PreconditionFailed, ValidationError
from .profile import (
    CLAUSE_REF,
    MAX_TEXT,
    Accident,
    AccidentLevel,
    EnterpriseProfile,
    EnumSpelling,
    FieldChecker,
    Hazard,
    HazardStatus,
    Penalty,
    amount_problem,
    parse_profile,
    profile_to_data,
    short_names,
)

T = TypeVar("T")


class EventKind(StrEnum):
    ACCIDENT = "accident"
    COMPLAINT = "complaint"
    MAJOR_HAZARD_FOUND = "major_hazard_found"
    GENERAL_HAZARD_FOUND = "general_hazard_found"
    HAZARD_VERIFIED = "hazard_verified"
    RECTIFICATION_OVERDUE = "rectification_overdue"
    PENALTY = "penalty"
    PROFILE_UPDATED = "profile_updated"
    HAZARD_DUE_CHANGED = "hazard_due_changed"


REVOKING = frozenset(
    {
        EventKind.ACCIDENT,
        EventKind.MAJOR_HAZARD_FOUND,
        EventKind.RECTIFICATION_OVERDUE,
        EventKind.PENALTY,
    }
)
# A complaint is recorded (and grounds a triggered inspection) but changes no profile.
REEVALUATING = frozenset(EventKind) - {EventKind.COMPLAINT}


@dataclass(frozen=True)
class Event:
    """A validated event: its kind's detail checked into the typed fields that kind
    sets (each commented with its kinds; the others keep their defaults), and `detail`
    as received, for the record."""

    event_id: str
    enterprise_id: str
    kind: EventKind
    occurred_on: date
    accident: Accident | None = None  # ACCIDENT
    complaint_text: str = ""  # COMPLAINT
    hazard: Hazard | None = None  # MAJOR_HAZARD_FOUND / GENERAL_HAZARD_FOUND
    hazard_id: str = ""  # HAZARD_VERIFIED / RECTIFICATION_OVERDUE
    late: bool = False  # HAZARD_VERIFIED
    due_on: date | None = None  # HAZARD_DUE_CHANGED (with hazard_id)
    penalty: Penalty | None = None  # PENALTY
    profile: EnterpriseProfile | None = None  # PROFILE_UPDATED
    detail: dict[str, Any] = field(default_factory=dict)  # as received, for the record


@dataclass(frozen=True)
class Outcome:
    profile: EnterpriseProfile
    revokes: bool
    reevaluate: bool
    summary: str


def apply(profile: EnterpriseProfile, event: Event, clause_title: str = "") -> Outcome:
    """The new profile after `event`, and whether it revokes the white-list entry.
    `clause_title`: the title of the clause a found hazard cites, which its summary names
    when the clause is named by a word (labels.hazard_found)."""
    kind = event.kind
    if kind is EventKind.HAZARD_DUE_CHANGED:
        return _hazard_due_changed(profile, event)
    if kind is EventKind.ACCIDENT:
        assert event.accident is not None
        new = replace(profile, accidents=(*profile.accidents, event.accident))
        summary = labels.accident(event.accident.level, event.accident.deaths)
    elif kind is EventKind.COMPLAINT:
        new, summary = profile, f"投诉举报：{event.complaint_text[:60]}"
    elif kind in (EventKind.MAJOR_HAZARD_FOUND, EventKind.GENERAL_HAZARD_FOUND):
        new, summary = _hazard_found(profile, event, clause_title)
    elif kind is EventKind.HAZARD_VERIFIED:
        new, summary = _hazard_verified(profile, event)
    elif kind is EventKind.RECTIFICATION_OVERDUE:
        _open_hazard(profile, event.hazard_id)
        new, summary = profile, f"隐患{event.hazard_id}逾期未整改"
    elif kind is EventKind.PENALTY:
        assert event.penalty is not None
        new = replace(profile, penalties=(*profile.penalties, event.penalty))
        summary = f"行政处罚{labels.yuan(event.penalty.amount_yuan)}"
    else:
        assert event.profile is not None
        new, summary = merge_profile(profile, event.profile), labels.EVENT_KIND[kind]
    return Outcome(new, kind in REVOKING, kind in REEVALUATING, summary)


def _hazard_found(
    profile: EnterpriseProfile, event: Event, clause_title: str
) -> tuple[EnterpriseProfile, str]:
    assert event.hazard is not None
    if any(h.hazard_id == event.hazard.hazard_id for h in profile.hazards):
        # the register's state, not the request, is in the way (review 47b F10)
        raise AlreadyExists(
            f"event.hazard.hazard_id: hazard {preview(event.hazard.hazard_id)} is already "
            "on record (another event found it)"
        )
    new = replace(profile, hazards=(*profile.hazards, event.hazard))
    return new, labels.hazard_found(
        event.hazard.severity.label, event.hazard.clause_ref, clause_title
    )


def _open_hazard(profile: EnterpriseProfile, hazard_id: str) -> Hazard:
    hazard = next((h for h in profile.hazards if h.hazard_id == hazard_id), None)
    if hazard is None:
        raise NotFound(f"firm {profile.enterprise_id} has no hazard {preview(hazard_id)}")
    if hazard.status is HazardStatus.VERIFIED:
        raise PreconditionFailed(f"hazard {preview(hazard_id)} was already verified fixed")
    return hazard


def _hazard_verified(profile: EnterpriseProfile, event: Event) -> tuple[EnterpriseProfile, str]:
    hazard = _open_hazard(profile, event.hazard_id)
    if event.occurred_on < hazard.found_on:  # the recorded hazard's date (review 47b F10)
        raise PreconditionFailed(
            f"event.occurred_on: hazard {preview(hazard.hazard_id)} was found on "
            f"{hazard.found_on.isoformat()}; it cannot be verified before that"
        )
    closed = replace(
        hazard, status=HazardStatus.VERIFIED, closed_on=event.occurred_on, closed_late=event.late
    )
    hazards = tuple(closed if h.hazard_id == hazard.hazard_id else h for h in profile.hazards)
    return replace(profile, hazards=hazards), (
        f"隐患{hazard.hazard_id}复查通过" + ("（逾期整改）" if event.late else "")
    )


def canonical(event: Event) -> dict[str, Any]:
    """What the event says, in one form: the validated values (not the bytes received),
    lists that are sets sorted, and every empty or default value left out (proto3 cannot
    tell them from absent, and a release that adds a field must not change old events).
    Two events with the same canonical form are the same event."""
    detail: dict[str, Any] = {}
    if event.accident is not None:
        detail = {"level": event.accident.level.value, "deaths": event.accident.deaths}
    elif event.kind is EventKind.COMPLAINT:
        detail = {"text": event.complaint_text}
    elif event.hazard is not None:
        h = event.hazard
        detail = {"hazard_id": h.hazard_id, "clause_ref": h.clause_ref, "due_on": h.due_on}
    elif event.kind in (EventKind.HAZARD_VERIFIED, EventKind.RECTIFICATION_OVERDUE):
        detail = {"hazard_id": event.hazard_id, "late": event.late}
    elif event.penalty is not None:
        detail = {"amount_yuan": event.penalty.amount_yuan, "basis": event.penalty.basis}
    elif event.profile is not None:
        detail = profile_to_data(event.profile)
    if event.kind is EventKind.HAZARD_DUE_CHANGED:
        detail = {"hazard_id": event.hazard_id, "due_on": event.due_on}
    out: dict[str, Any] = _without_defaults(
        {
            "enterprise_id": event.enterprise_id,
            "kind": event.kind.value,
            "occurred_on": event.occurred_on,
            "detail": detail,
        }
    )
    return out


def _without_defaults(value: Any, *, keep: bool = False) -> Any:
    """Drop None, "", 0, False, [] and {} from mappings (not from `facts`, where a false
    or zero observation differs from none); dates become ISO strings."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_without_defaults(v) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            clean = _without_defaults(item, keep=key == "facts")
            if keep or clean not in (None, "", 0, False, [], {}):
                out[str(key)] = clean
        return out
    return value


def fingerprint(event: Event) -> str:
    """SHA-256 of the canonical form: what a repeated event_id is compared by."""
    text = json.dumps(canonical(event), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def merge_profile(stored: EnterpriseProfile, incoming: EnterpriseProfile) -> EnterpriseProfile:
    """A new profile from a caller replaces the typed fields and facts; the history lists
    (accidents, penalties, hazards) only grow, so what other systems reported is not lost.
    A hazard already on record keeps its recorded state: it changes only through events
    (HAZARD_VERIFIED, …), so a resent profile cannot close a hazard or erase a late closure."""
    known = {h.hazard_id for h in stored.hazards}
    hazards = (*stored.hazards, *[h for h in incoming.hazards if h.hazard_id not in known])
    return replace(
        incoming,
        accidents=_union(stored.accidents, incoming.accidents),
        penalties=_union(stored.penalties, incoming.penalties),
        hazards=hazards,
        contact_mobile=contact_kept(stored.contact_mobile, incoming.contact_mobile),
    )


def contact_kept(stored: str, sent: str) -> str:
    """The contact mobile after a caller sent `sent`: a masked number (138****5678, as a
    caller without `rules.contact` reads it) that masks the one on record keeps that one,
    so a profile read and sent back changes nothing it could not see (review 56 D1);
    anything else is what was sent (a whole number, or "" to clear it). A masked number
    that is not the one on record is refused: it names no number."""
    if not MOBILE_MASKED.fullmatch(sent):
        return sent
    if stored and mask_mobile(stored) == sent:
        return stored
    raise ValidationError(
        [FieldViolation("profile.contact_mobile", f"{sent}: {mobile_problem(sent)}")]
    )


def _union(first: tuple[T, ...], second: tuple[T, ...]) -> tuple[T, ...]:
    return tuple(dict.fromkeys((*first, *second)))


# an event's detail fields, one per kind (or shared: hazard), in the proto's order
EVENT_DETAILS = (
    "accident",
    "complaint",
    "hazard",
    "verification",
    "overdue",
    "penalty",
    "profile",
    "due_change",
)
EVENT_FIELDS = frozenset({"event_id", "enterprise_id", "kind", "occurred_on", *EVENT_DETAILS})
DETAIL_OF = {
    EventKind.ACCIDENT: "accident",
    EventKind.COMPLAINT: "complaint",
    EventKind.MAJOR_HAZARD_FOUND: "hazard",
    EventKind.GENERAL_HAZARD_FOUND: "hazard",
    EventKind.HAZARD_VERIFIED: "verification",
    EventKind.RECTIFICATION_OVERDUE: "overdue",
    EventKind.PENALTY: "penalty",
    EventKind.PROFILE_UPDATED: "profile",
    EventKind.HAZARD_DUE_CHANGED: "due_change",
}


CLOCK_SKEW = timedelta(days=1)  # a reporting system's clock may run a day ahead of ours


def not_yet(day: date, today: date) -> str | None:
    """Why `day` cannot be the day of something recorded as having happened: after
    `today` (Asia/Shanghai) plus CLOCK_SKEW; None when it can."""
    if day > today + CLOCK_SKEW:
        return f"must not be after today ({today.isoformat()}, Asia/Shanghai)"
    return None


def parse_event(
    data: Mapping[str, Any],
    fact_types: Mapping[str, str],
    today: date,
    *,
    spelling: EnumSpelling = short_names,
) -> Event:
    """Validate a JSON-shaped event (fields under `event.`); ValidationError names each field.

    An event is reported once it has happened: `occurred_on` after `today` (Asia/Shanghai)
    plus CLOCK_SKEW is refused. A decision ignores what happens after its as_of, so a
    future-dated accident would otherwise leave the firm's decision untouched while its
    effects (a white-list entry revoked) took place today. `spelling`: how the caller
    writes enum values, in the errors that list them (profile.EnumSpelling)."""
    check = FieldChecker("event.", spelling=spelling)
    for unknown in sorted(set(data) - EVENT_FIELDS):
        check.bad(str(unknown), "unknown field")
    event_id = check.string(data, "event_id", "event_id", max_len=128, required=True)
    enterprise_id = check.string(data, "enterprise_id", "enterprise_id", max_len=18, required=True)
    if enterprise_id and (problem := uscc_problem(enterprise_id)):
        check.bad("enterprise_id", problem)
    kind = check.enum(EventKind, data.get("kind"), "kind", required=True)
    occurred = check.day(data.get("occurred_on"), "occurred_on")
    if occurred and (problem := not_yet(occurred, today)):
        check.bad("occurred_on", problem)
    given = [k for k in set(DETAIL_OF.values()) if data.get(k) is not None]
    wanted = DETAIL_OF.get(kind) if kind else None
    for extra in sorted(set(given) - {wanted}):
        check.bad(extra, f"does not belong to an event of kind {kind}")
    detail = data.get(wanted) if wanted else None
    if wanted and not isinstance(detail, Mapping):
        check.bad(wanted, f"is required for an event of kind {kind}")
        detail = None
    fields: dict[str, Any] = {}
    if kind and occurred and detail is not None:
        fields = _detail(check, kind, occurred, detail, enterprise_id, fact_types)
    if (sent := fields.get("profile")) is not None:  # its records are reported by it too
        check.violations.extend(recorded_ahead(sent, None, today, prefix="event.profile."))
    if check.violations or kind is None or occurred is None:
        raise ValidationError(check.violations)
    return Event(event_id, enterprise_id, kind, occurred, detail=dict(detail or {}), **fields)


def _detail(
    check: FieldChecker,
    kind: EventKind,
    occurred: date,
    detail: Mapping[str, Any],
    enterprise_id: str,
    fact_types: Mapping[str, str],
) -> dict[str, Any]:
    if kind is EventKind.HAZARD_DUE_CHANGED:
        return _due_change_detail(check, detail)
    if kind is EventKind.ACCIDENT:
        level = check.enum(AccidentLevel, detail.get("level"), "accident.level", required=True)
        deaths = check.integer(detail, "deaths", "accident.deaths", default=0, low=0, high=100_000)
        return {"accident": Accident(occurred, level, deaths)} if level else {}
    if kind is EventKind.COMPLAINT:
        text = check.string(detail, "text", "complaint.text", max_len=MAX_TEXT, required=True)
        return {"complaint_text": text}
    if kind in (EventKind.MAJOR_HAZARD_FOUND, EventKind.GENERAL_HAZARD_FOUND):
        return _hazard_detail(check, kind, occurred, detail)
    if kind in (EventKind.HAZARD_VERIFIED, EventKind.RECTIFICATION_OVERDUE):
        name = "verification" if kind is EventKind.HAZARD_VERIFIED else "overdue"
        hazard_id = check.string(
            detail, "hazard_id", f"{name}.hazard_id", max_len=64, required=True
        )
        late = check.boolean(detail, "late", f"{name}.late") if name == "verification" else False
        return {"hazard_id": hazard_id, "late": late}
    if kind is EventKind.PENALTY:
        amount = detail.get("amount_yuan", 0)
        if (problem := amount_problem(amount)) is not None:
            check.bad("penalty.amount_yuan", problem)
            amount = 0
        basis = check.string(detail, "basis", "penalty.basis", max_len=MAX_TEXT, required=False)
        return {"penalty": Penalty(occurred, float(amount), basis)}
    try:
        profile = parse_profile(
            detail, fact_types, prefix="event.profile.", spelling=check.spelling
        )
    except ValidationError as exc:
        check.violations.extend(exc.violations)
        return {}
    if profile.enterprise_id != enterprise_id:
        check.bad("profile.enterprise_id", "must be the event's enterprise_id")
    return {"profile": profile}


def _hazard_detail(
    check: FieldChecker, kind: EventKind, occurred: date, detail: Mapping[str, Any]
) -> dict[str, Any]:
    expected = Severity.MAJOR if kind is EventKind.MAJOR_HAZARD_FOUND else Severity.GENERAL
    hazard_id = check.string(detail, "hazard_id", "hazard.hazard_id", max_len=64, required=True)
    ref = check.string(detail, "clause_ref", "hazard.clause_ref", max_len=48, required=True)
    if ref and not CLAUSE_REF.match(ref):
        check.bad("hazard.clause_ref", "must be <standard_id>:<clause>, e.g. GM2023:11(1)")
    severity = check.enum(Severity, detail.get("severity"), "hazard.severity", required=False)
    if severity is not None and severity is not expected:
        check.bad("hazard.severity", f"an event of kind {kind} carries a {expected} hazard")
    due = check.day(detail.get("due_on"), "hazard.due_on")
    if due and due < occurred:
        check.bad("hazard.due_on", "must not be before occurred_on")
    if not (hazard_id and ref and due):
        return {}
    return {"hazard": Hazard(hazard_id, ref, expected, occurred, due, HazardStatus.OPEN)}


def recorded_ahead(
    sent: EnterpriseProfile,
    stored: EnterpriseProfile | None,
    today: date,
    prefix: str = "profile.",
) -> list[FieldViolation]:
    """The records of a profile sent to the register dated after `today` + CLOCK_SKEW, as
    ReportEvent refuses an event: an accident, a penalty, a hazard found or closed is
    recorded once it has happened. What is already stored is left alone (kept before this
    check existed, it must not refuse every later full update of the firm): an accident
    or penalty stored as sent, a hazard whose id is on record (the register keeps the
    stored hazard of an id and ignores the sent copy). A PROFILE_UPDATED event's profile
    is checked whole (`stored` None): it may leave a stored record out, the register
    keeps it (records only grow)."""
    kept: tuple[set[Any], set[Any], set[str]] = (set(), set(), set())
    if stored is not None:
        kept = (set(stored.accidents), set(stored.penalties), {h.hazard_id for h in stored.hazards})
    bad: list[FieldViolation] = []
    for name, records, fields, known in (
        ("accidents", sent.accidents, ("occurred_on",), kept[0]),
        ("penalties", sent.penalties, ("decided_on",), kept[1]),
        ("hazards", sent.hazards, ("found_on", "closed_on"), kept[2]),
    ):
        for i, record in enumerate(records):
            if (record.hazard_id if isinstance(record, Hazard) else record) in known:
                continue
            for day_field in fields:
                day = getattr(record, day_field)
                if day is not None and (problem := not_yet(day, today)):
                    bad.append(FieldViolation(f"{prefix}{name}[{i}].{day_field}", problem))
    return bad


# ---------------------------------------------------------------- HAZARD_DUE_CHANGED


def _due_change_detail(check: FieldChecker, detail: Mapping[str, Any]) -> dict[str, Any]:
    """HAZARD_DUE_CHANGED's detail `due_change`: the hazard's id and its new deadline (a
    date of record); the hazard itself is checked when the event is applied."""
    hazard_id = check.string(detail, "hazard_id", "due_change.hazard_id", max_len=64, required=True)
    due = check.day(detail.get("due_on"), "due_change.due_on")
    return {"hazard_id": hazard_id, "due_on": due} if hazard_id and due else {}


def _hazard_due_changed(profile: EnterpriseProfile, event: Event) -> Outcome:
    """The open hazard's deadline becomes `event.due_on` (a failed recheck's new deadline:
    the register shows the one in force, and overdue is judged by it); re-evaluated, the
    white list left alone. The hazard must be on record (NOT_FOUND), open, found no later
    than the event and than its new deadline (FAILED_PRECONDITION)."""
    assert event.due_on is not None
    hazard = _open_hazard(profile, event.hazard_id)
    found = hazard.found_on.isoformat()
    if event.occurred_on < hazard.found_on:
        raise PreconditionFailed(
            f"event.occurred_on: hazard {preview(hazard.hazard_id)} was found on {found}; "
            "its deadline cannot change before that"
        )
    if event.due_on < hazard.found_on:
        raise PreconditionFailed(
            f"event.due_change.due_on: hazard {preview(hazard.hazard_id)} was found on "
            f"{found}; its deadline cannot be before that"
        )
    moved = replace(hazard, due_on=event.due_on)
    hazards = tuple(moved if h.hazard_id == hazard.hazard_id else h for h in profile.hazards)
    summary = f"隐患{hazard.hazard_id}整改期限改为{event.due_on.isoformat()}"
    kind = event.kind
    return Outcome(
        replace(profile, hazards=hazards), kind in REVOKING, kind in REEVALUATING, summary
    )
