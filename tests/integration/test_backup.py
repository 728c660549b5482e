"""Backup and restore of the SQLite default (issue 13, point 11): `backup` copies a live
database while a writer keeps going; `restore` puts the copy back. Every write
acknowledged before the backup started is in the copy, and the audit chain is intact."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import make_engine
from services.rules.adapters import migrate
from services.rules.adapters.orm import firms
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.faults import wait_until
from tests.support import ROOT, profile, uscc


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.rules", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_backup_under_write_load_restores_every_acknowledged_write(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    live = f"sqlite:///{tmp_path / 'rules.db'}"
    engine = make_engine(live)
    migrate.upgrade(engine)
    server, port = grpc_server.create_server(rulebook, engine=engine)
    server.start()
    acked: list[str] = []
    stop = threading.Event()

    def write() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            n = 1
            while not stop.is_set() and n < 5000:
                data = profile(n)
                stub.UpsertEnterprise(
                    pb.UpsertEnterpriseRequest(profile=profile_from_json(data)), timeout=60
                )
                acked.append(str(data["enterprise_id"]))
                n += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(acked) >= 20, timeout=120)
        before = set(acked)
        taken = _cli("backup", "--db", live, "--out", str(tmp_path / "rules.backup"))
        assert taken.returncode == 0, taken.stderr[-2000:]
        wait_until(lambda: len(acked) >= len(before) + 5, timeout=120)  # still writing
    finally:
        stop.set()
        writer.join(timeout=120)
        server.stop(None)
        engine.dispose()
    assert not writer.is_alive()
    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    back = _cli("restore", "--from", str(tmp_path / "rules.backup"), "--db", restored)
    assert back.returncode == 0, back.stdout + back.stderr[-2000:]
    assert "audit trail intact" in back.stdout
    copy = make_engine(restored)
    try:
        with copy.connect() as connection:
            stored = set(connection.execute(select(firms.c.enterprise_id)).scalars())
    finally:
        copy.dispose()
    assert before <= stored
    assert uscc(1) in stored


def test_postgresql_is_not_backed_up_this_way(tmp_path: Path) -> None:
    taken = _cli(
        "backup", "--db", "postgresql+psycopg://postgres@127.0.0.1:5432/x", "--out", "x.db"
    )
    assert taken.returncode == 1
    assert "pg_dump" in taken.stderr


@pytest.mark.parametrize("service", ["services.booking"])
def test_booking_has_the_same_commands(tmp_path: Path, service: str) -> None:
    live = f"sqlite:///{tmp_path / 'booking.db'}"
    done = subprocess.run(
        [sys.executable, "-m", service, "migrate", "--db", live],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for args in (
        ["backup", "--db", live, "--out", str(tmp_path / "b.backup")],
        ["restore", "--from", str(tmp_path / "b.backup"), "--db", f"sqlite:///{tmp_path / 'r.db'}"],
    ):
        step = subprocess.run(
            [sys.executable, "-m", service, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert step.returncode == 0, step.stdout + step.stderr[-2000:]
