"""The rules RPCs over HTTP/JSON (issue 14.12): a real rules server with its real HTTP
gateway on port 0, called with httpx. The same handlers (answers equal the gRPC ones), the
same tokens, scopes and per-caller rate limit (shared with the gRPC port), errors as a
google.rpc.Status body with the mapped HTTP status, TLS and mutual TLS as on gRPC; and
every served route is in docs/openapi.json and every path there is served."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format
from sqlalchemy import Engine

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.auth import TokenStore
from services.common.http_server import start_http
from services.common.ratelimit import Rate
from services.common.security import Security
from services.common.server import TlsFiles
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server, http_api
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.conftest import Clock, violations
from tests.integration.security.certs import make_pki
from tests.support import ROOT, profile, uscc

TOKENS = {
    "evaluator": ("tok-http-evaluator-0123", ["rules.evaluate"]),
    "writer": ("tok-http-writer-01234567", ["rules.read", "rules.write", "inspection.check"]),
}


@dataclass
class Running:
    http: str  # base URL
    grpc: rules_pb2_grpc.RulesServiceStub


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[name][0]}"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    entries = [{"token": t, "caller": n, "scopes": s} for n, (t, s) in TOKENS.items()]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    return TokenStore.load(path)


def _serve(
    rulebook: Rulebook, security: Security, engine: Engine | None = None, clock: Clock | None = None
) -> Iterator[Running]:
    running = grpc_server.build(
        rulebook,
        engine=engine,
        address="127.0.0.1:0",
        max_workers=8,
        security=security,
        **({"today": clock} if clock else {}),
    )
    running.server.start()
    http = start_http(http_api.create_http_app(running), tls=security.tls)
    scheme = "https" if security.tls else "http"
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Running(
                f"{scheme}://127.0.0.1:{http.port}", rules_pb2_grpc.RulesServiceStub(channel)
            )
    finally:
        http.stop()
        running.server.stop(None)


@pytest.fixture
def served(
    rulebook: Rulebook, store: TokenStore, db_engine: Engine, clock: Clock
) -> Iterator[Running]:
    yield from _serve(rulebook, Security(store, Rate(1000, 1000)), db_engine, clock)


def _json(message: object) -> dict[str, object]:
    return json_format.MessageToDict(message)  # type: ignore[arg-type]


def post(base: str, method: str, body: object = None, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{base}/v1/rules/{method}", json=body, timeout=30, **kwargs)  # type: ignore[arg-type]


def post_text(base: str, method: str, body: str) -> httpx.Response:
    """A body sent as written (keys twice, any nesting), as JSON, by an evaluator."""
    return httpx.post(
        f"{base}/v1/rules/{method}",
        content=body.encode(),
        headers={**bearer("evaluator"), "content-type": "application/json"},
        timeout=30,
    )


def test_evaluate_over_http_answers_what_grpc_answers(served: Running) -> None:
    request = pb.EvaluateRequest(
        profile=profile_from_json(profile(1, facts={"gen.training_missing": True})),
        as_of="2026-06-30",
        request_id="r-1",
    )
    over_grpc = served.grpc.Evaluate(
        request, metadata=tuple(bearer("evaluator").items()), timeout=30
    )
    answer = post(served.http, "Evaluate", _json(request), headers=bearer("evaluator"))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["status"] == "STATUS_ROUTINE" and body["requestId"] == "r-1"
    assert body["inspectionCapPerYear"] == over_grpc.inspection_cap_per_year
    parsed = json_format.ParseDict(body, pb.Decision())
    assert parsed == over_grpc
    # every field is present, so a client never needs to know proto3's defaults
    assert body["whitelistBlockers"] and "decisionId" in body and body["decisionId"] == ""


def test_the_register_over_http_with_the_proto3_json_mapping(served: Running) -> None:
    data = _json(profile_from_json(profile(1, region="330782004")))
    status = post(served.http, "UpsertEnterprise", {"profile": data}, headers=bearer("writer"))
    assert status.status_code == 200, status.text
    assert status.json()["profile"]["region"] == "北苑街道"
    read = post(
        served.http, "GetEnterpriseStatus", {"enterpriseId": uscc(1)}, headers=bearer("writer")
    )
    assert read.json()["decision"]["status"] == "STATUS_WHITELIST"
    listed = post(served.http, "ListWhitelist", {"region": "义乌市"}, headers=bearer("writer"))
    assert [e["enterpriseId"] for e in listed.json()["entries"]] == [uscc(1)]
    firms = post(served.http, "ListEnterprises", {"region": "义乌市"}, headers=bearer("writer"))
    assert firms.status_code == 200, firms.text
    assert firms.json()["enterprises"] == [
        {
            "enterpriseId": uscc(1),
            "name": "测试企业1",
            "region": "北苑街道",
            "industry": "INDUSTRY_MACHINERY",
            "status": "STATUS_WHITELIST",
        }
    ]
    no_read = post(served.http, "ListEnterprises", {}, headers=bearer("evaluator"))
    assert no_read.status_code == 403  # scope rules.read
    regions = post(served.http, "ListRegions", headers=bearer("writer")).json()  # empty body
    assert {
        "code": "330782001",
        "name": "稠城街道",
        "kind": "街道",
        "countyCode": "330782",
        "countyName": "义乌市",
    } in regions["regions"]


def _status(answer: httpx.Response) -> dict[str, object]:
    body = answer.json()
    assert set(body) <= {"code", "message", "details"}, body
    return body


def test_errors_map_to_http_status_with_a_google_rpc_status_body(served: Running) -> None:
    bad = _json(profile_from_json(profile(1, region="Chouchheng street!!", employees=-1)))
    answer = post(served.http, "Evaluate", {"profile": bad}, headers=bearer("evaluator"))
    assert answer.status_code == 400
    status = _status(answer)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    [detail] = status["details"]  # type: ignore[misc]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    fields = {v["field"] for v in detail["fieldViolations"]}
    assert fields == {"profile.region", "profile.employees"}

    missing = post(
        served.http, "GetEnterpriseStatus", {"enterpriseId": uscc(9)}, headers=bearer("writer")
    )
    assert (missing.status_code, _status(missing)["code"]) == (
        404,
        grpc.StatusCode.NOT_FOUND.value[0],
    )

    post(
        served.http,
        "UpsertEnterprise",
        {"profile": _json(profile_from_json(profile(1)))},
        headers=bearer("writer"),
    )
    event = {
        "eventId": "e-1",
        "enterpriseId": uscc(1),
        "kind": "EVENT_KIND_COMPLAINT",
        "occurredOn": "2026-06-01",
        "complaint": {"text": "噪音"},
    }
    assert (
        post(served.http, "ReportEvent", {"event": event}, headers=bearer("writer")).status_code
        == 200
    )
    event["complaint"] = {"text": "另一件事"}
    again = post(served.http, "ReportEvent", {"event": event}, headers=bearer("writer"))
    assert (again.status_code, _status(again)["code"]) == (
        409,
        grpc.StatusCode.ALREADY_EXISTS.value[0],
    )

    unknown_field = post(served.http, "Evaluate", {"profil": {}}, headers=bearer("evaluator"))
    assert unknown_field.status_code == 400
    not_json = httpx.post(
        f"{served.http}/v1/rules/Evaluate",
        content=b"{nope" + b"x" * 5000,
        headers={**bearer("evaluator"), "content-type": "application/json"},
        timeout=30,
    )
    assert not_json.status_code == 400 and "x" * 50 not in not_json.text
    assert httpx.post(f"{served.http}/v1/rules/Nope", timeout=30).status_code == 404
    wrong_verb = httpx.get(f"{served.http}/v1/rules/Evaluate", timeout=30)
    assert wrong_verb.status_code == 405 and _status(wrong_verb)["code"] == 12
    for streaming in ("EvaluateStream", "ReportEventStream", "WatchChanges"):  # gRPC only
        assert post(served.http, streaming, {}, headers=bearer("writer")).status_code == 404


def test_the_same_tokens_and_scopes_as_grpc(served: Running) -> None:
    nobody = post(served.http, "Evaluate", {})
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"].startswith("Bearer")
    assert "missing bearer token" in _status(nobody)["message"]  # type: ignore[operator]
    no_scheme = post(served.http, "Evaluate", {}, headers={"authorization": TOKENS["evaluator"][0]})
    assert no_scheme.status_code == 401 and "Bearer" in _status(no_scheme)["message"]  # type: ignore[operator]
    unknown = post(
        served.http, "Evaluate", {}, headers={"authorization": "Bearer not-a-token-at-all"}
    )
    assert unknown.status_code == 401
    wrong_scope = post(served.http, "UpsertEnterprise", {}, headers=bearer("evaluator"))
    assert wrong_scope.status_code == 403
    assert _status(wrong_scope)["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]


def test_no_register_database_is_failed_precondition_as_400(
    rulebook: Rulebook, store: TokenStore
) -> None:
    for running in _serve(rulebook, Security(store)):
        answer = post(
            running.http, "GetEnterpriseStatus", {"enterpriseId": uscc(1)}, headers=bearer("writer")
        )
        assert answer.status_code == 400
        assert _status(answer)["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert httpx.get(f"{running.http}/healthz", timeout=30).text == "ok"


def test_one_rate_limit_per_caller_across_grpc_and_http(
    rulebook: Rulebook, store: TokenStore
) -> None:
    for running in _serve(rulebook, Security(store, Rate(0.01, 2))):
        request = pb.EvaluateRequest(profile=profile_from_json(profile(1)))
        for _ in range(2):  # the burst, spent on the gRPC port
            running.grpc.Evaluate(request, metadata=tuple(bearer("evaluator").items()), timeout=30)
        answer = post(running.http, "Evaluate", _json(request), headers=bearer("evaluator"))
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) >= 1
        status = _status(answer)
        assert status["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        [info] = status["details"]  # type: ignore[misc]
        assert info["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
        assert info["retryDelay"].endswith("s")
        # another caller is not limited by the first one's calls
        other = post(running.http, "ListFacts", {}, headers=bearer("writer"))
        assert other.status_code == 200


def test_https_and_mutual_tls_with_the_grpc_flags(
    rulebook: Rulebook, store: TokenStore, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    tls = TlsFiles(pki["server"], pki["server_key"], client_ca=pki["ca"])
    for running in _serve(rulebook, Security(store, tls=tls)):
        trusted = ssl.create_default_context(cafile=str(pki["ca"]))
        trusted.load_cert_chain(str(pki["client"]), str(pki["client_key"]))
        answer = httpx.post(
            f"{running.http}/v1/rules/ListFacts",
            json={},
            headers=bearer("evaluator"),
            verify=trusted,
            timeout=30,
        )
        assert answer.status_code == 200
        no_client_cert = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                f"{running.http}/v1/rules/ListFacts",
                json={},
                headers=bearer("evaluator"),
                verify=no_client_cert,
                timeout=30,
            )


def test_every_served_route_is_in_the_openapi_document_and_vice_versa(
    rulebook: Rulebook, store: TokenStore
) -> None:
    document = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    documented = {(path, verb) for path, ops in document["paths"].items() for verb in ops}
    for running in _serve(rulebook, Security(store)):
        app = http_api.create_http_app(
            grpc_server.build(rulebook, engine=None, address="127.0.0.1:0", max_workers=1)
        )
        served = {
            (route.path, verb.lower())
            for route in app.routes
            for verb in (route.methods or ()) - {"HEAD"}  # type: ignore[attr-defined]
        }
        assert served == documented
        unary = {
            m.name
            for m in http_api.SERVICE.methods
            if not m.server_streaming and not m.client_streaming
        }
        assert {p.rsplit("/", 1)[1] for p, _ in documented if p.startswith("/v1/rules/")} == unary
        served_doc = httpx.get(f"{running.http}/v1/openapi.json", timeout=30)
        assert served_doc.status_code == 200 and served_doc.json() == document


def test_update_mask_over_http_names_any_fact_key_as_a_list_and_never_ignores_one(
    served: Running,
) -> None:
    """The proto3 JSON string form cannot spell metallurgy.co_alarm_not_monitored_24h:
    `coAlarmNotMonitored24h` maps back to `…monitored24h`, which was OK and silently changed
    nothing (review finding 5). A list of paths names it; the string form is refused, and a
    string written the gRPC way (with "_") is refused with a pointer to the list form (review
    21: protobuf's own refusal did not mention it)."""
    key = "metallurgy.co_alarm_not_monitored_24h"
    data = _json(profile_from_json(profile(1, facts={key: True, "gen.training_missing": True})))
    first = post(served.http, "UpsertEnterprise", {"profile": data}, headers=bearer("writer"))
    assert first.status_code == 200, first.text
    sent = {"enterpriseId": uscc(1), "facts": {key: False, "gen.training_missing": False}}

    camel = {"profile": sent, "updateMask": "facts.metallurgy.coAlarmNotMonitored24h"}
    answer = post(served.http, "UpsertEnterprise", camel, headers=bearer("writer"))
    assert answer.status_code == 400, answer.text
    [detail] = _status(answer)["details"]  # type: ignore[misc]
    [violation] = detail["fieldViolations"]
    assert violation["field"] == "update_mask.paths[0]"
    assert key in violation["description"] and "list" in violation["description"]

    listed = {"profile": sent, "updateMask": [f"facts.{key}"]}
    answer = post(served.http, "UpsertEnterprise", listed, headers=bearer("writer"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["profile"]["facts"] == {key: False, "gen.training_missing": True}

    string = {"profile": sent, "updateMask": "facts.gen.trainingMissing"}  # camelCase works
    answer = post(served.http, "UpsertEnterprise", string, headers=bearer("writer"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["profile"]["facts"] == {key: False, "gen.training_missing": False}

    snake = {"profile": sent, "updateMask": "employees,facts.gen.training_missing"}
    answer = post(served.http, "UpsertEnterprise", snake, headers=bearer("writer"))
    assert answer.status_code == 400, answer.text
    [(field, why)] = _violations(_status(answer)).items()
    assert field == "update_mask" and "JSON list of paths" in why, why

    wrong = {"profile": sent, "updateMask": ["employees", 3]}
    answer = post(served.http, "UpsertEnterprise", wrong, headers=bearer("writer"))
    assert answer.status_code == 400
    assert _violations(_status(answer)) == {"update_mask": "a list of paths holds strings only"}


def _violations(status: dict[str, object]) -> dict[str, str]:
    """The google.rpc.BadRequest field violations of a Status body, by field."""
    found: dict[str, str] = {}
    for detail in status.get("details", []):  # type: ignore[attr-defined]
        assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        found.update({v["field"]: v["description"] for v in detail["fieldViolations"]})
    return found


def _grpc_violations(call: object, request: object, token: str) -> dict[str, str]:
    """The BadRequest field violations of the same request refused over gRPC."""
    with pytest.raises(grpc.RpcError) as refused:
        call(request, metadata=tuple(bearer(token).items()), timeout=30)  # type: ignore[operator]
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    return violations(refused.value)


def test_control_characters_are_refused_over_http_as_over_grpc(served: Running) -> None:
    """Review finding 1: the gateway called the servicer without the gRPC port's
    control-character check, so BEL, NUL and ESC in a firm's name were stored (SQLite)
    or answered 500 (PostgreSQL). Now every route refuses them as gRPC does: 400
    INVALID_ARGUMENT with a BadRequest naming the same fields, and nothing is stored."""
    poisoned = profile_from_json(profile(1))
    poisoned.name = "义乌\x07\x00\x1b[2J化工厂"
    event = pb.EnterpriseEvent(
        event_id="e-ctl",
        enterprise_id=uscc(1),
        kind=pb.EVENT_KIND_COMPLAINT,
        occurred_on="2026-06-01",
        complaint=pb.ComplaintDetail(text="x\x00\x1b[31m"),
    )
    gate = pb.CheckInspectionRequest(
        enterprise_id=uscc(1),
        authority="局\x00\x08",
        kind=pb.INSPECTION_KIND_ROUTINE,
        planned_on="2026-07-01",
        grounds="g\x00",
    )
    cases = [
        ("UpsertEnterprise", pb.UpsertEnterpriseRequest(profile=poisoned), "writer"),
        ("Evaluate", pb.EvaluateRequest(profile=poisoned), "evaluator"),
        ("ReportEvent", pb.ReportEventRequest(event=event), "writer"),
        ("CheckInspection", gate, "writer"),
    ]
    fields = [
        {"profile.name"},
        {"profile.name"},
        {"event.complaint.text"},
        {"authority", "grounds"},
    ]
    for (method, request, token), named in zip(cases, fields, strict=True):
        answer = post(served.http, method, _json(request), headers=bearer(token))
        assert answer.status_code == 400, (method, answer.text)
        status = _status(answer)
        assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        over_grpc = _grpc_violations(getattr(served.grpc, method), request, token)
        assert _violations(status) == over_grpc, method
        assert set(over_grpc) == named
        assert all("control characters" in d for d in over_grpc.values())
    missing = post(
        served.http, "GetEnterpriseStatus", {"enterpriseId": uscc(1)}, headers=bearer("writer")
    )
    assert missing.status_code == 404  # nothing was stored


def _batch(*names: str) -> pb.EvaluateBatchRequest:
    items = []
    for n, name in enumerate(names, 1):
        item = pb.EvaluateRequest(
            profile=profile_from_json(profile(n)), as_of="2026-06-30", request_id=f"r{n}"
        )
        item.profile.name = name
        items.append(item)
    return pb.EvaluateBatchRequest(items=items)


def test_a_control_character_in_a_batch_item_over_http_answers_that_item_alone(
    served: Running,
) -> None:
    """Review finding 2, over HTTP: the gateway does not refuse EvaluateBatch as a whole
    for one bad item; that item carries its error, the others their decisions."""
    answer = post(
        served.http,
        "EvaluateBatch",
        _json(_batch("甲厂", "乙\x01厂", "丙厂")),
        headers=bearer("evaluator"),
    )
    assert answer.status_code == 200, answer.text
    good, bad, other = answer.json()["decisions"]
    assert [d["requestId"] for d in (good, bad, other)] == ["r1", "r2", "r3"]
    assert "error" not in good and "error" not in other and good["status"] and other["status"]
    assert bad["error"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert _violations(bad["error"]) == {
        "profile.name": "must not contain control characters (U+0001 at 1)"
    }


def test_a_body_protobuf_refuses_names_the_field_and_quotes_a_short_prefix(
    served: Running,
) -> None:
    """Review finding 11: the gateway put ~160 characters of protobuf's own text (75 of
    the bad value) in the message, with no BadRequest. Now the field is named, the value
    quoted by values.preview (at most 32 characters)."""
    bad = _json(profile_from_json(profile(1)))
    cases: list[tuple[str, dict[str, object], str]] = [
        ("Evaluate", {"profile": {**bad, "employees": "9" * 300}}, "profile.employees"),
        ("Evaluate", {"profile": {**bad, "industry": "NOPE" * 50}}, "profile.industry"),
        (
            "Evaluate",
            {"profile": {**bad, "hazards": [{}, {"dueOn": ["9" * 80]}]}},
            "profile.hazards[1].due_on",
        ),
        ("Evaluate", {"profile": {**bad, "nameX": "x"}}, "profile.nameX"),
        ("Evaluate", {"asOf": 7}, "as_of"),
        ("EvaluateBatch", {"items": [{}, {"requestId": {"a": "9" * 80}}]}, "items[1].request_id"),
        (
            "UpsertEnterprise",
            {"profile": bad, "updateMask": "facts.gen.training_missing"},
            "update_mask",
        ),
    ]
    for method, body, field in cases:
        answer = post(
            served.http,
            method,
            body,
            headers=bearer("writer" if method == "UpsertEnterprise" else "evaluator"),
        )
        assert answer.status_code == 400, (method, answer.text)
        status = _status(answer)
        assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert list(_violations(status)) == [field], status
        assert "9" * 33 not in answer.text and "NOPE" * 9 not in answer.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "", "application/jsonx", "application/json; charset=latin1", "text/json"],
)
def test_a_body_not_sent_as_json_is_refused_naming_the_content_type(
    served: Running, content_type: str
) -> None:
    """Review 47b F2: text/plain, no type at all and other types were all served."""
    body = json.dumps(_json(pb.EvaluateRequest(profile=profile_from_json(profile(1)))))
    headers = {**bearer("evaluator"), "content-type": content_type}
    answer = httpx.post(
        f"{served.http}/v1/rules/Evaluate", content=body.encode(), headers=headers, timeout=30
    )
    assert answer.status_code == 400, answer.text
    assert set(_violations(_status(answer))) == {"content-type"}
    for fine in (
        "application/json",
        "Application/JSON; charset=UTF-8",
        'application/json;charset="utf-8"',
        "application/json; charset=us-ascii",  # a part of UTF-8 (review 48 N5)
    ):
        headers = {**bearer("evaluator"), "content-type": fine}
        answer = httpx.post(
            f"{served.http}/v1/rules/Evaluate", content=body.encode(), headers=headers, timeout=30
        )
        assert answer.status_code == 200, (fine, answer.text)
    # an empty body needs no type: every field its default
    assert (
        httpx.post(
            f"{served.http}/v1/rules/ListStandards", headers=bearer("evaluator"), timeout=30
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"asOf": "2026-06-30", "as_of": "2026-07-01", "profile": {}}', "as_of"),
        ('{"profile": {"enterpriseId": "x", "enterprise_id": "y"}}', "profile.enterprise_id"),
        (
            '{"items": [{"asOf": "2026-06-30"}, {"asOf": "2026-06-30", "as_of": "2026-07-01"}]}',
            "items[1].as_of",
        ),
    ],
)
def test_one_field_sent_by_both_its_names_is_refused(
    served: Running, body: str, field: str
) -> None:
    """Review 48 F2: `asOf` and `as_of` in one object were both taken, the last winning."""
    method = "EvaluateBatch" if body.startswith('{"items"') else "Evaluate"
    answer = post_text(served.http, method, body)
    assert answer.status_code == 400, answer.text
    assert set(_violations(_status(answer))) == {field}


def test_an_update_mask_sent_by_both_its_names_is_refused(served: Running) -> None:
    body = {"profile": {}, "updateMask": ["employees"], "update_mask": ["name"]}
    answer = post(served.http, "UpsertEnterprise", body, headers=bearer("writer"))
    assert answer.status_code == 400, answer.text
    assert set(_violations(_status(answer))) == {"update_mask"}


@pytest.mark.parametrize(
    "body",
    [
        '{"asOf": "2026-06-30", "asOf": "2026-07-01", "profile": {}}',
        '{"profile": {"name": "甲", "name": "乙"}}',
        '{"profile": {"facts": {"gen.training_missing": true, "gen.training_missing": false}}}',
    ],
)
def test_a_key_sent_twice_is_refused_not_the_last_one_kept(served: Running, body: str) -> None:
    """Review 47b F2: the last of two values for one key silently won."""
    answer = post_text(served.http, "Evaluate", body)
    assert answer.status_code == 400, answer.text
    status = _status(answer)
    assert set(_violations(status)) == {"body"} and "twice" in str(status["message"])


def test_a_deeply_nested_body_is_400_not_500(served: Running) -> None:
    """Review finding 7 (the gateway's part): 3,000 nested arrays made Python's JSON
    reader raise RecursionError, which the gateway answered 500 INTERNAL."""
    for depth in (95, 3000):
        body = '{"profile": {"facts": {"k": ' + "[" * depth + "]" * depth + "}}}"
        answer = post_text(served.http, "Evaluate", body)
        assert answer.status_code == 400, (depth, answer.text)
        status = _status(answer)
        assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert set(_violations(status)) <= {"body", "profile.facts['k']"}


def test_every_answer_is_no_store_and_nosniff(served: Running) -> None:
    """Answers carry the register's firms and contact mobiles: no cache in between may
    keep them, and JSON is never sniffed as a page (review 64 F5), refusals and unknown
    routes included."""
    answers = [
        post(served.http, "ListWhitelist", {}, headers=bearer("writer")),
        post(served.http, "ListWhitelist", {}),  # no token: 401
        post(served.http, "ListWhitelist", {}, headers=bearer("evaluator")),  # no scope: 403
        httpx.post(f"{served.http}/v1/rules/NoSuchMethod", json={}, timeout=30),
    ]
    assert [a.status_code for a in answers] == [200, 401, 403, 404]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
