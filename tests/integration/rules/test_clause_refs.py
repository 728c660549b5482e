"""A hazard's clause_ref must name a clause the loaded rulesets know (issue 14.1), in every
path that accepts one: Evaluate and EvaluateStream, ListApplicableClauses, UpsertEnterprise
(with or without update_mask), and ReportEvent's PROFILE_UPDATED profile; a hazard found
on site (ReportEvent's MAJOR/GENERAL_HAZARD_FOUND) is recorded whatever its clause. SQLite
and PostgreSQL; GM2023:99 and NOPE:1 are unknown, GM2023:11(1) is known."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import Engine, update

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.rules.adapters.orm import firms
from services.rules.domain import labels
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.conftest import upsert
from tests.integration.rules.test_events import (
    hazard_found,
    profile_updated,
    report,
    status_of,
    violations,
    whitelisted_firm,
)
from tests.support import profile, uscc

UNKNOWN = ["GM2023:99", "NOPE:1"]


def hazard(ref: str, hazard_id: str = "H1", severity: str = "major") -> dict[str, Any]:
    return {
        "hazard_id": hazard_id,
        "clause_ref": ref,
        "severity": severity,
        "found_on": "2026-06-01",
        "due_on": "2026-07-01",
        "status": "open",
    }


def refused(call: Any, *args: Any) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return violations(info.value)


@pytest.mark.parametrize("ref", UNKNOWN)
def test_a_found_general_hazard_citing_a_clause_no_ruleset_knows_is_recorded(
    register_stub: RulesServiceStub, ref: str
) -> None:
    """A GENERAL hazard found on site under a clause a ruleset change has since removed
    was refused for good (INVALID_ARGUMENT), so booking parked the report and held every
    later report of the firm behind it. It is recorded as a MAJOR one is (review 67 F2):
    the firm re-evaluated (YELLOW, off the white list: an open hazard), the finding citing
    the ref and saying the rulesets no longer have the clause."""
    whitelisted_firm(register_stub)
    status = report(register_stub, hazard_found(1, "h-1", "H1", clause_ref=ref))
    assert status.decision.risk_level == pb.RISK_LEVEL_YELLOW
    assert status.decision.status == pb.STATUS_ROUTINE
    assert not status.HasField("whitelist_entry")
    [hazard] = status.profile.hazards
    assert (hazard.clause_ref, hazard.severity) == (ref, pb.SEVERITY_GENERAL)
    [finding] = [f for f in status.decision.findings if f.hazard_id == "H1"]
    assert finding.text == labels.hazard_clause_gone(ref)
    assert status_of(register_stub, 1).decision == status.decision


@pytest.mark.parametrize("ref", UNKNOWN)
def test_a_found_major_hazard_citing_a_clause_no_ruleset_knows_is_recorded(
    register_stub: RulesServiceStub, ref: str
) -> None:
    """Review 67 F2: a MAJOR hazard found on site under a clause a ruleset change has
    since removed was refused for good, so booking parked it and the firm stayed on the
    white list with an open major hazard. A major hazard cannot stay invisible: it is
    recorded, the firm is RED and off the white list, the finding citing the ref."""
    whitelisted_firm(register_stub)
    status = report(register_stub, hazard_found(1, "h-1", "H1", major=True, clause_ref=ref))
    assert status.decision.risk_level == pb.RISK_LEVEL_RED
    assert status.decision.status == pb.STATUS_PRIORITY
    assert not status.HasField("whitelist_entry")
    [hazard] = status.profile.hazards
    assert hazard.clause_ref == ref
    [finding] = [f for f in status.decision.findings if f.hazard_id == "H1"]
    assert finding.text == labels.hazard_clause_gone(ref)


def test_a_found_hazard_citing_a_known_clause_is_applied(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    status = report(
        register_stub, hazard_found(1, "h-1", "H1", major=True, clause_ref="GM2023:11(1)")
    )
    assert status.decision.risk_level == pb.RISK_LEVEL_RED


@pytest.mark.parametrize("ref", UNKNOWN)
def test_a_profile_hazard_citing_an_unknown_clause_is_refused_everywhere(
    register_stub: RulesServiceStub, ref: str
) -> None:
    whitelisted_firm(register_stub)
    bad = profile(1, hazards=[hazard("GEN:ledger", "H0", "general"), hazard(ref)])
    field = "profile.hazards[1].clause_ref"
    assert field in refused(upsert, register_stub, bad)
    masked = pb.UpsertEnterpriseRequest(
        profile=profile_from_json(bad), update_mask=field_mask_pb2.FieldMask(paths=["hazards"])
    )
    assert field in refused(register_stub.UpsertEnterprise, masked)
    assert "event." + field in refused(report, register_stub, profile_updated(1, "p-1", bad))
    evaluate = pb.EvaluateRequest(profile=profile_from_json(bad), as_of="2026-06-30")
    assert field in refused(register_stub.Evaluate, evaluate)
    listing = pb.ListApplicableClausesRequest(profile=profile_from_json(bad), as_of="2026-06-30")
    assert field in refused(register_stub.ListApplicableClauses, listing)
    [item] = register_stub.EvaluateStream(iter([evaluate]), timeout=10)
    assert item.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert ref in item.error.message
    after = status_of(register_stub, 1)
    assert after.decision.status == pb.STATUS_WHITELIST and list(after.profile.hazards) == []


def test_a_profile_hazard_citing_a_known_clause_is_stored(register_stub: RulesServiceStub) -> None:
    status = upsert(register_stub, profile(1, hazards=[hazard("GM2023:11(1)")]))
    assert [h.clause_ref for h in status.profile.hazards] == ["GM2023:11(1)"]
    assert status.decision.risk_level == pb.RISK_LEVEL_RED


def test_a_hazard_already_on_record_is_not_judged_again_when_resent(
    register_stub: RulesServiceStub, db_engine: Engine
) -> None:
    """A stored hazard keeps its recorded state (a resent copy is ignored), so a copy
    citing a clause since renumbered does not refuse the whole profile."""
    upsert(register_stub, profile(1, hazards=[hazard("GM2023:11(1)")]))
    stale = profile(1, hazards=[hazard("GM2023:99")])  # as the firm was recorded long ago
    with db_engine.begin() as conn:
        conn.execute(update(firms).values(profile=stale))
    status = upsert(register_stub, profile(1, name="新名称", hazards=[hazard("GM2023:99")]))
    assert status.profile.name == "新名称"
    assert [h.clause_ref for h in status.profile.hazards] == ["GM2023:99"]
    assert uscc(1) == status.profile.enterprise_id
