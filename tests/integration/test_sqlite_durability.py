"""SQLite keeps what it acknowledged through a power cut or an OS crash (review 57 D2).

In WAL mode `PRAGMA synchronous=NORMAL` syncs the log only at checkpoints: a commit
acknowledged to a caller could roll back after a power loss, a kernel panic or a VM
reset (strace saw no fsync for 20 acknowledged ReportEvents). Every SQLite connection
that writes now runs with synchronous=FULL (the log synced at every commit): the
services' own connections, and those of every command that writes (migrations,
`reevaluate --all` and its range processes, the users' and firms' commands, backup and
restore). The PRAGMA is read back on the real connections.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
from sqlalchemy import Engine

from services.common import backup
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import DbTimeouts, make_engine
from services.common.server import Limits
from services.rules.adapters import migrate
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.booking_env import running_pair
from tests.support import ROOT, profile

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def synchronous_of_pooled(engine: Engine, connections: int) -> set[int]:
    """PRAGMA synchronous on `connections` of the engine's pooled connections at once
    (those the service's calls used, and more made alike)."""
    held = [engine.raw_connection() for _ in range(connections)]
    try:
        found = set()
        for connection in held:
            cursor = connection.cursor()
            cursor.execute("PRAGMA synchronous")
            found.add(int(cursor.fetchone()[0]))
            cursor.close()
        return found
    finally:
        for connection in held:
            connection.close()


def test_the_rules_service_syncs_every_commit(rulebook: Rulebook, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}", timeouts=DbTimeouts())
    migrate.upgrade(engine)
    running = grpc_server.build(rulebook, engine=engine, address="127.0.0.1:0", limits=Limits(4, 4))
    running.server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            for n in range(1, 5):
                stub.UpsertEnterprise(
                    pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n))), timeout=30
                )
        assert synchronous_of_pooled(engine, 4) == {FULL}
    finally:
        running.server.stop(None)
        engine.dispose()


def test_the_booking_service_syncs_every_commit(tmp_path: Path) -> None:
    with running_pair(tmp_path, "sqlite") as pair:
        enterprise_id = pair.register_firm(1)
        pair.issue(enterprise_id)
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        assert synchronous_of_pooled(pair.booking_engine, 3) == {FULL}
        assert synchronous_of_pooled(pair.rules_engine, 3) == {FULL}


def test_the_commands_engines_sync_every_commit(tmp_path: Path) -> None:
    """make_engine without timeouts: the engine of every command run by hand (migrations
    run on it, `reevaluate --all`'s range processes make one each)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        migrate.upgrade(engine)
        assert synchronous_of_pooled(engine, 2) == {FULL}
    finally:
        engine.dispose()


class _Recorded(sqlite3.Connection):
    """A real connection that notes its PRAGMA synchronous when it closes."""

    seen: ClassVar[list[tuple[str, int]]] = []

    def close(self) -> None:
        name = self.execute("PRAGMA database_list").fetchone()[2]
        self.seen.append((name, int(self.execute("PRAGMA synchronous").fetchone()[0])))
        super().close()


def test_backup_and_restore_write_their_copies_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, factory=_Recorded, **kwargs)  # type: ignore[misc]

    engine = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    migrate.upgrade(engine)
    engine.dispose()
    monkeypatch.setattr(backup.sqlite3, "connect", connect)
    _Recorded.seen = []
    backup.backup(f"sqlite:///{tmp_path / 'live.db'}", tmp_path / "copy.db")
    backup.restore(tmp_path / "copy.db", f"sqlite:///{tmp_path / 'restored.db'}")
    sources = {"live.db", "copy.db"}  # each read (mode=ro) by one of the two
    written = {Path(n).name: mode for n, mode in _Recorded.seen if Path(n).name not in sources}
    assert written == {"copy.db.partial": FULL, "restored.db": FULL}


def test_every_sqlite_connection_of_the_services_is_made_in_the_two_places_checked() -> None:
    """Engines come from db.make_engine alone, and sqlite3 is opened directly only by
    backup.py: the two places the tests above read the PRAGMA back from."""
    made = re.compile(r"\bcreate_engine\(|\bsqlite3\.connect\(")
    found = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "services").rglob("*.py")
        if "_generated" not in path.parts and made.search(path.read_text(encoding="utf-8"))
    }
    assert found == {"services/common/db.py", "services/common/backup.py"}


@pytest.mark.parametrize("service", ["rules", "booking"])
def test_normal_is_an_operators_explicit_choice(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --sqlite-synchronous normal` (or $RULES_/$BOOKING_SQLITE_SYNCHRONOUS) for a
    disk whose write cache survives power loss; full unless said; nothing else taken."""
    from services.booking.entrypoints import cli as booking_cli
    from services.common import server as common_server
    from services.rules.entrypoints import cli as rules_cli

    parser = {"rules": rules_cli._parser, "booking": booking_cli._parser}[service]
    assert common_server.sqlite_synchronous_from(parser().parse_args(["serve"])) == "full"
    said = parser().parse_args(["serve", "--sqlite-synchronous", "NORMAL"])
    assert common_server.sqlite_synchronous_from(said) == "normal"
    monkeypatch.setenv(f"{service.upper()}_SQLITE_SYNCHRONOUS", "normal")
    assert common_server.sqlite_synchronous_from(parser().parse_args(["serve"])) == "normal"
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--sqlite-synchronous", "off"])
    engine = make_engine(f"sqlite:///{tmp_path / 'fast.db'}", sqlite_synchronous="normal")
    try:
        assert synchronous_of_pooled(engine, 1) == {1}
    finally:
        engine.dispose()
