"""The rules register's unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.common.db import is_sqlite, log_bytes, read_snapshot
from services.common.unit_of_work import BaseUnitOfWork
from services.rules.adapters.bulk_reevaluation import BatchRegister
from services.rules.adapters.feed import RECORDER
from services.rules.adapters.orm import AUDIT, start_mappers
from services.rules.adapters.repository import Register


@dataclass(frozen=True)
class Snapshot:
    """The register's reads over one read snapshot (`UnitOfWork.snapshot`)."""

    register: Register
    batch: BatchRegister


class UnitOfWork(BaseUnitOfWork[Register]):
    def __init__(self, engine: Engine) -> None:
        start_mappers()
        super().__init__(engine, AUDIT, RECORDER)  # the audit trail and the change feed

    def make_register(self, session: Session) -> Register:
        return Register(session, lock_rows=self.lock_rows)

    def __enter__(self) -> UnitOfWork:
        super().__enter__()
        # the re-evaluation's batch reads and multi-row writes, in the same transaction
        self.batch = BatchRegister(self.session, lock_rows=self.lock_rows)
        return self

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """Reads outside any write transaction (db.read_snapshot: SQLite's deferred BEGIN,
        PostgreSQL's REPEATABLE READ READ ONLY): no write lock, no row lock, every read
        seeing one snapshot, nothing written (rolled back at the end, objects read
        detached). What it read may be stale by the time a write transaction runs: a
        caller that acts on it checks it again there (the re-evaluation's read-ahead)."""
        with read_snapshot(self.engine) as connection:
            session = Session(bind=connection, expire_on_commit=False)
            try:
                yield Snapshot(
                    Register(session, lock_rows=False), BatchRegister(session, lock_rows=False)
                )
            finally:
                session.expunge_all()
                session.close()

    def checkpoint(self, over: int) -> bool:
        """SQLite: when its write-ahead log's file has grown past `over` bytes, copy the
        log into the database and truncate it (`PRAGMA wal_checkpoint(TRUNCATE)`); True
        when it did. SQLite's own checkpoints at commit start the log over only when no
        reader still uses it, so processes that keep reading while others write (the
        re-evaluation's read-ahead) could grow it by every batch written until the run
        ended: 422 MB for 80,000 firms (review 34 F1). It does not wait: a truncation
        waits for readers and writers while holding SQLite's write lock, so a reader that
        holds a snapshot for long (a backup, `audit verify`) made it hold that lock for the
        whole busy timeout and the run's other processes fail (review 44 F1). A log in
        use is copied as far as it can be (as SQLite's own checkpoints do), and False:
        the caller asks again later. PostgreSQL, a log within `over`: nothing (False)."""
        if not is_sqlite(self.engine):
            return False
        connection = self.engine.raw_connection()  # autocommit: no BEGIN of ours
        try:
            cursor = connection.cursor()
            size = log_bytes(cursor)
            if size is not None and size <= over:
                return False
            (waited,) = cursor.execute("PRAGMA busy_timeout").fetchone()
            cursor.execute("PRAGMA busy_timeout=0")
            try:
                busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                cursor.execute(f"PRAGMA busy_timeout={int(waited)}")
        finally:
            connection.close()
        return bool(busy == 0)
