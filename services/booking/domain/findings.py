"""What an expert records on a visit: findings, each becoming a rectification ticket (pure).

`check_findings` validates every finding of a visit at once and names each bad field; the
clause a finding cites must be one the rules service knows, which the caller answers with
the clause's own severity (`clause_severity`: None for no such clause). That severity is a
floor: a clause the standard classes as MAJOR (重大事故隐患) cannot be recorded as a
GENERAL finding, because a major hazard cannot stay invisible (docs/booking.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.common.errors import FieldViolation, ValidationError
from services.common.values import control_problem, invisible, parse_day, trim, written_day
from services.common.vocabulary import Severity

from .messages import (
    BAD_DATE,
    CONTROL_CHARACTERS,
    FINDING_BELOW_CLAUSE,
    FINDING_CLAUSE,
    FINDING_DEFAULT_DUE_PASSED,
    FINDING_DESCRIPTION,
    FINDING_DUE_PASSED,
    FINDING_SEVERITY,
    FINDING_TOO_MANY_PHOTOS,
    FOUND_ON_SITE,
    VISIT_BAD_DUE,
    VISIT_PHOTO_OVER_TOTAL,
    VISIT_TOO_MANY,
    a_day,
    quoted,
)
from .photos import MAX_PHOTO_BYTES, Upload, check_upload
from .records import Visit
from .tickets import Ticket, TicketStatus, beyond, deadline_too_far, default_due, too_far

MAX_FINDINGS = 50
MAX_PHOTOS = 5
# what a visit's photos may weigh together, written in the visit's one transaction one
# photo at a time (the staff page's form: one photo a finding; 20 full-size phone photos,
# 30 or more of a usual 2 to 3 MB); a photo past it is refused, naming it
MAX_VISIT_PHOTO_BYTES = 20 * MAX_PHOTO_BYTES
_MB = 1024 * 1024
MAX_TEXT = 1000
CLAUSE_REF_MAX = 48
SEVERITIES = frozenset(s.value for s in Severity)


@dataclass(frozen=True)
class FindingInput:
    clause_ref: str
    severity: str  # "major" | "general"
    description: str
    due_on: str = ""
    photos: tuple[Upload, ...] = ()


ClauseSeverity = Callable[[str], str | None]  # a clause ref's severity; None: no such clause


def check_findings(
    findings: Sequence[FindingInput],
    visited_on: date,
    clause_severity: ClauseSeverity,
    *,
    today: date | None = None,
) -> list[tuple[FindingInput, date]]:
    """Each finding with its deadline, or ValidationError naming every bad field.
    `today`: the day the visit is recorded (None: the visit's day); a deadline must lie
    after it too, so a visit recorded days after it took place (a `visited_on` in the
    past) never makes a ticket born overdue (review 67 F1)."""
    if len(findings) > MAX_FINDINGS:
        raise ValidationError([FieldViolation("findings", VISIT_TOO_MANY)])
    bad: list[FieldViolation] = []
    out = []
    for i, f in enumerate(findings):
        due, problems = _finding(f, visited_on, f"findings[{i}]", clause_severity, today)
        bad.extend(problems)
        out.append((f, due))
    bad.extend(_over_total(findings))
    if bad:
        raise ValidationError(bad)
    return out


def found_ticket(
    ticket_id: str,
    visit: Visit,
    enterprise_id: str,
    finding: FindingInput,
    due_on: date,
    *,
    actor: str,
    at: datetime,
) -> Ticket:
    """The rectification ticket of a finding of `visit` (the visiting expert's, found on
    the visit's day), OPEN from `at` and due on `due_on`; `actor` recorded it. The one way
    a ticket starts: the visit use case and the demo city's history both take it."""
    ticket = Ticket(
        id=ticket_id,
        order_id=visit.order_id,
        visit_id=visit.id,
        enterprise_id=enterprise_id,
        clause_ref=finding.clause_ref,
        severity=finding.severity,
        description=trim(finding.description, multiline=True),
        found_on=visit.visited_on,
        due_on=due_on,
        status="",
        expert_id=visit.expert_id,
        created_at=at,
    )
    ticket.enter(TicketStatus.OPEN.value, actor=actor, at=at, reason=FOUND_ON_SITE)
    return ticket


def _finding(
    f: FindingInput,
    visited_on: date,
    path: str,
    clause_severity: ClauseSeverity,
    today: date | None = None,
) -> tuple[date, list[FieldViolation]]:
    """One finding's deadline and everything wrong with it."""
    bad: list[FieldViolation] = []
    ref = f.clause_ref
    well_formed = not control_problem(ref) and len(ref) <= CLAUSE_REF_MAX and ":" in ref
    known = clause_severity(ref) if well_formed else None  # the clause's own severity
    if f.severity not in SEVERITIES:
        bad.append(FieldViolation(f"{path}.severity", FINDING_SEVERITY))
    elif known == Severity.MAJOR and f.severity != Severity.MAJOR:
        bad.append(FieldViolation(f"{path}.severity", FINDING_BELOW_CLAUSE))
    if invisible(f.description) or len(f.description) > MAX_TEXT:
        bad.append(FieldViolation(f"{path}.description", FINDING_DESCRIPTION.format(n=MAX_TEXT)))
    elif control_problem(f.description, multiline=True):
        bad.append(FieldViolation(f"{path}.description", CONTROL_CHARACTERS))
    if control_problem(ref):
        bad.append(FieldViolation(f"{path}.clause_ref", CONTROL_CHARACTERS))
    elif known is None:
        bad.append(FieldViolation(f"{path}.clause_ref", FINDING_CLAUSE.format(ref=quoted(ref))))
    bad.extend(_photo_problems(f, path))
    due, wrong = _deadline(f, visited_on, path, today or visited_on)
    return due, bad + wrong


def _deadline(
    f: FindingInput, visited_on: date, path: str, today: date
) -> tuple[date, list[FieldViolation]]:
    """A finding's deadline (by default the policy's for its severity) and what is wrong
    with the one written: no date at all is told how to write one (review 59 F11); a
    day too far, a day that is not after the visit, each what to choose. A deadline
    that is already past on `today`, the day the visit is recorded (a visit recorded
    late: the default counted from the visit's day, or a day written), is refused
    naming the finding's `due_on` (review 67 F1): the ticket would be born overdue,
    reported to rules as such by the next sweep, and its closure late however soon the
    firm fixed it (12 months off the white list for the expert's delay)."""
    due = default_due(f.severity, visited_on) if f.severity in SEVERITIES else visited_on
    field, bad = f"{path}.due_on", []
    if f.due_on:
        try:
            due = parse_day(f.due_on, field)
        except ValidationError as exc:
            if beyond(f.due_on, visited_on):  # 9999-12-31: too far, not badly written
                bad.append(FieldViolation(field, too_far(visited_on)))
            elif written_day(f.due_on) is not None:  # 1900-01-01: not after the visit
                bad.extend(exc.violations)
            else:  # 2026/12/20, 2026-12-20T10:00: no date at all
                bad.append(FieldViolation(field, BAD_DATE))
        else:
            if due <= visited_on:
                bad.append(FieldViolation(field, VISIT_BAD_DUE))
            elif deadline_too_far(due, visited_on):
                bad.append(FieldViolation(field, too_far(visited_on)))
            elif due <= today:
                bad.append(FieldViolation(field, FINDING_DUE_PASSED.format(day=a_day(due))))
    elif f.severity in SEVERITIES and due <= today:
        said = FINDING_DEFAULT_DUE_PASSED.format(day=a_day(due))
        bad.append(FieldViolation(field, said))
    return due, bad


def _photo_problems(f: FindingInput, path: str) -> list[FieldViolation]:
    bad: list[FieldViolation] = []
    if len(f.photos) > MAX_PHOTOS:
        bad.append(FieldViolation(f"{path}.photos", FINDING_TOO_MANY_PHOTOS.format(n=MAX_PHOTOS)))
    for j, upload in enumerate(f.photos):
        try:
            check_upload(upload, f"{path}.photos[{j}]")
        except ValidationError as exc:
            bad.extend(exc.violations)
    return bad


def _over_total(findings: Sequence[FindingInput]) -> list[FieldViolation]:
    """Each photo past the visit's MAX_VISIT_PHOTO_BYTES, counted in the order sent (a
    photo too large by itself counts for nothing: it is refused anyway); a later, smaller
    photo that still fits is taken."""
    room = MAX_VISIT_PHOTO_BYTES
    bad: list[FieldViolation] = []
    for i, f in enumerate(findings):
        for j, upload in enumerate(f.photos):
            if upload.size > MAX_PHOTO_BYTES:
                continue
            if upload.size > room:
                total = MAX_VISIT_PHOTO_BYTES // _MB
                text = VISIT_PHOTO_OVER_TOTAL.format(total=total)
                bad.append(FieldViolation(f"findings[{i}].photos[{j}]", text))
            else:
                room -= upload.size
    return bad
