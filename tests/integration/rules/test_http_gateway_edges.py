"""The rules HTTP/JSON gateway at its edges: `authorization` sent twice is 401 (the first
one was taken); a body past the limit is 413 with the gateway's google.rpc.Status body
(was 400); a body labelled `charset=us-ascii` must hold ASCII only (other bytes were
read as UTF-8)."""

from __future__ import annotations

import json

import grpc
import httpx

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.auth import TWO_HEADERS
from services.common.http_gateway import MAX_BODY_BYTES
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.rules.test_http_api import (  # noqa: F401
    TOKENS,
    Running,
    _json,
    _status,
    _violations,
    bearer,
    served,
    store,
)
from tests.support import profile

UNKNOWN = "Bearer not-a-token-at-all"


def test_two_authorization_headers_are_401(served: Running) -> None:  # noqa: F811
    one = f"Bearer {TOKENS['evaluator'][0]}"
    for first, second in ((one, UNKNOWN), (UNKNOWN, one), (one, one)):
        answer = httpx.post(
            f"{served.http}/v1/rules/ListStandards",
            headers=[("authorization", first), ("authorization", second)],
            timeout=30,
        )
        assert answer.status_code == 401, answer.text
        assert answer.json()["message"] == TWO_HEADERS
        assert answer.headers["www-authenticate"].startswith("Bearer")
    alone = httpx.post(
        f"{served.http}/v1/rules/ListStandards", headers={"authorization": one}, timeout=30
    )
    assert alone.status_code == 200, alone.text


def _send(running: Running, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(
        f"{running.http}/v1/rules/Evaluate",
        content=body,
        headers={**bearer("evaluator"), "content-type": content_type},
        timeout=60,
    )


def test_a_body_past_the_limit_is_413_with_a_status_body(served: Running) -> None:  # noqa: F811
    body = b'{"requestId": "' + b"x" * (MAX_BODY_BYTES + (1 << 20)) + b'"}'  # about 9 MB
    answer = _send(served, body)
    assert answer.status_code == 413, answer.text[:300]
    status = _status(answer)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "8 MB" in str(status["message"])
    assert set(_violations(status)) == {"body"}
    assert len(answer.content) < 1000


def test_a_body_at_the_limit_is_read(served: Running) -> None:  # noqa: F811
    padding = MAX_BODY_BYTES - 64
    answer = _send(served, b'{"requestId": "' + b"x" * padding + b'"}')
    assert answer.status_code == 400, answer.text[:300]  # read, and refused for its content
    assert "8 MB" not in answer.text


def test_a_us_ascii_body_with_other_bytes_is_refused_naming_the_charset(
    served: Running,  # noqa: F811
) -> None:
    text = json.dumps(
        _json(pb.EvaluateRequest(profile=profile_from_json(profile(1, name="义乌化工")))),
        ensure_ascii=False,
    )
    for label in ("us-ascii", "ASCII", '"us-ascii"'):
        answer = _send(served, text.encode(), f"application/json; charset={label}")
        assert answer.status_code == 400, (label, answer.text[:300])
        violations = _violations(_status(answer))
        assert set(violations) == {"content-type"}, violations
        assert "us-ascii" in violations["content-type"].lower()
    as_utf8 = _send(served, text.encode(), "application/json; charset=utf-8")
    assert as_utf8.status_code == 200, as_utf8.text[:300]
    escaped = json.dumps(json.loads(text))  # \\u escapes: ASCII only
    assert _send(served, escaped.encode(), "application/json; charset=us-ascii").status_code == 200
