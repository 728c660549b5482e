"""Service processes as an operator starts them (`python -m services.… serve`), for the
end-to-end tests and the soak: each waits for its "listening" log line and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, args: list[str], ready: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self._wait(ready)

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def _wait(self, event: str) -> dict[str, object]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = self.lines.get(timeout=90)
            if line.startswith("{") and json.loads(line).get("event") == event:
                return dict(json.loads(line))
        raise AssertionError(f"no {event!r}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def serve_rules(db_url: str, tokens: Path, *extra: str) -> Proc:
    """`python -m services.rules serve` on a free port with the given database and tokens."""
    return Proc(
        [
            "services.rules",
            "--log-json",
            "serve",
            "--grpc",
            "127.0.0.1:0",
            "--db",
            db_url,
            "--tokens",
            str(tokens),
            *extra,
        ],
        "rules service listening",
    )
