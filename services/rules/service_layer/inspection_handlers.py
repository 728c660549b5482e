"""CheckInspection and VerifyInspectionCode: the gate with its counting in the database."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.rules.domain import gate
from services.rules.domain.errors import NotFound, ValidationError
from services.rules.domain.profile import FieldChecker, uscc_problem
from services.rules.domain.register import InspectionRecord
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.register_handlers import load_firm, new_id, now, stored_profile
from services.rules.service_layer.unit_of_work import UnitOfWork

CODE_SHAPE = re.compile(r"^JC-[A-Za-z0-9_-]{32}$")


@dataclass
class CheckResult:
    verdict: gate.Verdict
    record: InspectionRecord


@dataclass
class InspectionView:
    record: InspectionRecord
    enterprise_name: str
    joint_authorities: list[str]


def new_inspection_code() -> str:
    """行政检查码: 192 random bits, URL-safe, unguessable."""
    return "JC-" + secrets.token_urlsafe(24)


def _request(data: Mapping[str, Any]) -> tuple[str, str, gate.InspectionKind, Any, str]:
    check = FieldChecker("")
    enterprise_id = check.string(data, "enterprise_id", "enterprise_id", max_len=18, required=True)
    if enterprise_id and (problem := uscc_problem(enterprise_id)):
        check.bad("enterprise_id", problem)
    authority = check.string(data, "authority", "authority", max_len=100, required=True)
    kind = check.enum(gate.InspectionKind, data.get("kind"), "kind", required=True)
    planned = check.day(data.get("planned_on"), "planned_on")
    grounds = check.string(data, "grounds", "grounds", max_len=2000, required=False)
    if check.violations or kind is None:
        raise ValidationError(check.violations)
    return enterprise_id, authority, kind, planned, grounds


def check_inspection(
    uow: UnitOfWork, ctx: RulesContext, data: Mapping[str, Any], caller: str
) -> CheckResult:
    """Lock the firm, read its counted inspections, apply the gate, record the verdict."""
    enterprise_id, authority, kind, planned_on, grounds = _request(data)
    with uow:
        firm = load_firm(uow, enterprise_id, for_update=True)
        profile = stored_profile(ctx, firm)
        entry = uow.register.open_entry(enterprise_id)
        whitelisted = entry is not None and entry.active_on(planned_on)
        past = [
            gate.PastInspection(r.authority, r.planned_on, r.joint_id, r.joint)
            for r in uow.register.counted_inspections(enterprise_id, [planned_on.year])
        ]
        caps = ctx.policy.caps
        verdict = gate.check(
            authority=authority,
            kind=kind,
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
            enterprise_id=enterprise_id,
            authority=authority,
            kind=kind.value,
            planned_on=planned_on,
            year=planned_on.year,
            counted=verdict.counted,
            allowed=verdict.allowed,
            joint=verdict.joint,
            joint_id=verdict.joint_id,
            reason_code=verdict.reason_code,
            reason=verdict.reason,
            grounds=grounds,
            requested_by=caller,
            created_at=now(),
            inspection_code=new_inspection_code() if verdict.allowed else None,
        )
        uow.register.add(record)
        uow.commit()
        return CheckResult(verdict, record)


def verify_code(uow: UnitOfWork, code: str) -> InspectionView:
    """The inspection a genuine code stands for; NOT_FOUND for anything else."""
    if not CODE_SHAPE.match(code or ""):
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
