"""`serve --processes N`: N server processes on one port (SO_REUSEPORT), as grpc's
multiprocessing example does, so a server uses every core (the durable_rules C core never
releases the GIL: more throughput means more processes, not threads).

The parent reserves the port with a SO_REUSEPORT socket of its own (so port 0 can pick
one and no other program takes it), runs the migrations once, then starts N children
with `--shared-port` and the same flags; the kernel spreads connections over them. Each
child is a whole server (its own thread pools, health, feed worker, durable_rules host).
SIGTERM or SIGINT to the parent is passed on: every child drains as a single server does,
and the parent exits when all have stopped (non-zero if any failed). A child that dies
on its own takes the others down with it: a supervisor restarts the whole set.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

_log = structlog.get_logger("processes")


def reserve_port(address: str) -> tuple[socket.socket, str]:
    """A bound (not listening) SO_REUSEPORT socket on `address`, and HOST:PORT with the
    port it got (port 0 picks a free one)."""
    host, _, port = address.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), int(port)))
    return sock, f"{host}:{sock.getsockname()[1]}"


CGROUP = Path("/sys/fs/cgroup")


def cpu_count(cgroup: Path = CGROUP) -> int:
    """The cores this process may use: those it may run on (its affinity), at most its
    container's CPU quota rounded up (a container limited to 2 CPUs on a 64-core host
    counts 2, not 64: review 44 F3)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = quota_cpus(cgroup)
    return max(1, min(cores or 1, quota or cores or 1))


def quota_cpus(cgroup: Path = CGROUP) -> int | None:
    """The CPU quota of this process's cgroup, in CPUs rounded up (cgroup v2 `cpu.max`,
    or v1 `cpu/cpu.cfs_quota_us` over `cpu.cfs_period_us`); None when there is none or
    it cannot be read."""
    try:
        if (v2 := cgroup / "cpu.max").exists():
            quota, _, period = v2.read_text().strip().partition(" ")
        else:
            v1 = cgroup / "cpu"
            quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
            period = (v1 / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or not period:
            return None
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


READY_DIR = "SERVE_READY_DIR"  # where each child marks itself ready (a file named by pid)


def mark_ready() -> None:
    """Called by a child once it serves: its parent waits for every child's mark."""
    folder = os.environ.get(READY_DIR)
    if folder:
        (Path(folder) / str(os.getpid())).touch()


def run_children(module: str, argv: Sequence[str], count: int, address: str) -> int:
    """Start `count` children (`python -m module *argv`) and supervise them until a signal."""
    ready = Path(tempfile.mkdtemp(prefix="serve-ready-"))
    env = {**os.environ, READY_DIR: str(ready)}
    children = [
        subprocess.Popen([sys.executable, "-m", module, *argv], env=env) for _ in range(count)
    ]
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _wait_ready(ready, children)
    _log.info(
        "rules service listening",
        address=address,
        port=int(address.rpartition(":")[2]),
        processes=[c.pid for c in children],
    )
    while not stopping.is_set() and all(c.poll() is None for c in children):
        stopping.wait(0.5)
    if not stopping.is_set():  # one died on its own: stop the others
        _log.error("a server process exited; stopping the others")
        forward(signal.SIGTERM, None)
    codes = [c.wait() for c in children]
    shutil.rmtree(ready, ignore_errors=True)
    return max(codes, key=abs) if any(codes) else 0


def _wait_ready(folder: Path, children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Until every child has marked itself ready (bounded), so `listening` means all."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(c.poll() is None for c in children):
        if len(list(folder.iterdir())) >= len(children):
            return
        time.sleep(0.1)
