"""`db.log_bytes`: the size of a SQLite database's write-ahead log file, which decides
when a re-evaluation range truncates it (`UnitOfWork.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from services.common.db import log_bytes


def test_a_file_database_reads_its_log_files_size(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    assert log_bytes(engine) == 0  # no log file yet
    (tmp_path / "r.db-wal").write_bytes(b"x" * 1234)
    assert log_bytes(engine) == 1234


def test_a_log_the_url_does_not_name_is_unknown_and_postgresql_has_none() -> None:
    """Unknown (None): `checkpoint` then truncates whatever the size, as it did before
    it read the size, so a log it cannot see never grows unbounded."""
    assert log_bytes(create_engine("sqlite://")) is None
    assert log_bytes(create_engine("sqlite:///:memory:")) is None
    assert log_bytes(create_engine("sqlite:///file:r.db?mode=rwc&uri=true")) is None
    assert log_bytes(create_engine("postgresql+psycopg://u@127.0.0.1:1/x")) == 0


def test_a_checkpoint_of_a_log_of_unknown_size_is_made_whatever_the_limit() -> None:
    from services.rules.service_layer.unit_of_work import UnitOfWork

    assert UnitOfWork(create_engine("sqlite://")).checkpoint(10**12) is True
