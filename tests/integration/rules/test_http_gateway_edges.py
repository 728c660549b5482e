"""The rules HTTP/JSON gateway at its edges: `authorization` sent twice is 401 (the first
one was taken); a body past the limit is 413 with the gateway's google.rpc.Status body
(was 400); a body labelled `charset=us-ascii` must hold ASCII only (other bytes were
read as UTF-8)."""

from __future__ import annotations

import httpx

from services.common.auth import TWO_HEADERS
from tests.integration.rules.test_http_api import (  # noqa: F401
    TOKENS,
    Running,
    bearer,
    served,
    store,
)

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
