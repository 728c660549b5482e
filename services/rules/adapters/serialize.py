"""Domain Decision ↔ the JSON stored in decisions.payload."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.common.vocabulary import Severity
from services.rules.domain.decision import Blocker, Decision, Finding, RiskLevel, Status


def decision_to_json(d: Decision) -> dict[str, Any]:
    return {
        "enterprise_id": d.enterprise_id,
        "status": d.status.value,
        "risk_level": d.risk_level.value,
        "findings": [
            {
                "standard_id": f.standard_id,
                "clause": f.clause,
                "severity": f.severity.value,
                "text": f.text,
                "guidance": f.guidance,
                "fact_keys": list(f.fact_keys),
                "matched_facts": dict(f.matched_facts),
                "services": list(f.services),
                "verified": f.verified,
                "hazard_id": f.hazard_id,
                "edition": f.edition,
                "superseded": f.superseded,
                "successor": f.successor,
            }
            for f in d.findings
        ],
        "whitelist_blockers": [_blocker_json(b) for b in d.whitelist_blockers],
        "inspection_cap_per_year": d.inspection_cap_per_year,
        "recommended_services": list(d.recommended_services),
        "ruleset_version": d.ruleset_version,
        "as_of": d.as_of.isoformat(),
        "valid_until": d.valid_until.isoformat(),
        "risk_reasons": list(d.risk_reasons),
        "inspection_due_on": d.inspection_due_on.isoformat() if d.inspection_due_on else None,
    }


def decision_from_json(data: dict[str, Any]) -> Decision:
    due = data.get("inspection_due_on")
    return Decision(
        enterprise_id=data["enterprise_id"],
        status=Status(data["status"]),
        risk_level=RiskLevel(data["risk_level"]),
        findings=tuple(
            Finding(
                standard_id=f["standard_id"],
                clause=f["clause"],
                severity=Severity(f["severity"]),
                text=f["text"],
                guidance=f["guidance"],
                fact_keys=tuple(f["fact_keys"]),
                matched_facts=f["matched_facts"],
                services=tuple(f["services"]),
                verified=f["verified"],
                hazard_id=f["hazard_id"],
                edition=f.get("edition", ""),  # decisions stored before editions: none
                superseded=f.get("superseded", False),
                successor=f.get("successor", ""),
            )
            for f in data["findings"]
        ),
        whitelist_blockers=tuple(
            Blocker(b["code"], b["reason"], _day(b.get("arose_on")), _day(b.get("ends_on")))
            for b in data["whitelist_blockers"]
        ),
        inspection_cap_per_year=data["inspection_cap_per_year"],
        recommended_services=tuple(data["recommended_services"]),
        ruleset_version=data["ruleset_version"],
        as_of=date.fromisoformat(data["as_of"]),
        valid_until=date.fromisoformat(data["valid_until"]),
        risk_reasons=tuple(data["risk_reasons"]),
        inspection_due_on=date.fromisoformat(due) if due else None,
    )


def _blocker_json(b: Blocker) -> dict[str, str]:
    """A blocker as stored; its dates only when it has them (older records have none)."""
    out = {"code": b.code, "reason": b.reason}
    if b.arose_on:
        out["arose_on"] = b.arose_on.isoformat()
    if b.ends_on:
        out["ends_on"] = b.ends_on.isoformat()
    return out


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None
