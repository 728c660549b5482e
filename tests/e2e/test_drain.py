"""SIGTERM drains (issue 13, defect 1 and point 12): a real rules process gets a burst of
calls and, a few milliseconds later, SIGTERM. Every call already sent must finish OK and
have its log line; then the process exits 0. On a fresh server (nothing warmed up) and on
a warm one. Bounded by timeouts; nothing asserts a duration."""

from __future__ import annotations

import json
import queue
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import Proc, serve_rules
from tests.support import profile, uscc

TOKEN = "drain-token-0123456789abcdef"
BURST = 17


def _serve(tmp_path: Path) -> Proc:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "token": TOKEN,
                        "caller": "drain-test",
                        "scopes": ["rules.evaluate", "rules.write", "rules.read"],
                    }
                ]
            }
        )
    )
    return serve_rules(f"sqlite:///{tmp_path / 'rules.db'}", tokens)


def _burst(stub: rules_pb2_grpc.RulesServiceStub, first: int) -> list[grpc.Future]:
    """BURST calls sent at once: evaluations and register writes."""
    auth = (("authorization", f"Bearer {TOKEN}"),)
    calls: list[grpc.Future] = []
    for i in range(BURST):
        data = profile(first + i, facts={"gen.no_hazard_ledger": True})
        if i % 3 == 0:
            request = pb.UpsertEnterpriseRequest(profile=profile_from_json(data))
            calls.append(stub.UpsertEnterprise.future(request, metadata=auth, timeout=60))
        else:
            request = pb.EvaluateRequest(profile=profile_from_json(data), as_of="2026-06-30")
            calls.append(stub.Evaluate.future(request, metadata=auth, timeout=60))
    return calls


def _rpc_lines(proc: Proc) -> list[dict[str, object]]:
    lines = []
    while True:
        try:
            line = proc.lines.get(timeout=5)
        except queue.Empty:
            return lines
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "rpc" and "RulesService" in str(entry.get("method")):
                lines.append(entry)


def _sigterm_during(
    tmp_path: Path,
    send: Callable[[rules_pb2_grpc.RulesServiceStub, Proc], list[grpc.Future]],
) -> tuple[Proc, list[str]]:
    """A rules process gets the calls `send` sends and, a few milliseconds later, SIGTERM;
    it must exit 0. The process and each call's status code name, in the order sent."""
    rules = _serve(tmp_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{rules.ready['port']}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            calls = send(rules_pb2_grpc.RulesServiceStub(channel), rules)
            time.sleep(0.04)
            rules.proc.send_signal(15)  # SIGTERM
            codes = []
            for call in calls:
                try:
                    call.result(timeout=60)
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
        assert rules.proc.wait(timeout=60) == 0
    finally:
        if rules.proc.poll() is None:
            rules.proc.kill()
            rules.proc.wait(timeout=30)
    return rules, codes


@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "warm"])
def test_sigterm_lets_every_call_already_sent_finish(tmp_path: Path, warm: bool) -> None:
    def send(stub: rules_pb2_grpc.RulesServiceStub, rules: Proc) -> list[grpc.Future]:
        if warm:
            for call in _burst(stub, 100):
                call.result(timeout=60)
            _rpc_lines(rules)  # forget the warm-up's log lines
        return _burst(stub, 1)

    rules, codes = _sigterm_during(tmp_path, send)
    assert codes == ["OK"] * BURST
    logged = [e for e in _rpc_lines(rules) if e["status"] == "OK"]
    assert len(logged) == BURST


def test_sigterm_answers_every_grouped_event_after_its_commit(tmp_path: Path) -> None:
    """ReportEvent's group commit under SIGTERM: the events sent together (grouped by the
    server, several of one firm) are all answered OK, and every one answered is stored."""
    auth = (("authorization", f"Bearer {TOKEN}"),)

    def send(stub: rules_pb2_grpc.RulesServiceStub, _rules: Proc) -> list[grpc.Future]:
        for n in range(1, 5):
            request = pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n)))
            stub.UpsertEnterprise(request, metadata=auth, timeout=60)
        calls = []
        for i in range(BURST):
            event = pb.EnterpriseEvent(
                event_id=f"drain-{i}",
                enterprise_id=uscc(1 + i % 4),
                kind=pb.EVENT_KIND_COMPLAINT,
                occurred_on="2026-06-30",
                complaint=pb.ComplaintDetail(text="投诉"),
            )
            request = pb.ReportEventRequest(event=event)
            calls.append(stub.ReportEvent.future(request, metadata=auth, timeout=60))
        return calls

    _, codes = _sigterm_during(tmp_path, send)
    assert codes == ["OK"] * BURST
    with sqlite3.connect(tmp_path / "rules.db") as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM events")}
    assert stored == {f"drain-{i}" for i in range(BURST)}
