"""A unit of work that only read ends with COMMIT on PostgreSQL (review 29 N2).

psycopg drops every prepared statement of a connection at ROLLBACK (and sends
DEALLOCATE ALL); read-only units of work (GetEnterpriseStatus, GetOrder) ended with one,
so under a mixed load the write paths' statements seldom stayed prepared. A unit of
work that wrote, or may have, still rolls back whatever it did not commit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from services.common.db import DbTimeouts, driver_of, make_engine
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
