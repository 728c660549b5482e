"""Human-readable text for a decision, as the CLI prints it."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.vocabulary import Severity

RISK = {
    pb.RISK_LEVEL_RED: "红色 RED（重大风险）",
    pb.RISK_LEVEL_ORANGE: "橙色 ORANGE（较大风险）",
    pb.RISK_LEVEL_YELLOW: "黄色 YELLOW（一般风险）",
    pb.RISK_LEVEL_BLUE: "蓝色 BLUE（低风险）",
}
STATUS = {
    pb.STATUS_WHITELIST: "白名单 WHITELIST（无事不扰）",
    pb.STATUS_ROUTINE: "常规 ROUTINE（双随机抽查）",
    pb.STATUS_PRIORITY: "重点监管 PRIORITY",
}
SEVERITY = {pb.SEVERITY_MAJOR: Severity.MAJOR.word, pb.SEVERITY_GENERAL: Severity.GENERAL.word}


def decision_text(d: pb.Decision, name: str = "") -> str:
    lines = [f"{d.enterprise_id}  {name}".rstrip(), f"  风险等级  {RISK.get(d.risk_level, '?')}"]
    status = STATUS.get(d.status, "?")
    if d.inspection_due_on:
        status += f"，{d.inspection_due_on} 前完成针对性检查"
    lines.append(f"  监管状态  {status}")
    lines.append(f"  年度现场检查上限  {d.inspection_cap_per_year} 次")
    for reason in d.risk_reasons:
        lines.append(f"  · {reason}")
    lines.append(f"  发现问题  {len(d.findings)} 项" if d.findings else "  发现问题  无")
    for f in d.findings:
        lines.append(f"   [{SEVERITY.get(f.severity, '?')}] {f.clause_ref}  {f.text}")
        if f.hazard_id:
            lines.append(f"      现场隐患编号 {f.hazard_id}")
        if f.fact_keys:
            facts = ", ".join(f"{k}={_fact(f.matched_facts[k])}" for k in f.fact_keys)
            lines.append(f"      依据  {facts}")
        lines.append(f"      整改  {f.guidance}")
    if d.whitelist_blockers:
        lines.append("  未入白名单的原因")
        lines.extend(f"   - {b.reason} ({b.code})" for b in d.whitelist_blockers)
    if d.recommended_services:
        lines.append("  推荐预约服务  " + ", ".join(d.recommended_services))
    lines.append(f"  依据规则版本 {d.ruleset_version}，评估日 {d.as_of}，有效至 {d.valid_until}")
    return "\n".join(lines) + "\n\n"


def _fact(value: object) -> str:
    kind = value.WhichOneof("kind")  # type: ignore[attr-defined]
    if kind == "bool_value":
        return "true" if value.bool_value else "false"  # type: ignore[attr-defined]
    if kind == "number_value":
        return f"{value.number_value:g}"  # type: ignore[attr-defined]
    return str(getattr(value, kind or "string_value"))


def rejection(where: int, status: status_pb2.Status) -> str:
    lines = [f"#{where}: rejected: {status.message.split(': ', 1)[0]}"]
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            lines.extend(f"   {v.field}: {v.description}" for v in bad.field_violations)
    if len(lines) == 1:
        lines.append(f"   {status.message}")
    return "\n".join(lines) + "\n\n"
