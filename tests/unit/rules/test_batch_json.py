"""The batch client's fast conversions (`evaluate FILE --server`) against the plain ways:
`request_fields` must build exactly the message `convert.profile_from_json` builds (and
leave anything unusual to it), `decision_dict` must be exactly MessageToDict's dict,
keys in the same order, for decisions with findings, blockers and per-item errors."""

from __future__ import annotations

import json
import random
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import json_format, struct_pb2

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.grpc_errors import status_proto
from services.common.workload import Mix, profiles
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.domain.errors import ValidationError
from services.rules.entrypoints import batch_client, batch_json, convert, grpc_server
from services.rules.service_layer import handlers
from tests.support import RULESETS, profile

AS_OF = "2026-06-30"


def _varied(count: int, seed: int) -> list[dict[str, Any]]:
    """Generated firms, more of them with findings and histories than a register has,
    and the fields the generator leaves out (venues, roles, scores, closed late …)."""
    rng = random.Random(seed)
    firms = list(profiles(count, seed=seed, mix=Mix(with_finding=0.5, history=0.5)))
    for firm in firms[::3]:
        firm["venues"] = rng.sample(["shop", "hotel", "kindergarten", "mixed_use"], 2)
        firm["hazchem_roles"] = ["user"]
        firm["merchant_score"] = rng.randint(0, 12)
        firm["blacklisted"] = rng.random() < 0.2
        firm["facts"]["fire.exit_width_ratio"] = rng.choice([0, 2, 0.5])
        firm["accidents"] = [
            {"occurred_on": "2026-03-01", "level": "larger", "deaths": rng.randint(0, 3)}
        ]
    for firm in firms[1::3]:
        firm["hazards"] = [
            {
                "hazard_id": "H1",
                "clause_ref": "GEN:ledger",
                "severity": "major",
                "found_on": "2026-01-05",
                "due_on": "2026-02-05",
                "status": "verified",
                "closed_on": "2026-03-01",
                "closed_late": True,
            }
        ]
        firm["penalties"] = [{"decided_on": "2026-04-01", "amount_yuan": 1234.5}]
    return firms


def _request(firm: Any) -> pb.EvaluateRequest:
    """What the client sends for `firm`, the plain way."""
    return pb.EvaluateRequest(profile=convert.profile_from_json(firm), as_of=AS_OF)


def test_request_fields_build_what_profile_from_json_builds() -> None:
    firms = [*profiles(300, seed=3), *_varied(600, seed=4)]
    fast = 0
    for firm in firms:
        fields = batch_json.request_fields(firm)
        if fields is not None:
            fast += 1
            assert pb.EvaluateRequest(profile=fields, as_of=AS_OF) == _request(firm), firm
    assert fast == len(firms)  # a generated register never needs the slow way


def test_a_batch_from_arguments_is_the_batch_of_messages() -> None:
    firms = _varied(50, seed=6)
    chunk = [batch_client._item(n, f, AS_OF) for n, f in enumerate(firms, 1)]
    assert batch_client._batch(chunk) == pb.EvaluateBatchRequest(items=[_request(f) for f in firms])


@pytest.mark.parametrize(
    "change",
    [
        {"employees": 2**31},
        {"employees": 3.0},
        {"employees": "12"},
        {"employees": True},
        {"merchant_score": None},
        {"industry": "no_such_industry"},
        {"industry": "INDUSTRY_MACHINERY"},
        {"industry": "Machinery"},
        {"industry": ""},
        {"industry": "unspecified"},
        {"credit_rating": "a"},
        {"enterpriseId": "91330782MA2000001K"},
        {"facts": {"gen.no_hazard_ledger": None}},
        {"facts": {"gen.no_hazard_ledger": [1]}},
        {"facts": {"gen.no_hazard_ledger": float("nan")}},
        {"facts": {"gen.no_hazard_ledger": 2**60}},
        {"facts": []},
        {"unknown_field": 1},
        {"venues": ["nope"]},
        {"venues": "shop"},
        {"high_risk_domains": ["HIGH_RISK_DOMAIN_GAS"]},
        {"specialized_sme": 1},
        {"accidents": [{"occurred_on": None, "level": "general"}]},
        {"accidents": [{"occurred_on": "2026-01-01", "level": "general", "where": "x"}]},
        {"accidents": ["2026-01-01"]},
        {"penalties": [{"decided_on": "2026-01-01", "amount_yuan": float("inf")}]},
        {"hazards": [{"hazard_id": "H1", "severity": "SEVERITY_MAJOR"}]},
    ],
    ids=str,
)
def test_unusual_shapes_go_the_plain_way(change: dict[str, Any]) -> None:
    """Left to convert.profile_from_json, which builds them or words the error, as before;
    the client answers those it cannot build without sending them."""
    firm = {**next(profiles(1)), **change}
    assert batch_json.request_fields(firm) is None
    item = batch_client._item(7, firm, AS_OF)
    try:
        expected: Any = _request(firm)
    except Exception:
        assert item.request is None and item.answer is not None
        assert item.answer.error.code == 3  # INVALID_ARGUMENT, answered here
    else:
        assert item.request == expected


def test_text_protobuf_refuses_answers_that_line_alone() -> None:
    """A string protobuf cannot hold (a lone surrogate, which json.loads lets through)
    fails the one-call batch: that line is answered as refused, the others are sent."""
    good, bad = profile(1), profile(2, name="\ud800")
    chunk = [batch_client._item(n, f, AS_OF) for n, f in enumerate([good, bad, good], 1)]
    batch = batch_client._batch(chunk)
    assert batch == pb.EvaluateBatchRequest(items=[_request(good), _request(good)])
    assert chunk[1].request is None and chunk[1].answer is not None
    assert chunk[1].answer.error.code == 3


def _decisions(firms: list[Any]) -> list[pb.Decision]:
    ctx = grpc_server.context_from(load_rulebook(RULESETS))
    out = []
    for firm in firms:
        try:
            decision = handlers.evaluate_data(
                ctx, convert.short_profile_json(firm), AS_OF, prefix=""
            )
        except ValidationError as exc:
            out.append(pb.Decision(enterprise_id=firm["enterprise_id"], error=status_proto(exc)))
        else:
            out.append(convert.decision_to_proto(decision, request_id="r1"))
    return out


def _unusual_decisions() -> list[pb.Decision]:
    finding = pb.Finding(
        standard_id="FIRE35181",
        clause="2.1",
        severity=pb.SEVERITY_MAJOR,
        clause_ref="FIRE35181:2.1",
        hazard_id="H9",
        edition="GB 35181-2017",
        superseded=True,
        successor="GB 35181-2025",
    )
    finding.matched_facts["a"].number_value = 2.0
    finding.matched_facts["b"].string_value = "文本"
    finding.matched_facts["c"].null_value = struct_pb2.NULL_VALUE
    finding.matched_facts["d"].list_value.values.add().bool_value = False
    finding.matched_facts["e"].bool_value = False
    finding.matched_facts["f"].number_value = -0.5
    return [
        pb.Decision(),
        pb.Decision(
            enterprise_id="X",
            status=99,  # a status this client does not know
            findings=[finding, pb.Finding(severity=42)],
            inspection_due_on="2026-07-30",
            decision_id="d-1",
            inspection_cap_per_year=-1,
        ),
        pb.Decision(error=pb.Decision().error),  # an error that is set but empty
        pb.Decision(
            enterprise_id="Y",
            error=batch_client.status(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down"),
        ),
    ]


def test_decision_dict_is_message_to_dict() -> None:
    firms = _varied(400, seed=8)
    for firm in firms[::25]:
        firm["employees"] = -1  # rejected: an error with BadRequest details
    decisions = [*_decisions(firms), *_unusual_decisions()]
    kinds = {"findings": 0, "whitelist_blockers": 0, "error": 0, "inspection_due_on": 0}
    for decision in decisions:
        plain = json_format.MessageToDict(decision, preserving_proto_field_name=True)
        fast = batch_json.decision_dict(decision)
        # equal, and the keys in the same order at every level
        assert json.dumps(fast, ensure_ascii=False) == json.dumps(plain, ensure_ascii=False)
        line = batch_json.decision_line(decision, 5)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.dumps(orjson.loads(line), ensure_ascii=False) == json.dumps(
            {"item": 5, **plain}, ensure_ascii=False
        )
        kinds.update({k: kinds[k] + 1 for k in kinds if k in plain})
    assert all(count >= 10 for count in kinds.values()), kinds


def test_remembered_lines_are_the_lines_printed_afresh() -> None:
    """DecisionLines prints a decision like decision_line, whether its rest (all but the
    enterprise_id) was remembered or not, and forgets all at its limit."""
    firms = _varied(300, seed=9)
    for firm in firms[::30]:
        firm["employees"] = -1
    decisions = [*_decisions(firms), *_unusual_decisions()]
    again = [pb.Decision.FromString(d.SerializeToString()) for d in decisions]
    for d in again[::2]:
        d.enterprise_id = "91330782MA2000009X" if d.enterprise_id else ""
    for lines in (batch_json.DecisionLines(), batch_json.DecisionLines(limit=50)):
        for decision in [*decisions, *again]:
            before = decision.SerializeToString()
            assert lines.line(decision) == batch_json.decision_line(decision)
            assert lines.line(decision, 3) == batch_json.decision_line(decision, 3)
            assert decision.SerializeToString() == before  # the id put back
            assert len(lines.known) <= lines.limit
        if lines.limit > len(decisions):  # the second pass is all remembered
            assert lines.hits >= len([d for d in again if not d.HasField("error")])


def test_the_field_lists_are_the_messages_whole_field_lists() -> None:
    for fields, message in [
        (batch_json.DECISION_FIELDS, pb.Decision),
        (batch_json.FINDING_FIELDS, pb.Finding),
        (batch_json.BLOCKER_FIELDS, pb.WhitelistBlocker),
    ]:
        numbered = sorted(message.DESCRIPTOR.fields, key=lambda f: f.number)
        assert [name for name, _ in fields] == [f.name for f in numbered]
