"""Review 72 (integrator's view): an error that lists an enum's values lists them as the
caller writes them. A gRPC or HTTP/JSON caller sends and reads the proto names
(`INDUSTRY_METALLURGY`), so its errors name those; the CLI's files write the short
names (`metallurgy`), so the CLI's errors keep them. One check (FieldChecker.enum) serves
both, given the caller's spelling (RulesContext.spelling)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.conftest import upsert, violations
from tests.integration.rules.test_cli import run_cli, write_jsonl
from tests.integration.rules.test_http_api import (  # the fixtures: a gRPC server with
    Running,  # its HTTP/JSON gateway, on SQLite and PostgreSQL
    bearer,
    post,
    served,  # noqa: F401
    store,  # noqa: F401
)
from tests.support import profile, uscc


def test_evaluate_over_grpc_lists_the_proto_names(
    rules_stub: rules_pb2_grpc.RulesServiceStub,
) -> None:
    sent = profile_from_json(profile(1))
    sent.ClearField("industry")
    sent.accidents.add(occurred_on="2025-03-01", level=99, deaths=0)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(pb.EvaluateRequest(profile=sent), timeout=30)
    bad = violations(info.value)
    assert "INDUSTRY_METALLURGY" in bad["profile.industry"], bad
    assert "metallurgy," not in bad["profile.industry"].replace("INDUSTRY_METALLURGY", "")
    assert "ACCIDENT_LEVEL_GENERAL" in bad["profile.accidents[0].level"], bad


def test_check_inspection_and_report_event_list_the_proto_names(
    register_stub: rules_pb2_grpc.RulesServiceStub,
) -> None:
    upsert(register_stub, profile(1))
    with pytest.raises(grpc.RpcError) as info:
        register_stub.CheckInspection(
            pb.CheckInspectionRequest(
                enterprise_id=uscc(1),
                authority="市场监管局",
                kind=99,  # type: ignore[arg-type]
                planned_on="2026-08-01",
            ),
            timeout=30,
        )
    kind = violations(info.value)["kind"]
    assert "INSPECTION_KIND_ROUTINE" in kind and " routine" not in kind, kind

    event = pb.EnterpriseEvent(
        event_id="e-1",
        enterprise_id=uscc(1),
        kind=pb.EVENT_KIND_ACCIDENT,
        occurred_on="2026-06-01",
        accident=pb.AccidentDetail(level=99, deaths=0),  # type: ignore[arg-type]
    )
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=30)
    level = violations(info.value)["event.accident.level"]
    assert "ACCIDENT_LEVEL_GENERAL" in level and " general" not in level, level

    updated = profile_from_json(profile(1))
    updated.ClearField("industry")
    event = pb.EnterpriseEvent(
        event_id="e-2",
        enterprise_id=uscc(1),
        kind=pb.EVENT_KIND_PROFILE_UPDATED,
        occurred_on="2026-06-01",
        profile=updated,
    )
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=30)
    assert "INDUSTRY_MACHINERY" in violations(info.value)["event.profile.industry"]


def test_http_json_lists_the_proto_names_it_reads_and_writes(
    served: Running,  # noqa: F811
) -> None:
    body = json_format.MessageToDict(profile_from_json(profile(1)))
    del body["industry"]
    answer = post(served.http, "Evaluate", {"profile": body}, headers=bearer("evaluator"))
    assert answer.status_code == 400
    [detail] = answer.json()["details"]
    [violation] = detail["fieldViolations"]
    assert violation["field"] == "profile.industry"
    assert "INDUSTRY_COMMERCE_TRADE" in violation["description"], violation


def test_the_cli_keeps_the_short_names_its_files_write(tmp_path: Path) -> None:
    rows = [{k: v for k, v in profile(1).items() if k != "industry"}]
    result = run_cli(
        "evaluate", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--json", "--as-of", "2026-06-30"
    )
    assert result.returncode == 1, result.stderr
    [violation] = json.loads(result.stdout)["error"]["details"][0]["field_violations"]
    assert violation["field"] == "industry"
    assert "one of metallurgy, " in violation["description"], violation
    assert "INDUSTRY_" not in violation["description"]
