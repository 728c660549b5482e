"""A stop signal while a server is still starting ends it at once and quietly (review 69).

The handlers are installed before start-up (stop 34), but they only set an event the
drain waits for: a start-up that waited — here on the migration lock another replica
holds — went on waiting with the SIGTERM in hand (until the lock or the statement
timeout, then a traceback), where before the handlers it died at once. Now a signal
before the server is built abandons the start (the migration's transaction rolls back),
exit 0, no traceback."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from services.common.migrations import MIGRATION_LOCK
from tests.faults import pg_database
from tests.support import ROOT

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with pg_database(PG_ADMIN_URL, "rules_stop") as url:
        yield url


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_waiting_for_the_migration_lock_ends_the_start(
    fresh_pg: str, tmp_path: Path, signum: signal.Signals
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": "t" * 32, "caller": "c", "scopes": []}]}))
    holder = create_engine(fresh_pg)
    watcher = create_engine(fresh_pg, isolation_level="AUTOCOMMIT")
    with holder.connect() as held:
        held.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "services.rules", "--log-json", "serve"),
                *("--grpc", "127.0.0.1:0", "--db", fresh_pg, "--tokens", str(tokens)),
                *("--db-timeout", "600"),  # the wait would outlast the test
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            while True:  # the server is in its migration, waiting on the lock
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                with watcher.connect() as conn:
                    if conn.execute(text(waiting + " AND datname = current_database()")).scalar():
                        break
                time.sleep(0.1)
            proc.send_signal(signum)
            code = proc.wait(timeout=60)
            stderr = proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    holder.dispose()
    watcher.dispose()
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert "listening" not in stderr


def _opened(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (the server connected to its SQLite file)."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(fd.readlink()) == path:
                return True
        except OSError:
            pass
    return False


def test_a_stop_while_sqlite_is_busy_ends_the_start(tmp_path: Path) -> None:
    """Review 73 item 1: another process holds the SQLite file's write lock, so start-up
    waits in SQLite's busy wait (in C, where no signal handler runs): the wait is cut in
    short slices in the main thread, so the stop is handled within one, not when the
    whole busy timeout (here 600 s, longer than the test waits) has passed."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": "t" * 32, "caller": "c", "scopes": []}]}))
    db = tmp_path / "rules.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE held (a)")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.rules", "--log-json", "serve"),
            *("--grpc", "127.0.0.1:0", "--db", f"sqlite:///{db}", "--tokens", str(tokens)),
            *("--db-timeout", "600"),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not _opened(proc.pid, db):  # connected: next, the wait for the write lock
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the wait
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 0, stderr[-2000:]
    assert "stopped while starting" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert "listening" not in stderr
