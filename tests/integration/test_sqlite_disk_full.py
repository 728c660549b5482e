"""Review 68 (the fault soak): SQLite's folder on a full disk. Every write failed
(SQLITE_FULL, answered UNAVAILABLE) for as long as it lasted, yet health read SERVING
throughout (17 to 23 samples a fault, every one SERVING): its probe writes nothing and
asked only whether the files may be written. It now asks how much room the filesystem
has left (statvfs), so health turns NOT_SERVING while the disk is full and SERVING
again once there is room. Needs root (a tmpfs of its own); skipped elsewhere."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health, health_pb2
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.common.db import DbTimeouts, make_engine, ping
from services.common.server import watch_database
from services.rules.adapters import migrate
from tests.faults import wait_until


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of its own."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr[:100]!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
    return filler


def _status(checker: health.HealthServicer) -> int:
    return int(checker.Check(health_pb2.HealthCheckRequest(service=""), None).status)


def test_a_full_disk_under_sqlite_turns_health_not_serving_and_back(small_disk: Path) -> None:
    engine = make_engine(f"sqlite:///{small_disk / 'rules.db'}", timeouts=DbTimeouts(statement=5))
    migrate.upgrade(engine)
    checker = health.HealthServicer()
    stop = None
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE ballast (b BLOB)"))
        ping(engine)  # room: the probe answers
        filler = _fill(small_disk)
        with pytest.raises(OperationalError, match="full"), engine.begin() as conn:
            conn.execute(text("INSERT INTO ballast VALUES (:b)"), {"b": os.urandom(1 << 20)})
        stop = watch_database(engine, checker, [], interval=0.05, probe_timeout=2)
        wait_until(lambda: _status(checker) == health_pb2.HealthCheckResponse.NOT_SERVING, 30)
        with pytest.raises(RuntimeError, match="full") as raised:  # it answered before
            ping(engine)
        assert type(raised.value).__name__ == "DatabaseFull"
        filler.unlink()
        wait_until(lambda: _status(checker) == health_pb2.HealthCheckResponse.SERVING, 30)
        with engine.begin() as conn:  # and writes go through again
            conn.execute(text("INSERT INTO ballast VALUES (:b)"), {"b": b"x"})
    finally:
        if stop is not None:
            stop.set()
        engine.dispose()
