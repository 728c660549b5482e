"""examples/watch_changes.py, the follower integrators copy, run as a user runs it against
`serve` processes: it keeps its copy of the firms and the white list equal to the
register's through everything a follower meets. Its stream refused for its caller's
share (RESOURCE_EXHAUSTED: it waits as the server says); the server stopped (UNAVAILABLE:
it backs off and reconnects); the database restored from a backup meanwhile (`restore`:
its cursor is of another epoch, FAILED_PRECONDITION RESYNC_REQUIRED, and it reads the
lists again instead of stopping); the epoch renewed under its open stream
(`renew-feed-epoch`: the stream ends RESYNC_REQUIRED, and it reads the lists again)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.cli import main
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import Proc, free_port, serve_rules
from tests.integration.rules.test_events import accident
from tests.support import ROOT, profile, uscc

WRITER = "example-writer-0123456789ab"
FOLLOWER = "example-follower-0123456789"
AS_WRITER = (("authorization", f"Bearer {WRITER}"),)
AS_FOLLOWER = (("authorization", f"Bearer {FOLLOWER}"),)


class Example:
    """The example as a process in `cwd`: its stdout's JSON lines and its stderr's lines,
    each read on a thread of its own."""

    def __init__(self, cwd: Path, address: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples/watch_changes.py"), address, FOLLOWER],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.changes: queue.Queue[dict[str, Any]] = queue.Queue()
        self.said: list[str] = []
        self.state = cwd / "feed.json"
        assert self.proc.stdout is not None and self.proc.stderr is not None
        out, err = self.proc.stdout, self.proc.stderr
        threading.Thread(target=lambda: [self.changes.put(json.loads(x)) for x in out]).start()
        threading.Thread(target=lambda: [self.said.append(x) for x in err]).start()

    def saying(self, text: str, after: int = 0) -> int:
        """Wait until a line on stderr (from the `after`th on) holds `text`: its index."""
        _until(
            lambda: any(text in line for line in self.said[after:]), f"the example saying {text!r}"
        )
        return next(n for n, line in enumerate(self.said) if n >= after and text in line)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def _until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    waited = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < waited, f"not seen: {what}"
        time.sleep(0.05)


def _stub(port: int) -> tuple[grpc.Channel, rules_pb2_grpc.RulesServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, rules_pb2_grpc.RulesServiceStub(channel)


def _register(stub: rules_pb2_grpc.RulesServiceStub, *numbers: int) -> None:
    for n in numbers:
        stub.UpsertEnterprise(
            pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n))),
            metadata=AS_WRITER,
            timeout=30,
        )


def _the_register(stub: rules_pb2_grpc.RulesServiceStub) -> dict[str, Any]:
    """What the example's copy should hold: the firms' statuses and the white list, as
    the lists give them now (one page each: the test has a dozen firms)."""
    firms = stub.ListEnterprises(pb.ListEnterprisesRequest(page_size=500), metadata=AS_WRITER)
    entries = stub.ListWhitelist(pb.ListWhitelistRequest(page_size=500), metadata=AS_WRITER)
    return {
        "firms": {f.enterprise_id: pb.Status.Name(f.status) for f in firms.enterprises},
        "whitelist": {e.enterprise_id: e.valid_until for e in entries.entries},
    }


def _copy_matches(example: Example, stub: rules_pb2_grpc.RulesServiceStub) -> None:
    """The example's copy equals the register (once it has caught up)."""

    def same() -> bool:
        if not example.state.exists():
            return False
        kept = json.loads(example.state.read_text())
        return {k: kept[k] for k in ("firms", "whitelist")} == _the_register(stub)

    _until(same, "the example's copy equal to the register")


def test_the_example_follower_keeps_its_copy_through_refusals_restarts_and_restores(
    tmp_path: Path,
) -> None:
    (tmp_path / "tokens.json").write_text(
        json.dumps(
            {
                "tokens": [
                    {"token": WRITER, "caller": "writer", "scopes": ["rules.write", "rules.read"]},
                    {"token": FOLLOWER, "caller": "follower", "scopes": ["rules.read"]},
                ]
            }
        )
    )
    url, port = f"sqlite:///{tmp_path / 'rules.db'}", free_port()
    address = f"127.0.0.1:{port}"
    workdir = tmp_path / "follower"
    workdir.mkdir()

    def serve() -> Proc:
        return serve_rules(url, tmp_path / "tokens.json", "--grpc", address)

    server = serve()
    example = None
    channel, stub = _stub(port)
    try:
        _register(stub, 1, 2, 3)
        # the follower's caller holds its share of streams already (a leaked one, say)
        held = [stub.WatchChanges(pb.WatchChangesRequest(), metadata=AS_FOLLOWER) for _ in range(2)]
        for stream in held:
            next(stream)
        example = Example(workdir, address)
        example.saying("read 3 firms, 3 white-list entries")
        refused = example.saying("RESOURCE_EXHAUSTED")  # it waits as the server says
        assert "per caller" in example.said[refused]
        assert "trying again in 5.0 s" in example.said[refused]
        for stream in held:
            stream.cancel()
        _register(stub, 4)
        assert [example.changes.get(timeout=60)["enterpriseId"] for _ in range(2)] == [uscc(4)] * 2
        _copy_matches(example, stub)

        assert main(["backup", "--out", str(tmp_path / "backup.db"), "--db", url]) == 0
        _register(stub, 5)
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        stub.ReportEvent(  # firm 1 loses its white-list entry
            pb.ReportEventRequest(event=accident(1, "acc-1", occurred_on=today)),
            metadata=AS_WRITER,
            timeout=30,
        )
        _copy_matches(example, stub)
        assert uscc(1) not in json.loads(example.state.read_text())["whitelist"]
        channel.close()
        assert server.stop() == 0
        heard = example.saying("UNAVAILABLE")  # the server gone: it backs off
        assert main(["restore", "--from", str(tmp_path / "backup.db"), "--db", url]) == 0
        server = serve()
        channel, stub = _stub(port)
        _register(stub, 6, 7)  # the restored feed gives its positions to other changes
        # the cursor it saved is of the feed before the restore: it reads the lists again
        example.saying("OTHER_EPOCH", heard)
        _register(stub, 8)
        _copy_matches(example, stub)
        kept = json.loads(example.state.read_text())
        assert uscc(5) not in kept["firms"] and uscc(1) in kept["whitelist"]  # as restored
        assert uscc(8) in kept["firms"]

        renewed = len(example.said)
        assert main(["renew-feed-epoch", "--db", url]) == 0  # under its open stream
        example.saying("RESTORED", renewed)
        example.saying("read 7 firms", renewed)
        _register(stub, 9)
        _copy_matches(example, stub)
        assert example.proc.poll() is None  # it kept going throughout

        example.stop()  # a restart goes on from the copy and cursor it kept
        kept = json.loads(example.state.read_text())
        _register(stub, 10)
        example = Example(workdir, address)
        assert [example.changes.get(timeout=60)["enterpriseId"] for _ in range(2)] == [uscc(10)] * 2
        assert example.said == []  # it did not read the lists again
        _copy_matches(example, stub)
        assert set(json.loads(example.state.read_text())["firms"]) == {*kept["firms"], uscc(10)}
    finally:
        if example is not None:
            example.stop()
        channel.close()
        server.stop()
