"""`python -m services.rules …` as a user runs it: real processes, real ports."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.support import ROOT, profile, uscc

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.rules", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_evaluate_prints_a_readable_decision_per_firm(tmp_path: Path) -> None:
    clean = profile(1, name="稠城精工")
    dusty = profile(
        2,
        industry="light_industry",
        high_risk_domains=["dust_explosion"],
        facts={"dust.dry_collector_unprotected": True},
    )
    result = run_cli(
        "evaluate", str(write_jsonl(tmp_path / "p.jsonl", [clean, dusty])), "--as-of", "2026-06-30"
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n\n")[:2]
    assert uscc(1) in first and "稠城精工" in first and "白名单（无事不扰）" in first
    assert "红色（重大风险）" in second and "GM2023:11(3)" in second
    # review 51 C5: a person reads the fact's label and answer, not its key
    assert "依据  干式除尘系统未采取泄爆、惰化、抑爆等任一种措施：是" in second
    assert "dust.dry_collector_unprotected" not in second


def test_a_refused_profile_and_the_count_read_in_chinese(tmp_path: Path) -> None:
    """Review 53 N6: `#2：数据有误，未评估（invalid request）` and `1 profile(s) rejected`."""
    rows = [profile(1), profile(2, employees=-1)]
    result = run_cli(
        "evaluate", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--as-of", "2026-06-30"
    )
    assert result.returncode == 1
    refused = result.stdout.split("\n\n")[1]
    assert refused.splitlines()[0] == "#2：数据有误，未评估"
    assert "employees" in refused  # the field, as the API names it
    assert "invalid request" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "共1份企业资料未评估"


def test_evaluate_into_a_reader_that_stops_ends_quietly(tmp_path: Path) -> None:
    """Review 51 C5: `evaluate … | head` ended in a BrokenPipeError traceback. The reader
    closes after one line; the output (400 firms, well past a pipe's buffer) cannot all
    have been written by then."""
    path = write_jsonl(tmp_path / "p.jsonl", [profile(n) for n in range(1, 401)])
    command = [sys.executable, "-m", "services.rules", "evaluate", str(path)]
    with subprocess.Popen(
        [*command, "--as-of", "2026-06-30"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline().startswith(uscc(1).encode())
        child.stdout.close()
        errors = child.stderr.read().decode()
        assert child.wait(timeout=120) == 1
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors


def test_evaluate_json_lines_and_a_bad_item_does_not_stop_the_file(tmp_path: Path) -> None:
    rows: list[object] = [profile(1), profile(2, employees=-1), profile(3)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    result = run_cli("evaluate", str(path), "--json", "--as-of", "2026-06-30")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    decisions = [json.loads(line) for line in lines[:3]]
    assert decisions[0]["status"] == "STATUS_WHITELIST"
    assert decisions[1]["error"]["message"].startswith("invalid request: employees")
    assert decisions[2]["enterprise_id"] == uscc(3)
    assert "#4: not valid JSON" in lines[3]
    assert "共2份企业资料未评估" in result.stderr


def test_a_line_nested_too_deep_is_one_rejected_line(tmp_path: Path) -> None:
    """Review hunt 7: a 6 KB line of 3,000 nested arrays ended the command in a
    RecursionError traceback."""
    path = write_jsonl(tmp_path / "p.jsonl", [profile(1)])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"facts": {"k": ' + "[" * 3000 + "]" * 3000 + "}}\n")
    result = run_cli("evaluate", str(path), "--json", "--as-of", "2026-06-30")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, second = result.stdout.splitlines()
    assert json.loads(first)["enterprise_id"] == uscc(1)
    assert second.startswith("#2: not valid JSON") and "recursion" in second
    assert "共1份企业资料未评估" in result.stderr


def test_bad_reevaluate_and_evaluate_options_are_one_line_errors(tmp_path: Path) -> None:
    """Review hunt 12: a bad --as-of ended in a traceback; --batch-size 0 did nothing and
    exited 0."""
    db = f"sqlite:///{tmp_path / 'rules.db'}"
    for bad in (
        ("reevaluate", "--all", "--db", db, "--as-of", "0001-01-01"),
        ("reevaluate", "--all", "--db", db, "--as-of", "2026-02-30"),
        ("reevaluate", "--all", "--db", db, "--batch-size", "0"),
        ("reevaluate", "--all", "--db", db, "--batch-size", "-5"),
        ("reevaluate", "--all", "--db", db, "--processes", "-1"),
        # review 20, F4: an infinite wait killed ReportEvent at the first busy group
        ("serve", "--dev", "--db", db, "--event-group-wait-ms", "inf"),
        ("serve", "--dev", "--db", db, "--event-group-wait-ms", "1e12"),
        ("serve", "--dev", "--db", db, "--event-group-size", "0"),
        ("evaluate", str(write_jsonl(tmp_path / "p.jsonl", [profile(1)])), "--as-of", "yesterday"),
    ):
        result = run_cli(*bad)
        assert result.returncode == 2, (bad, result.stderr)
        assert "Traceback" not in result.stderr and f"argument {bad[-2]}" in result.stderr


def test_evaluate_json_file_with_a_list(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([profile(1), profile(2)]), encoding="utf-8")
    result = run_cli("evaluate", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["enterprise_id"] for x in result.stdout.splitlines()] == [
        uscc(1),
        uscc(2),
    ]


def test_evaluate_missing_file() -> None:
    result = run_cli("evaluate", "/nonexistent/x.jsonl")
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_bad_rulesets_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "evaluate", str(write_jsonl(tmp_path / "p.jsonl", [profile()])), "--rulesets", str(tmp_path)
    )
    assert result.returncode == 2
    assert "ruleset error: facts.yaml: missing" in result.stderr


TOKEN = "cli-test-token-0123456789abcdef"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def write_tokens(folder: Path) -> Path:
    path = folder / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "tokens": [
                    {"token": TOKEN, "caller": "cli-test-evaluator", "scopes": ["rules.evaluate"]}
                ]
            }
        ),
        encoding="utf-8",
    )
    return path


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    result = run_cli("serve", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--grpc", "127.0.0.1:0")
    assert result.returncode != 0
    assert "refusing to start without a tokens file" in result.stderr
    assert not (tmp_path / "r.db").exists()  # refused before touching the database


class Server:
    """`serve` in a subprocess on port 0; the port is read from its JSON log line."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.rules",
                "--log-json",
                "serve",
                "--db",
                f"sqlite:///{db}",
                "--tokens",
                str(write_tokens(db.parent)),
                "--grpc",
                "127.0.0.1:0",
            ],
            cwd=ROOT,
            env=ENV,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = self._wait_for_port()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.lines.get(timeout=60)
            if '"rules service listening"' in line:
                return int(json.loads(line)["port"])
        raise AssertionError("server did not start")

    def log(self) -> list[dict[str, object]]:
        out = []
        while not self.lines.empty():
            line = self.lines.get()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def test_serve_logs_each_rpc_and_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    server = Server(tmp_path / "rules.db")
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = rules_pb2_grpc.RulesServiceStub(channel)
        outbox: queue.Queue[pb.EvaluateRequest | None] = queue.Queue()

        def requests() -> Iterator[pb.EvaluateRequest]:
            while (item := outbox.get()) is not None:
                yield item

        responses = stub.EvaluateStream(requests(), timeout=60, metadata=AUTH)
        outbox.put(pb.EvaluateRequest(profile=profile_from_json(profile(1)), request_id="0"))
        first = next(responses)
        server.proc.send_signal(signal.SIGTERM)  # the stream is in flight
        time.sleep(0.5)
        for i in range(1, 4):
            outbox.put(
                pb.EvaluateRequest(profile=profile_from_json(profile(i + 1)), request_id=str(i))
            )
        outbox.put(None)
        rest = list(responses)
        assert [r.request_id for r in [first, *rest]] == ["0", "1", "2", "3"]
        assert server.proc.wait(timeout=30) == 0
        log = server.log()
        rpc = [e for e in log if e.get("event") == "rpc"]
        assert rpc and rpc[-1]["method"] == "/rules.v1.RulesService/EvaluateStream"
        assert rpc[-1]["status"] == "OK" and rpc[-1]["messages_sent"] == 4
        assert rpc[-1]["caller"] == "cli-test-evaluator" and "duration_ms" in rpc[-1]
        assert TOKEN not in json.dumps(log)  # the bearer token is never logged
        assert any(e.get("event") == "shutting down" for e in log)
        channel.close()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_evaluate_via_server_waits_out_the_rate_limit(tmp_path: Path) -> None:
    """`evaluate FILE --server` sends EvaluateBatch messages (500 profiles each) and honours
    retry-after: a file needing more calls than the caller's burst is evaluated whole, in
    order, not refused (issues 14.7, 15.3)."""
    from services.common.auth import TokenStore
    from services.common.ratelimit import Rate
    from services.common.security import Security
    from services.rules.adapters.ruleset_loader import load_rulebook
    from services.rules.entrypoints import grpc_server
    from tests.support import RULESETS

    token = "tok-batch-evaluator-0123456789"
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({"tokens": [{"token": token, "caller": "batch", "scopes": ["rules.evaluate"]}]}),
        encoding="utf-8",
    )
    security = Security(TokenStore.load(tokens), Rate(per_second=4, burst=1))
    server, port = grpc_server.create_server(load_rulebook(RULESETS), security=security)
    server.start()
    count = 1_100  # three batches, the second and third refused at first
    try:
        path = write_jsonl(tmp_path / "p.jsonl", [profile(n) for n in range(1, count + 1)])
        result = run_cli(
            "evaluate", str(path), "--json", "--as-of", "2026-06-30",
            "--server", f"127.0.0.1:{port}", "--token", token,
        )  # fmt: skip
    finally:
        server.stop(None)
    assert result.returncode == 0, result.stdout + result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["enterprise_id"] for d in decisions] == [uscc(n) for n in range(1, count + 1)]
    assert not [d for d in decisions if "error" in d]


def _in_process_and_via_server(
    path: Path,
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """`evaluate FILE --json` in-process, then through a real server (`--server`)."""
    from services.rules.adapters.ruleset_loader import load_rulebook
    from services.rules.entrypoints import grpc_server
    from tests.support import RULESETS

    server, port = grpc_server.create_server(load_rulebook(RULESETS))
    server.start()
    try:
        local = run_cli("evaluate", str(path), "--json", "--as-of", "2026-06-30")
        remote = run_cli(
            "evaluate", str(path), "--json", "--as-of", "2026-06-30",
            "--server", f"127.0.0.1:{port}",
        )  # fmt: skip
    finally:
        server.stop(None)
    return local, remote


def test_evaluate_reads_the_canonical_proto3_json_mapping_too(tmp_path: Path) -> None:
    """A profile as any proto3 library prints it (lowerCamelCase names, enum value names
    like INDUSTRY_COMMERCE_TRADE) is read like the short form, in-process and via a server."""
    from google.protobuf import json_format

    short = profile(
        1,
        industry="commerce_trade",
        credit_rating="B",
        high_risk_domains=["dust_explosion"],
        accidents=[{"occurred_on": "2024-01-05", "level": "general", "deaths": 0}],
        hazards=[
            {
                "hazard_id": "H1",
                "clause_ref": "GEN:ledger",
                "severity": "general",
                "found_on": "2026-06-01",
                "due_on": "2026-07-01",
                "status": "open",
            }
        ],
    )
    canonical = json_format.MessageToDict(profile_from_json(short))
    assert canonical["industry"] == "INDUSTRY_COMMERCE_TRADE" and "enterpriseId" in canonical
    mixed = {**short, "industry": "INDUSTRY_COMMERCE_TRADE", "credit_rating": "CREDIT_RATING_B"}
    path = write_jsonl(tmp_path / "p.jsonl", [short, canonical, mixed])
    local, remote = _in_process_and_via_server(path)
    for result in (local, remote):
        assert result.returncode == 0, result.stdout + result.stderr
        first, *others = [json.loads(line) for line in result.stdout.splitlines()]
        assert first["risk_level"] == "RISK_LEVEL_ORANGE"  # the accident within 36 months
        assert others == [first, first]


def test_evaluate_via_server_prints_what_in_process_prints(tmp_path: Path) -> None:
    """The batch client's fast request building and JSON printing (batch_json.py) give,
    line for line, what evaluating in-process prints: over three batches of generated
    firms with findings and histories, rejected profiles, a profile in the proto3 JSON
    mapping (built the plain way) and a line that is not JSON."""
    from google.protobuf import json_format

    from services.common.workload import Mix, profiles

    rows: list[object] = list(profiles(1_100, seed=11, mix=Mix(with_finding=0.3, history=0.3)))
    for n in range(0, len(rows), 97):
        rows[n] = {**profile(n + 1), "employees": -1}  # rejected, with BadRequest details
    rows[5] = json_format.MessageToDict(profile_from_json(profile(6, credit_rating="B")))
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    local, remote = _in_process_and_via_server(path)
    assert remote.returncode == local.returncode == 1, remote.stderr
    lines, expected = remote.stdout.splitlines(), local.stdout.splitlines()
    assert len(lines) == len(expected) == 1_101
    decided = [n for n, line in enumerate(expected) if '"error"' not in line]
    assert len(decided) == 1_101 - 12  # and the line that is not JSON
    assert [lines[n] for n in decided] == [expected[n] for n in decided]  # byte for byte
    assert lines[-1] == expected[-1] and lines[-1].startswith("#1101: not valid JSON")
    # a rejection names the field as the server sees it (profile.employees), so only
    # where and why are compared
    rejected = [json.loads(line) for line in lines[:-1] if '"error"' in line]
    assert [(r["item"], r["enterprise_id"], r["error"]["code"]) for r in rejected] == [
        (n + 1, uscc(n + 1), 3) for n in range(0, 1_100, 97)
    ]
    assert "共13份企业资料未评估" in remote.stderr  # 12 + the line that is not JSON


def test_a_control_character_rejects_only_its_line_in_process_and_via_server(
    tmp_path: Path,
) -> None:
    """Review finding 2: through a server, one name with U+0001 made EvaluateBatch refuse
    the whole batch and every line was printed rejected; in-process the line was accepted
    (nothing checked control characters there). Now both reject that line alone, for
    the same reason, and decide the others alike."""
    rows = [profile(1), profile(2, name="企业\u0001名称"), profile(3)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    local, remote = _in_process_and_via_server(path)
    for result in (local, remote):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "共1份企业资料未评估" in result.stderr
    lines, expected = remote.stdout.splitlines(), local.stdout.splitlines()
    assert [lines[0], lines[2]] == [expected[0], expected[2]]
    for line in (lines[1], expected[1]):
        rejected = json.loads(line)
        assert (rejected["item"], rejected["enterprise_id"], rejected["error"]["code"]) == (
            2,
            uscc(2),
            3,
        )
        [violation] = rejected["error"]["details"][0]["field_violations"]
        # named as the server names it (profile.name) or as the file does (name)
        assert violation["field"].removeprefix("profile.") == "name"
        assert violation["description"] == "must not contain control characters (U+0001 at 2)"
