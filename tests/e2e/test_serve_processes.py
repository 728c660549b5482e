"""`serve --processes 2`: two server processes on one port (SO_REUSEPORT), each a whole
server; calls are answered, and SIGTERM to the parent drains and stops them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import psutil

from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import serve_rules
from tests.support import profile

TOKEN = "procs-evaluator-0123456789"


def test_two_processes_share_the_port_and_stop_together(tmp_path: Path) -> None:
    (tmp_path / "tokens.json").write_text(
        json.dumps({"tokens": [{"token": TOKEN, "caller": "e", "scopes": ["rules.evaluate"]}]})
    )
    parent = serve_rules(
        f"sqlite:///{tmp_path / 'rules.db'}", tmp_path / "tokens.json", "--processes", "2"
    )
    children = psutil.Process(parent.proc.pid).children()
    assert len(children) == 2 and parent.ready["processes"] == [c.pid for c in children]
    request = rpb.EvaluateRequest(profile=profile_from_json(profile(1)), as_of="2026-06-30")
    for _ in range(12):  # a new connection each time: the kernel spreads them
        with grpc.insecure_channel(f"127.0.0.1:{parent.ready['port']}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            decision = stub.Evaluate(
                request, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=30
            )
            assert decision.enterprise_id == request.profile.enterprise_id
    assert parent.stop() == 0
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    rpcs = [line for line in _lines(parent) if line.get("event") == "rpc"]
    assert rpcs and {line.get("pid") for line in rpcs} <= {c.pid for c in children}  # named


def _lines(proc: Any) -> list[dict[str, Any]]:
    """The JSON log lines a process (and its children, on the same stderr) wrote so far."""
    out = []
    while not proc.lines.empty():
        line = proc.lines.get()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_children_of_a_parent_killed_outright_drain_and_stop(tmp_path: Path) -> None:
    """Review 49 F4: after `kill -9` of the parent, its children kept serving the shared
    port, unsupervised, beside any set started again. Each child watches its parent and,
    once it is gone, drains and stops as on SIGTERM."""
    (tmp_path / "tokens.json").write_text(
        json.dumps({"tokens": [{"token": TOKEN, "caller": "e", "scopes": ["rules.evaluate"]}]})
    )
    parent = serve_rules(
        f"sqlite:///{tmp_path / 'rules.db'}", tmp_path / "tokens.json", "--processes", "2"
    )
    children = psutil.Process(parent.proc.pid).children()
    assert len(children) == 2
    parent.proc.kill()
    parent.proc.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=90)  # not ours: no exit code to read
    assert not alive, [c.pid for c in alive]
    gone_lines = _lines(parent)
    said = [e for e in gone_lines if e.get("event", "").startswith("the supervising parent")]
    assert {line["pid"] for line in said} == {c.pid for c in children}
