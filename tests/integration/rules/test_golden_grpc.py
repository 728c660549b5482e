"""Golden decisions through a real gRPC server with the real durable_rules engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.entrypoints.convert import profile_from_json
from tests import golden


@pytest.mark.parametrize("path", golden.DECISION_CASES, ids=lambda p: p.stem)
def test_golden_decision_over_grpc(path: Path, rules_stub, rulebook) -> None:  # type: ignore[no-untyped-def]
    case = golden.load(path)
    request = pb.EvaluateRequest(
        profile=profile_from_json(case["profile"]), as_of=case["as_of"], request_id=path.stem
    )
    decision = rules_stub.Evaluate(request, timeout=10)
    assert golden.actual(decision, case) == golden.expected(case)
    assert decision.request_id == path.stem
    assert decision.ruleset_version == rulebook.catalogue.version
    assert decision.as_of == case["as_of"]
    assert decision.enterprise_id == case["profile"]["enterprise_id"]
