"""`db.log_bytes`: the size of a SQLite database's write-ahead log file, as SQLite names
the file it opened, which decides when a re-evaluation range truncates it
(`UnitOfWork.checkpoint`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine

from services.common.db import log_bytes


def _wal(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.execute("INSERT INTO t VALUES (1)")
    return connection


def test_a_file_database_reads_its_log_files_size(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "r.db")
    assert log_bytes(connection) == 0  # no log file
    connection.close()
    connection = _wal(tmp_path / "w.db")
    size = (tmp_path / "w.db-wal").stat().st_size
    assert size > 0 and log_bytes(connection) == size
    connection.close()


def test_a_database_opened_through_a_symlink_reads_the_log_beside_its_file(
    tmp_path: Path,
) -> None:
    """Review 44 F2: SQLite writes `<target>-wal` for a symlinked database; a size read
    at the link's path was 0 for ever, and the run's log grew unchecked."""
    (tmp_path / "data").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "data" / "real.db")
    connection = _wal(tmp_path / "link.db")
    assert not (tmp_path / "link.db-wal").exists()
    assert log_bytes(connection) == (tmp_path / "data" / "real.db-wal").stat().st_size > 0
    connection.close()


def test_an_in_memory_database_has_no_log_file() -> None:
    """Unknown (None): `checkpoint` then checkpoints whatever the limit."""
    assert log_bytes(sqlite3.connect(":memory:")) is None


def test_a_checkpoint_of_a_log_of_unknown_size_is_made_whatever_the_limit() -> None:
    from services.rules.service_layer.unit_of_work import UnitOfWork

    assert UnitOfWork(create_engine("sqlite://")).checkpoint(10**12) is True
