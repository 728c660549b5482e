"""Engine and session factory for both services: SQLite by default, PostgreSQL by URL.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
BEGIN IMMEDIATE, so writers queue on the database lock instead of failing with
"database is locked" half-way through (pysqlite's own BEGIN is deferred). PostgreSQL
uses a checked pool; handlers lock the rows they count with SELECT … FOR UPDATE.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_MS = 30_000


def default_sqlite_url(name: str) -> str:
    """./var/<name>.db, the default database of a service."""
    return f"sqlite:///{Path('var').resolve() / (name + '.db')}"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An Engine for `url`; creates the SQLite file's folder. Nothing connects until used."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000}
        )
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """MetaData with the naming convention both services' migrations rely on."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


# SQLite result codes that say "not now" rather than "this is a bug": busy or locked past
# the busy timeout, out of memory, interrupted (a deadline), I/O error, disk full, cannot
# open the file, lock protocol.
_SQLITE_TRANSIENT = frozenset({5, 6, 7, 9, 10, 13, 14, 15})


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot take the call now (down, restarting,
    unreachable, stalled past a timeout, locked past the busy timeout, disk full), so the
    caller may retry; the transaction it was in is rolled back. One place for both
    services: the gRPC error mapping and the phone page ask it."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection within pool_timeout
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_TRANSIENT
    # psycopg: connection failures, server shutdown, query cancelled by statement_timeout,
    # disk full and other insufficient resources are OperationalError; a closed
    # connection is InterfaceError. Constraint and syntax errors are neither.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
