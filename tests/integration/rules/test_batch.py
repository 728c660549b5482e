"""EvaluateBatch and a batch caller's own rate limit (issue 15, points 3 and 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.auth import TokenFileError, TokenStore
from services.common.ratelimit import Rate
from services.common.security import Security
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.support import profile, uscc


def _item(n: int, **fields: object) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(
        profile=profile_from_json(profile(n, **fields)), as_of="2026-06-30", request_id=f"r{n}"
    )


def test_one_decision_per_item_in_order_and_a_bad_item_carries_its_error(rules_stub) -> None:  # type: ignore[no-untyped-def]
    items = [_item(1), _item(2, employees=-1), _item(3, facts={"gm.special_ops_uncertified": 2})]
    reply = rules_stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items), timeout=10)
    assert [d.request_id for d in reply.decisions] == ["r1", "r2", "r3"]
    good, bad, red = reply.decisions
    assert good.enterprise_id == uscc(1) and not good.HasField("error")
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "profile.employees" in bad.error.message
    assert red.risk_level == pb.RISK_LEVEL_RED
    alone = rules_stub.Evaluate(items[2], timeout=10)
    assert red == alone  # the same decision as one Evaluate


def test_a_control_character_in_one_item_costs_only_that_item(rules_stub) -> None:  # type: ignore[no-untyped-def]
    """Review finding 2: the interceptor checked the whole EvaluateBatchRequest and
    refused it for one item's control character, losing every other decision. The items
    are checked one by one, as EvaluateStream's are."""
    items = [_item(1), _item(2, name="企业\x01名称"), _item(3)]
    items[1].request_id = "r\x02"  # the echoed id is checked too, and echoed as sent
    reply = rules_stub.EvaluateBatch(pb.EvaluateBatchRequest(items=items), timeout=10)
    good, bad, other = reply.decisions
    assert [good.request_id, other.request_id] == ["r1", "r3"]
    assert not good.HasField("error") and not other.HasField("error")
    assert good == rules_stub.Evaluate(items[0], timeout=10)
    assert bad.request_id == "r\x02" and bad.enterprise_id == uscc(2)
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "profile.name" in bad.error.message and "request_id" in bad.error.message
    streamed = list(rules_stub.EvaluateStream(iter(items), timeout=10))
    assert list(reply.decisions) == streamed  # EvaluateStream's per-item semantics


@pytest.mark.parametrize("size", [0, 1001])
def test_an_empty_or_oversized_batch_is_invalid(rules_stub, size: int) -> None:  # type: ignore[no-untyped-def]
    request = pb.EvaluateBatchRequest(items=[_item(1)] * size)
    with pytest.raises(grpc.RpcError) as raised:
        rules_stub.EvaluateBatch(request, timeout=30)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "items" in (raised.value.details() or "")


@pytest.fixture
def limited(tmp_path: Path, rulebook: Rulebook) -> Iterator[rules_pb2_grpc.RulesServiceStub]:
    """A server whose default rate is one call, then one every 100 s; the `batch` token
    has its own limit in the tokens file."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "token": "tok-default-0123456789ab",
                        "caller": "default",
                        "scopes": ["rules.evaluate"],
                    },
                    {
                        "token": "tok-batch-0123456789abcd",
                        "caller": "batch",
                        "scopes": ["rules.evaluate"],
                        "rate_per_second": 1000,
                        "burst": 50,
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    security = Security(TokenStore.load(tokens), Rate(per_second=0.01, burst=1))
    server, port = grpc_server.create_server(rulebook, security=security)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield rules_pb2_grpc.RulesServiceStub(channel)
    server.stop(None)


def test_a_token_s_own_rate_lets_a_batch_system_through(limited) -> None:  # type: ignore[no-untyped-def]
    def call(token: str) -> grpc.StatusCode:
        try:
            limited.Evaluate(_item(1), metadata=[("authorization", f"Bearer {token}")], timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()

    assert [call("tok-default-0123456789ab") for _ in range(2)] == [
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    assert {call("tok-batch-0123456789abcd") for _ in range(20)} == {grpc.StatusCode.OK}


@pytest.mark.parametrize(
    "entry",
    [{"rate_per_second": 0}, {"rate_per_second": "fast"}, {"burst": 10}, {"rate_per_second": True}],
)
def test_a_bad_own_rate_is_a_clear_token_file_error(
    tmp_path: Path, entry: dict[str, object]
) -> None:
    path = tmp_path / "tokens.json"
    token = {"token": "tok-x-0123456789abcdef", "caller": "x", "scopes": ["rules.read"], **entry}
    path.write_text(json.dumps({"tokens": [token]}), encoding="utf-8")
    with pytest.raises(TokenFileError, match=r"tokens\[0\]"):
        TokenStore.load(path)
