"""The golden decision files (tests/cases/decisions/*.yaml), compared field by field."""

from __future__ import annotations

from typing import Any

from services.common._generated.rules.v1 import rules_pb2 as pb
from tests.support import case_files, load_yaml

DECISION_CASES = case_files("decisions")
RISK = {
    pb.RISK_LEVEL_BLUE: "blue",
    pb.RISK_LEVEL_YELLOW: "yellow",
    pb.RISK_LEVEL_ORANGE: "orange",
    pb.RISK_LEVEL_RED: "red",
}
STATUS = {
    pb.STATUS_WHITELIST: "whitelist",
    pb.STATUS_ROUTINE: "routine",
    pb.STATUS_PRIORITY: "priority",
}


def expected(case: dict[str, Any]) -> dict[str, Any]:
    """The compared fields; `editions` (ref → {edition, superseded, successor}) only when
    the case names them."""
    e = case["expect"]
    out = {
        "risk_level": e["risk_level"],
        "status": e["status"],
        "findings": sorted(e["findings"]),
        "whitelist_blockers": sorted(e["whitelist_blockers"]),
        "inspection_cap_per_year": e["inspection_cap_per_year"],
        "recommended_services": sorted(e["recommended_services"]),
        "valid_until": e["valid_until"],
        "inspection_due_on": e.get("inspection_due_on") or "",
    }
    if "editions" in e:
        out["editions"] = e["editions"]
    return out


def actual(decision: pb.Decision, case: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {
        "risk_level": RISK[decision.risk_level],
        "status": STATUS[decision.status],
        "findings": sorted(f.clause_ref for f in decision.findings),
        "whitelist_blockers": sorted(b.code for b in decision.whitelist_blockers),
        "inspection_cap_per_year": decision.inspection_cap_per_year,
        "recommended_services": sorted(decision.recommended_services),
        "valid_until": decision.valid_until,
        "inspection_due_on": decision.inspection_due_on,
    }
    if case is not None and "editions" in case["expect"]:
        out["editions"] = {
            f.clause_ref: {
                "edition": f.edition,
                "superseded": f.superseded,
                "successor": f.successor,
            }
            for f in decision.findings
            if f.clause_ref in case["expect"]["editions"]
        }
    return out


def load(path: Any) -> dict[str, Any]:
    return load_yaml(path)  # type: ignore[no-any-return]
