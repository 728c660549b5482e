"""`serve --processes 2`: two server processes on one port (SO_REUSEPORT), each a whole
server; calls are answered, and SIGTERM to the parent drains and stops them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import serve_rules
from tests.support import ROOT, profile

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


def _serve_set_with(tmpdir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tokens.json").write_text(
        json.dumps({"tokens": [{"token": TOKEN, "caller": "e", "scopes": ["rules.evaluate"]}]})
    )
    command = [
        *(sys.executable, "-m", "services.rules", "--log-json", "serve", "--processes", "2"),
        *("--grpc", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'rules.db'}"),
        *("--tokens", str(tmp_path / "tokens.json")),
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=60)  # before the fix: a set serving for good
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, proc.returncode, "", stderr)


def _refused(done: subprocess.CompletedProcess[str], tmpdir: Path) -> None:
    """One line naming the directory and what to do; exit 1; no traceback, no set."""
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert str(tmpdir) in last and "TMPDIR" in last and "writ" in last


def test_a_missing_tmpdir_is_one_operator_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    _refused(_serve_set_with(missing, tmp_path), missing)


def test_a_read_only_tmpdir_is_one_operator_line(tmp_path: Path) -> None:
    if os.geteuid() != 0:  # root writes anywhere a mode forbids: a read-only mount
        pytest.skip("mounting a read-only tmpfs needs root")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
        capture_output=True,
    )
    if mounted.returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        _refused(_serve_set_with(read_only, tmp_path), read_only)
    finally:
        subprocess.run(["umount", str(read_only)], check=True)
