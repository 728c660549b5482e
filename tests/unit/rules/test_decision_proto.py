"""convert.decision_to_proto (enum numbers looked up once per member, records added in
place) builds the message the plain field-by-field translation builds, for the
decisions of generated firms: findings from facts and from hazards, every blocker."""

from __future__ import annotations

from datetime import date

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.proto_values import fact_value
from services.common.workload import Mix, profiles
from services.rules.domain.decision import Decision, Finding
from services.rules.entrypoints import convert
from services.rules.service_layer import handlers
from services.rules.service_layer.handlers import RulesContext


def _plain_finding(f: Finding) -> pb.Finding:
    out = pb.Finding(
        standard_id=f.standard_id,
        clause=f.clause,
        clause_ref=f.ref,
        severity=convert.enum_number(pb.Severity, f.severity, "SEVERITY_"),
        text=f.text,
        guidance=f.guidance,
        fact_keys=list(f.fact_keys),
        hazard_id=f.hazard_id,
        services=list(f.services),
        verified=f.verified,
        edition=f.edition,
        superseded=f.superseded,
        successor=f.successor,
    )
    for key, value in f.matched_facts.items():
        out.matched_facts[key].CopyFrom(fact_value(value))
    return out


def _plain(d: Decision, request_id: str) -> pb.Decision:
    def iso(day: date | None) -> str:
        return day.isoformat() if day else ""

    return pb.Decision(
        enterprise_id=d.enterprise_id,
        status=convert.enum_number(pb.Status, d.status, "STATUS_"),
        risk_level=convert.enum_number(pb.RiskLevel, d.risk_level, "RISK_LEVEL_"),
        findings=[_plain_finding(f) for f in d.findings],
        whitelist_blockers=[
            pb.WhitelistBlocker(
                code=b.code, reason=b.reason, arose_on=iso(b.arose_on), ends_on=iso(b.ends_on)
            )
            for b in d.whitelist_blockers
        ],
        inspection_cap_per_year=d.inspection_cap_per_year,
        recommended_services=list(d.recommended_services),
        ruleset_version=d.ruleset_version,
        as_of=iso(d.as_of),
        valid_until=iso(d.valid_until),
        risk_reasons=list(d.risk_reasons),
        inspection_due_on=iso(d.inspection_due_on),
        request_id=request_id,
    )


def test_decisions_convert_as_the_plain_translation_does(rules_ctx: RulesContext) -> None:
    kinds: set[str] = set()
    firms = [
        *profiles(600, seed=4),
        *profiles(300, seed=8, mix=Mix(with_finding=0.6, major_share=0.3, history=0.5)),
    ]
    refs = [c.ref for st in rules_ctx.catalogue.in_force(date(2026, 6, 30)) for c in st.clauses]
    for i, data in enumerate(firms):
        if i % 7 == 0:  # an open hazard found on site
            data["hazards"] = [
                {
                    "hazard_id": f"H{i}",
                    "clause_ref": refs[i % len(refs)],
                    "severity": "major" if i % 3 else "general",
                    "found_on": "2026-05-01",
                    "due_on": "2026-07-01",
                    "status": "open",
                }
            ]
        decision = handlers.evaluate_data(rules_ctx, data, "2026-06-30", prefix="")
        built = convert.decision_to_proto(decision, request_id=f"r{i}")
        assert built == _plain(decision, f"r{i}"), data["enterprise_id"]
        assert built.SerializeToString(deterministic=True) == _plain(
            decision, f"r{i}"
        ).SerializeToString(deterministic=True)
        kinds |= {b.code for b in decision.whitelist_blockers}
        kinds |= {"hazard finding" for f in decision.findings if f.hazard_id}
        kinds |= {"fact finding" for f in decision.findings if f.matched_facts}
        kinds |= {decision.status.value}
    assert {"hazard finding", "fact finding", "whitelist", "routine", "priority"} <= kinds
