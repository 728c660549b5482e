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

import contextlib
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
    from services.common.config import OperatorError
    from services.common.server import cannot_listen

    host, _, port = address.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except (OSError, ValueError, OverflowError) as exc:  # taken, no such host, not a port
        sock.close()
        raise OperatorError(cannot_listen("gRPC", address)) from exc
    return sock, f"{host}:{sock.getsockname()[1]}"


CGROUP = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")


def cpu_count(cgroup: Path = CGROUP, own: Path = SELF_CGROUP) -> int:
    """The cores this process may use: those it may run on (its affinity), at most the
    CPU quota of its cgroup or any ancestor, rounded up (a container limited to 2 CPUs
    on a 64-core host counts 2, not 64: review 44 F3)."""
    affinity = hasattr(os, "sched_getaffinity")
    cores = (len(os.sched_getaffinity(0)) if affinity else os.cpu_count()) or 1
    quota = quota_cpus(cgroup, own)
    return min(cores, quota) if quota else cores


def quota_cpus(cgroup: Path = CGROUP, own: Path = SELF_CGROUP) -> int | None:
    """The smallest CPU quota, in CPUs rounded up, of this process's cgroup (named in
    `own`, /proc/self/cgroup) and its ancestors up to the mount `cgroup`: cgroup v2's
    `cpu.max`, or v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us` in the `cpu`
    hierarchy. None when none sets one (or none can be read)."""
    found = [q for folder in _cgroup_folders(cgroup, own) if (q := _quota_in(folder))]
    return min(found) if found else None


def _cgroup_folders(cgroup: Path, own: Path) -> list[Path]:
    """The folders whose quota binds this process: its own cgroup's and each ancestor's,
    in the v2 tree and in v1's `cpu` hierarchy, the mount roots included."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        lines = []
    folders = [cgroup, cgroup / "cpu"]
    for line in lines:  # "0::/path" (v2), "4:cpu,cpuacct:/path" (v1)
        fields = line.split(":", 2)
        if len(fields) != 3 or not fields[2].startswith("/"):
            continue
        _, controllers, path = fields
        if controllers == "":
            base = cgroup
        elif "cpu" in controllers.split(","):
            base = cgroup / "cpu"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        folders += [base.joinpath(*parts[:n]) for n in range(1, len(parts) + 1)]
    return folders


def _quota_in(folder: Path) -> int | None:
    """The CPU quota set in one cgroup folder, in CPUs rounded up; None: none."""
    try:
        if (v2 := folder / "cpu.max").exists():
            quota, _, period = v2.read_text().strip().partition(" ")
        elif (v1 := folder / "cpu.cfs_quota_us").exists():
            quota = v1.read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        else:
            return None
        if quota in ("max", "-1") or not period:
            return None
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError, ZeroDivisionError):
        return None


READY_DIR = "SERVE_READY_DIR"  # where each child marks itself ready (a file named by pid)
PARENT_PID = "SERVE_PARENT_PID"  # the supervising parent, which a child watches
LOG_LOCK = "SERVE_LOG_LOCK"  # a file the set's processes lock to write a long log line
PARENT_CHECK_SECONDS = 1.0
READY_SECONDS = 120  # a child's start (migrations done by the parent; rulesets compiled)


def mark_ready() -> None:
    """Called by a child once it serves: its parent waits for every child's mark. The
    child then watches its parent (`watch_parent`)."""
    folder = os.environ.get(READY_DIR)
    if folder:
        (Path(folder) / str(os.getpid())).touch()
    watch_parent()


def watch_parent() -> threading.Thread | None:
    """In a child of `run_children`: once its parent is gone (killed -9, so it could pass
    no SIGTERM on), the child sends itself SIGTERM and drains as it would have been told
    to. Left serving, orphans kept answering on the shared port beside a restarted set,
    old code and settings with no one to stop them (review 49 F4). A parent that exits
    leaves its child to init (or a subreaper): the child's parent pid changes."""
    parent = os.environ.get(PARENT_PID)
    if not parent or not parent.isdigit():
        return None

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(PARENT_CHECK_SECONDS)
        _log.error("the supervising parent process is gone; stopping", parent=int(parent))
        if folder := os.environ.get(READY_DIR):  # the parent can no longer remove it
            shutil.rmtree(folder, ignore_errors=True)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def run_children(module: str, argv: Sequence[str], count: int, address: str) -> int:
    """Start `count` children (`python -m module *argv`) and supervise them until a signal."""
    ready, log_lock = _set_files()
    os.environ[LOG_LOCK] = log_lock  # the parent's own lines take it too
    env = {**os.environ, READY_DIR: str(ready), PARENT_PID: str(os.getpid())}
    children: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # installed before the first child starts: a signal while they start is passed on to
    # those started, and no more are (the parent never dies leaving children and files)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(count):
        if stopping.is_set():
            break
        children.append(subprocess.Popen([sys.executable, "-m", module, *argv], env=env))
    if stopping.is_set():  # again: one started as the signal came may have missed it
        forward(signal.SIGTERM, None)
    started = _wait_ready(ready, children, stopping)
    failed_start = not started and not stopping.is_set()  # not a stop asked for
    if started:
        _log.info(
            "rules service listening",
            address=address,
            port=int(address.rpartition(":")[2]),
            processes=[c.pid for c in children],
        )
    elif failed_start:  # never `listening` for a set that is not (review 49 N4)
        _log.error(
            "the server processes did not all start; stopping them",
            ready=len(list(ready.iterdir())),
            processes=len(children),
        )
        forward(signal.SIGTERM, None)
    while not stopping.is_set() and all(c.poll() is None for c in children):
        stopping.wait(0.5)
    if not stopping.is_set():  # one died on its own: stop the others
        ended = [(c.pid, c.returncode) for c in children if c.returncode is not None]
        _log.error(
            "a server process exited; stopping the others",
            exited=[{"pid": pid, "exit_code": code} for pid, code in ended],
        )
        forward(signal.SIGTERM, None)
    codes = [c.wait() for c in children]
    shutil.rmtree(ready, ignore_errors=True)
    os.environ.pop(LOG_LOCK, None)
    with contextlib.suppress(OSError):
        os.unlink(log_lock)
    if failed_start:
        return 1
    return max(codes, key=abs) if any(codes) else 0


def _set_files() -> tuple[Path, str]:
    """The set's files, made in TMPDIR (else the system's temporary directory): the
    folder its children mark themselves ready in, and the log lock file. A TMPDIR that
    is missing, not a folder or not writable is an OperatorError naming it (one line,
    exit 1), not a traceback; nor is another directory used in its place."""
    from services.common.config import OperatorError

    named = os.environ.get("TMPDIR")
    try:
        folder = named or tempfile.gettempdir()
    except OSError as exc:  # no usable temporary directory at all
        raise OperatorError(
            f"serve --processes: no usable temporary directory ({exc}); set TMPDIR to a "
            "writable directory"
        ) from exc
    ready: Path | None = None
    try:
        ready = Path(tempfile.mkdtemp(prefix="serve-ready-", dir=folder))
        handle, log_lock = tempfile.mkstemp(prefix="serve-log-lock-", dir=folder)
    except OSError as exc:
        if ready is not None:
            shutil.rmtree(ready, ignore_errors=True)
        what = "TMPDIR" if named else "the temporary directory"
        raise OperatorError(
            f"serve --processes: cannot create its files in {what} {folder[:200]!r}: "
            f"{exc.strerror or exc}; create it and let this user write to it, or set TMPDIR "
            "to a directory that is"
        ) from exc
    os.close(handle)
    return ready, log_lock


def _wait_ready(
    folder: Path, children: Sequence[subprocess.Popen[bytes]], stopping: threading.Event
) -> bool:
    """Whether every child marked itself ready (so `listening` means all), waiting at most
    READY_SECONDS; False at once when a child ends or the set is told to stop first."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline and all(c.poll() is None for c in children):
        if len(list(folder.iterdir())) >= len(children):
            return True
        if stopping.wait(0.1):
            return False
    return False
