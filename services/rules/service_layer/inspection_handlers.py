"""CheckInspection and VerifyInspectionCode: the gate with its counting in the database."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from services.common.clock import new_id, now
from services.common.errors import Conflict
from services.common.vocabulary import uscc_problem
from services.rules.domain import gate
from services.rules.domain.errors import AlreadyExists, FieldViolation, NotFound, ValidationError
from services.rules.domain.profile import EnumSpelling, FieldChecker, short_names
from services.rules.domain.register import InspectionRecord
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.register_handlers import load_firm, stored_profile
from services.rules.service_layer.unit_of_work import UnitOfWork

CODE_SHAPE = re.compile(r"^JC-[A-Za-z0-9_-]{32}$")


@dataclass
class CheckResult:
    verdict: gate.Verdict
    record: InspectionRecord
    duplicate: bool = False  # the idempotency key was answered before: this is that verdict


@dataclass
class InspectionView:
    record: InspectionRecord
    enterprise_name: str
    joint_authorities: list[str]


@dataclass(frozen=True)
class CheckRequest:
    enterprise_id: str
    authority: str
    kind: gate.InspectionKind
    planned_on: date
    grounds: str
    idempotency_key: str

    def same_as(self, record: InspectionRecord) -> bool:
        return (
            record.enterprise_id,
            record.authority,
            record.kind,
            record.planned_on,
            record.grounds,
        ) == (self.enterprise_id, self.authority, self.kind.value, self.planned_on, self.grounds)


def new_inspection_code() -> str:
    """行政检查码: 192 random bits, URL-safe, unguessable."""
    return "JC-" + secrets.token_urlsafe(24)


def _request(data: Mapping[str, Any], spelling: EnumSpelling = short_names) -> CheckRequest:
    check = FieldChecker("", spelling=spelling)
    enterprise_id = check.string(data, "enterprise_id", "enterprise_id", max_len=18, required=True)
    if enterprise_id and (problem := uscc_problem(enterprise_id)):
        check.bad("enterprise_id", problem)
    authority = check.string(data, "authority", "authority", max_len=100, required=True)
    kind = check.enum(gate.InspectionKind, data.get("kind"), "kind", required=True)
    planned = check.day(data.get("planned_on"), "planned_on")
    grounds = check.string(data, "grounds", "grounds", max_len=2000, required=False)
    key = check.string(data, "idempotency_key", "idempotency_key", max_len=128, required=False)
    if check.violations or kind is None or planned is None:
        raise ValidationError(check.violations)
    return CheckRequest(enterprise_id, authority, kind, planned, grounds, key)


def _not_past(request: CheckRequest, today: date) -> None:
    if request.planned_on < today:
        raise ValidationError(
            [
                FieldViolation(
                    "planned_on",
                    f"{request.planned_on.isoformat()} is in the past (today is "
                    f"{today.isoformat()} in Asia/Shanghai): the gate decides on visits still "
                    "to come, so a past visit gets no code and counts against no cap",
                )
            ]
        )


def check_inspection(
    uow: UnitOfWork, ctx: RulesContext, data: Mapping[str, Any], caller: str
) -> CheckResult:
    """Lock the firm, read its counted inspections, apply the gate, record the verdict.

    With an idempotency key, a request answered before returns that verdict (even once
    planned_on has passed); the same key with another request is ALREADY_EXISTS."""
    request = _request(data, ctx.spelling)
    try:
        return _check(uow, ctx, request, caller)
    except Conflict:  # the same key raced in on another connection (another firm)
        if not request.idempotency_key:
            raise
        with uow:
            first = uow.register.inspection_by_key(caller, request.idempotency_key)
            if first is None:
                raise
            return _replay(request, first)


def _check(uow: UnitOfWork, ctx: RulesContext, request: CheckRequest, caller: str) -> CheckResult:
    key = request.idempotency_key
    with uow:
        if key and (first := uow.register.inspection_by_key(caller, key)) is not None:
            return _replay(request, first)
        _not_past(request, ctx.today())
        firm = load_firm(uow, request.enterprise_id, for_update=True)
        if key and (first := uow.register.inspection_by_key(caller, key)) is not None:
            return _replay(request, first)  # a racing retry committed while we waited
        profile = stored_profile(ctx, firm)
        planned_on = request.planned_on
        # a closed entry lists no firm today or later (WhitelistEntry.listed_on)
        entry = uow.register.open_entry(request.enterprise_id)
        whitelisted = entry is not None and entry.listed_on(planned_on)
        past = [
            gate.PastInspection(r.authority, r.planned_on, r.joint_id)
            for r in uow.register.counted_inspections(request.enterprise_id, [planned_on.year])
        ]
        caps = ctx.policy.caps
        verdict = gate.check(
            authority=request.authority,
            kind=request.kind,
            planned_on=planned_on,
            whitelisted=whitelisted,
            yearly_cap=caps.whitelist
            if whitelisted
            else caps.yearly_cap(profile.standardization_grade, profile.high_risk_domains),
            past=past,
            rules=gate.GateRules(
                ctx.policy.gate.counted_kinds,
                caps.per_authority_per_year,
                ctx.policy.gate.joint_window_days,
            ),
            new_joint_id=new_id,
        )
        record = InspectionRecord(
            id=new_id(),
            enterprise_id=request.enterprise_id,
            authority=request.authority,
            kind=request.kind.value,
            planned_on=planned_on,
            year=planned_on.year,
            grounds=request.grounds,
            requested_by=caller,
            created_at=now(),
            inspection_code=new_inspection_code() if verdict.allowed else None,
            idempotency_key=key or None,
            **asdict(verdict),  # every field of the verdict is a column of the record
        )
        uow.register.add(record)
        uow.commit()
        return CheckResult(verdict, record)


def _replay(request: CheckRequest, first: InspectionRecord) -> CheckResult:
    if not request.same_as(first):
        raise AlreadyExists(
            f"idempotency_key {request.idempotency_key[:64]!r} was already used by this caller "
            f"for another request ({first.kind} by {first.authority[:32]!r} of "
            f"{first.enterprise_id} on {first.planned_on.isoformat()}); a new request needs "
            "a new key, a retry must resend the same request"
        )
    verdict = gate.Verdict(
        first.allowed,
        first.joint,
        first.joint_id,
        first.counted,
        first.reason_code,
        first.reason,
        first.yearly_count or 0,
        first.yearly_cap or 0,
    )
    return CheckResult(verdict, first, duplicate=True)


def verify_code(uow: UnitOfWork, code: str) -> InspectionView:
    """The inspection a genuine code stands for; INVALID_ARGUMENT for no code at all,
    NOT_FOUND for anything else."""
    if not code:
        raise ValidationError([FieldViolation("code", "is required")])
    if not CODE_SHAPE.match(code):
        raise NotFound("不是有效的行政检查码 (not a genuine inspection code)")
    with uow:
        record = uow.register.inspection_by_code(code)
        if record is None:
            raise NotFound("不是有效的行政检查码 (not a genuine inspection code)")
        firm = load_firm(uow, record.enterprise_id)
        partners = (
            uow.register.joint_authorities(record.enterprise_id, record.joint_id)
            if record.joint_id
            else [record.authority]
        )
        return InspectionView(record, firm.name, partners)
