"""Human-readable text for a decision, as the CLI prints it: in Chinese, with the names a
person reads for the codes a decision carries (the JSON output keeps the codes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.vocabulary import Severity
from services.rules.domain import labels
from services.rules.domain.facts import FactDefinition

SEVERITY = {pb.SEVERITY_MAJOR: Severity.MAJOR.word, pb.SEVERITY_GENERAL: Severity.GENERAL.word}
RISK = {pb.RiskLevel.Value(f"RISK_LEVEL_{v.upper()}"): w for v, w in labels.RISK_LEVEL.items()}
STATUS = {pb.Status.Value(f"STATUS_{v.upper()}"): w for v, w in labels.STATUS.items()}


@dataclass(frozen=True)
class Words:
    """What a person reads for a fact key (its label and unit, rulesets/facts.yaml) and a
    booking item code (its name, menu.yaml); a code it does not know is shown as it is."""

    facts: Mapping[str, FactDefinition] = field(default_factory=dict)
    services: Mapping[str, str] = field(default_factory=dict)

    def fact(self, key: str, value: object) -> str:
        known = self.facts.get(key)
        if known is None:
            return f"{key}：{labels.answer(value)}"
        return f"{known.label}：{labels.answer(value, known.unit)}"

    def service(self, code: str) -> str:
        return self.services.get(code, code)


def decision_text(d: pb.Decision, name: str = "", words: Words = Words()) -> str:
    lines = [f"{d.enterprise_id}  {name}".rstrip()]
    lines.append(f"  风险等级  {RISK.get(d.risk_level, '?')}")
    status = STATUS.get(d.status, "?")
    if d.inspection_due_on:
        status += f"，{d.inspection_due_on} 前完成针对性检查"
    lines.append(f"  监管状态  {status}")
    lines.append(f"  年度现场检查上限  {d.inspection_cap_per_year} 次")
    lines.extend(f"  · {reason}" for reason in d.risk_reasons)
    lines.append(f"  发现问题  {len(d.findings)} 项" if d.findings else "  发现问题  无")
    for f in d.findings:
        lines.extend(_finding(f, words))
    if d.whitelist_blockers:
        lines.append("  未入白名单的原因")
        lines.extend(f"   - {_blocker(b)}" for b in d.whitelist_blockers)
    if d.recommended_services:
        names = "、".join(words.service(s) for s in d.recommended_services)
        lines.append(f"  推荐预约服务  {names}")
    lines.append(f"  依据规则版本 {d.ruleset_version}，评估日 {d.as_of}，有效至 {d.valid_until}")
    return "\n".join(lines) + "\n\n"


def _finding(f: pb.Finding, words: Words) -> list[str]:
    lines = [f"   [{SEVERITY.get(f.severity, '?')}] {f.clause_ref}  {f.text}"]
    if f.superseded:
        lines.append(
            f"      标准版本  {f.edition}，已被{f.successor or '新版'}代替；"
            "新版条文尚未载入，仍按此版判定"
        )
    if f.hazard_id:
        lines.append(f"      现场隐患编号 {f.hazard_id}")
    if f.fact_keys:
        facts = "；".join(words.fact(k, _value(f.matched_facts[k])) for k in f.fact_keys)
        lines.append(f"      依据  {facts}")
    lines.append(f"      整改  {f.guidance}")
    return lines


def _blocker(b: pb.WhitelistBlocker) -> str:
    return b.reason + (f"（{b.ends_on}起不再影响）" if b.ends_on else "")


def _value(value: object) -> object:
    """A google.protobuf.Value's content."""
    kind = value.WhichOneof("kind")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else ""


def rejection(where: int, status: status_pb2.Status) -> str:
    """A profile the service refused: its number in the file, what became of it (by the
    status code), then each field named as the API names it, with the API's reason
    (docs/api.md), or the status message when no field is named."""
    refused = status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    lines = [f"#{where}：{labels.REFUSED if refused else labels.NOT_EVALUATED}"]
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            lines.extend(f"   {v.field}: {v.description}" for v in bad.field_violations)
    if len(lines) == 1:
        lines.append(f"   {status.message}")
    return "\n".join(lines) + "\n\n"
