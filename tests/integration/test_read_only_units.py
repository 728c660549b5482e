"""A unit of work that only read ends with COMMIT on PostgreSQL (review 29 N2).

psycopg drops every prepared statement of a connection at ROLLBACK (and sends
DEALLOCATE ALL); read-only units of work (GetEnterpriseStatus, GetOrder) ended with one,
so under a mixed load the write paths' statements seldom stayed prepared. A unit of
work that wrote, or may have, still rolls back whatever it did not commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common import db
from services.common.context import deadline_in
from services.common.db import DbTimeouts, driver_of, make_engine, ping
from services.common.errors import NotFound
from services.common.server import _Probe
from services.common.unit_of_work import BaseUnitOfWork
from tests.faults import pg_database
from tests.integration.conftest import PG_ADMIN_URL


class _Uow(BaseUnitOfWork[Session]):
    def make_register(self, session: Session) -> Session:
        return session


@pytest.fixture
def engine() -> Iterator[Engine]:
    with pg_database(PG_ADMIN_URL, "readonly") as url:
        engine = make_engine(url, pool_size=1, timeouts=DbTimeouts(statement=5))
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n integer)"))
        try:
            yield engine
        finally:
            engine.dispose()


def _prepared(conn: Connection) -> int:
    return int(conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one())


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(n) for n in conn.execute(text("SELECT n FROM t ORDER BY n")).scalars()]


def test_reading_keeps_the_connections_prepared_statements(engine: Engine) -> None:
    with _Uow(engine) as uow:
        for _ in range(8):  # psycopg prepares a statement on its 5th run
            uow.register.execute(text("SELECT count(*) FROM t WHERE n > :n"), {"n": 1})
        assert _prepared(uow.register.connection()) >= 1
    with _Uow(engine) as uow:  # the pool's one connection again
        assert _prepared(uow.register.connection()) >= 1


def test_a_unit_that_wrote_and_did_not_commit_is_rolled_back(engine: Engine) -> None:
    with _Uow(engine) as uow:
        uow.register.execute(text("SELECT 1"))
        uow.register.execute(text("INSERT INTO t VALUES (1)"))
        uow.register.execute(text("SELECT 2"))
    with _Uow(engine) as uow:
        uow.register.execute(text("  insert into t values (2)"))
    with _Uow(engine) as uow:
        uow.register.execute(text("WITH x AS (INSERT INTO t VALUES (3) RETURNING n) TABLE x"))
    with _Uow(engine) as uow, driver_of(uow.register.connection()).cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (4)")
    with _Uow(engine) as uow:
        uow.register.execute(text("INSERT INTO t VALUES (5)"))
        uow.commit()
    assert _rows(engine) == [5]


def test_a_unit_left_by_an_error_is_rolled_back(engine: Engine) -> None:
    with pytest.raises(RuntimeError), _Uow(engine) as uow:
        uow.register.execute(text("SELECT 1"))
        raise RuntimeError("the use case failed after reading")
    with _Uow(engine) as uow:  # the connection is usable and holds nothing
        assert uow.register.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


class _Holding:
    """A recorder that keeps something to write at the commit (as the audit trail keeps
    the entries of orders taken and not yet written)."""

    def install(self, factory: object) -> None:
        pass

    def holds(self, session: Session) -> bool:
        return True


def test_a_unit_whose_recorder_holds_something_is_rolled_back(engine: Engine) -> None:
    holding = _Holding()
    with _Uow(engine, holding) as uow:
        for _ in range(8):
            uow.register.execute(text("SELECT count(*) FROM t WHERE n > :n"), {"n": 1})
        assert _prepared(uow.register.connection()) >= 1
    with _Uow(engine) as uow:  # rolled back: psycopg dropped what it had prepared
        assert _prepared(uow.register.connection()) == 0


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "t2"
    n: Mapped[int] = mapped_column(primary_key=True)


@pytest.mark.parametrize("kind", ["new", "dirty", "deleted"])
def test_a_unit_that_caught_a_failed_flush_ends_cleanly(engine: Engine, kind: str) -> None:
    """Review 30 F1: the flush's rollback emptied new/dirty/deleted, so the unit looked
    read-only and its exit raised PendingRollbackError, leaving the connection out."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t2 (n integer PRIMARY KEY CHECK (n > 0))"))
        conn.execute(text("INSERT INTO t2 VALUES (5)"))
        conn.execute(text("CREATE TABLE ref (n integer REFERENCES t2 (n))"))
        conn.execute(text("INSERT INTO ref VALUES (5)"))
    with _Uow(engine) as uow:
        session = uow.register
        session.execute(text("SELECT 1"))
        with pytest.raises(IntegrityError):
            if kind == "new":
                session.add(_Row(n=-1))
            elif kind == "dirty":
                found = session.get(_Row, 5)
                assert found is not None
                found.n = -5
            else:
                session.delete(session.get(_Row, 5))
            session.flush()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t2")).scalars().all() == [5]


def test_a_select_that_may_write_counts_as_a_write(engine: Engine) -> None:
    """Review 30 N5: several statements in one text, SELECT … INTO and set_config are
    rolled back as before."""
    with _Uow(engine) as uow:
        uow.register.execute(text("SELECT 1; INSERT INTO t VALUES (9)"))
    with _Uow(engine) as uow:
        uow.register.execute(text("select n into t_copy from t"))
    with _Uow(engine) as uow:
        uow.register.execute(text("SELECT set_config('app.x', 'kept', false)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_setting('app.x', true)")).scalar() in (None, "")
        assert conn.execute(text("SELECT to_regclass('t_copy') IS NULL")).scalar() is True
    assert _rows(engine) == []


def test_a_unit_left_by_a_domain_error_after_reading_keeps_the_prepared_statements(
    engine: Engine,
) -> None:
    """Review 30 N6: a read that ends in NotFound (a firm not in the register) wrote
    nothing either."""
    with pytest.raises(NotFound), _Uow(engine) as uow:
        for _ in range(8):
            uow.register.execute(text("SELECT count(*) FROM t WHERE n > :n"), {"n": 1})
        raise NotFound("no such firm")
    with _Uow(engine) as uow:
        assert _prepared(uow.register.connection()) >= 1


def _kill_the_pooled_connection(engine: Engine) -> None:
    """The backend of `engine`'s one pooled connection ends, as in a restart, while the
    connection sits in the pool as just used."""
    with engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        conn.commit()
    killer = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            conn.commit()
    finally:
        killer.dispose()
    time.sleep(0.05)


def test_the_health_ping_replaces_a_pooled_connection_that_died(engine: Engine) -> None:
    """Review 30 N4: a pooled connection that died within PING_AFTER_IDLE failed the
    health check (/healthz) once, though the database answers."""
    _kill_the_pooled_connection(engine)
    ping(engine)  # no error: the dead one is dropped and the check made again


def test_a_connection_the_watchdog_cut_on_its_way_back_is_pinged_next(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 30 N3: cut between its last round trip and the checkin, it went back to
    the pool as just used, and the next call, not pinged, failed on it."""
    pings: list[object] = []
    real = db._alive
    monkeypatch.setattr(db, "_alive", lambda c: (pings.append(c), real(c))[1])
    slow = {"on": False}

    def slow_checkin(_dbapi: object, _record: object) -> None:
        if slow["on"]:
            time.sleep(0.5)  # the narrow window between the COMMIT and the guard's cancel

    event.listen(engine, "checkin", slow_checkin, insert=True)
    with _Uow(engine) as uow:
        uow.register.execute(text("SELECT 1"))
    slow["on"] = True
    with deadline_in(0.2), _Uow(engine) as uow:
        uow.register.execute(text("SELECT 1"))
    slow["on"] = False
    with _Uow(engine) as uow:
        assert uow.register.execute(text("SELECT 5")).scalar() == 5
    assert len(pings) == 1


def test_the_grpc_health_probe_replaces_a_pooled_connection_that_died(engine: Engine) -> None:
    """Review 30 N4, the gRPC health's probe (through SQLAlchemy): NOT_SERVING for one
    interval because one pooled connection had died."""
    _kill_the_pooled_connection(engine)
    probe = _Probe(engine, timeout=10)
    assert probe.finished.wait(30)
    assert probe.error is None
