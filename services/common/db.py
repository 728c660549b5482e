"""Engine and session factory for both services: SQLite by default, PostgreSQL by URL.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
BEGIN IMMEDIATE, so writers queue on the database lock instead of failing with
"database is locked" half-way through (pysqlite's own BEGIN is deferred). PostgreSQL
uses a checked pool; handlers lock the rows they count with SELECT … FOR UPDATE.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import structlog
from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from services.common.context import call_ended, time_left
from services.common.errors import DeadlineExceeded

_log = structlog.get_logger("db")


class _UnnamedConnections(logging.Filter):
    """psycopg's warnings when a pipeline or COPY ends with a second error ("error ignored
    terminating <psycopg.Pipeline [INERROR] (host=… user=… database=…) at 0x…>: …", and
    "error ignored exiting …") name the connection: their record is kept, the object
    described by its kind alone (review 35 F1, review 42 N1: a group's insert that fails
    mid-executemany). Any other record passes as it is (a filter that raised would fail
    the call that logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg in _NAMING_CONNECTIONS and isinstance(args, tuple) and len(args) == 2:
            record.args = (_Kind(type(args[0]).__name__), args[1])
        return True


# psycopg's messages whose first argument is an object described with its connection
_NAMING_CONNECTIONS = frozenset(
    {"error ignored terminating %r: %s", "error ignored exiting %r: %s"}
)


@dataclass(frozen=True)
class _Kind:
    name: str

    def __repr__(self) -> str:
        return f"<psycopg.{self.name}>"


logging.getLogger("psycopg").addFilter(_UnnamedConnections())

SQLITE_BUSY_MS = 30_000  # without DbTimeouts (commands run by hand)


@dataclass(frozen=True)
class DbTimeouts:
    """How long the database may take, so that a stalled one gives UNAVAILABLE instead of
    a hang (flags --db-timeout, --db-connect-timeout, --db-pool-timeout):

    - `statement`: PostgreSQL's statement_timeout, SQLite's busy timeout, and the longest
      one call may hold a connection (plus `MARGIN`) before the watchdog cuts it;
    - `connect`: PostgreSQL's connect_timeout;
    - `pool`: waiting for a pooled connection.
    A call's own gRPC deadline, when sooner, bounds all of them (the watchdog cuts the
    connection then, and SQLite's busy timeout is set per transaction).
    """

    statement: float = 10.0
    connect: float = 5.0
    pool: float = 5.0

    MARGIN = 2.0  # past statement_timeout, PostgreSQL itself should have answered


def default_sqlite_url(name: str) -> str:
    """./var/<name>.db, the default database of a service."""
    return f"sqlite:///{Path('var').resolve() / (name + '.db')}"


def existing_database(url: str) -> str:
    """`url`, for a command that inspects or repairs a database already there (`audit
    verify`, `audit anchor`, `outbox`, `renew-feed-epoch`): a SQLite file that does not
    exist is an OperatorError, not a new empty database that reports all is well (a
    mistyped --db once answered "audit trail intact: 0 entries")."""
    from sqlalchemy.engine import make_url

    from services.common.config import OperatorError

    parsed = make_url(url)
    name = parsed.database or ""
    sqlite_file = parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:")
    if sqlite_file and not name.startswith("file:") and not Path(name).is_file():
        raise OperatorError(f"database error: no SQLite database at {name} (check --db)")
    return url


_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _refused(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_text(value: Any) -> str:
    """The text a JSON column stores for `value` (every engine's `json_serializer`, and
    the batch writer's, so both write the same text): orjson's compact UTF-8, about a
    fifth of `json.dumps`' cost, or `json.dumps`' own text for what orjson refuses (an
    integer past 64 bits, a key that is not a str, a lone surrogate; a date, datetime or
    dataclass, which `json.dumps` refuses in turn). Both read back as the same values,
    so the audit trail's hashes, computed from values, verify either way; rows written
    before keep their text. One difference: a float NaN or infinity becomes null, which
    no stored value holds (profiles refuse them, and PostgreSQL's json type refused
    json.dumps' NaN)."""
    try:
        return orjson.dumps(value, default=_refused, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


# SQLite's PRAGMA synchronous a connection runs with (`make_engine`, flag
# --sqlite-synchronous): "full", the default, syncs the write-ahead log at every commit, so
# a commit acknowledged is on disk and survives a power cut or an OS crash; "normal" syncs
# it only at checkpoints (a commit costs no fsync, and the last commits acknowledged may
# be lost to a power cut, an OS crash or a VM reset; a crash of the process alone loses
# nothing): only for a disk whose write cache survives power loss, chosen explicitly
# (review 57 D2).
SQLITE_SYNCHRONOUS = ("full", "normal")


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    timeouts: DbTimeouts | None = None,
    sqlite_synchronous: str = "full",
) -> Engine:
    """An Engine for `url`; creates the SQLite file's folder. Nothing connects until used.

    With `timeouts` (the servers) every statement, connection and pool checkout is bounded;
    without (commands run by hand) SQLite waits 30 s for its lock and PostgreSQL statements
    are unbounded. Either way a call's deadline (context.deadline_in) is honoured. A
    failing statement's error never carries its parameters (`hide_parameters`), so no
    phone number or token reaches a traceback in the logs. Every SQLite connection runs
    with PRAGMA synchronous=FULL unless `sqlite_synchronous` says "normal"
    (SQLITE_SYNCHRONOUS): nothing acknowledged is lost to a power cut.
    """
    if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}")
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    hold = timeouts.statement + DbTimeouts.MARGIN if timeouts else None
    if sqlite:
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = int(timeouts.statement * 1000) if timeouts else SQLITE_BUSY_MS
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
            pool_timeout=timeouts.pool if timeouts else 30,
            hide_parameters=True,  # a failing row's values (phones…) never reach a log
            json_serializer=json_text,
        )
        _sqlite_pragmas(engine, busy_ms, sqlite_synchronous.upper())
        if sqlite_synchronous != "full":
            _log.warning(
                "SQLite synchronous=NORMAL: commits are acknowledged before they are on "
                "disk; a power cut or an OS crash can lose the last ones",
                database=parsed.database,
            )
    else:
        connect_args: dict[str, Any] = {
            "connect_timeout": max(2, round(timeouts.connect if timeouts else 10))
        }
        if timeouts:
            connect_args["options"] = f"-c statement_timeout={int(timeouts.statement * 1000)}"
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=timeouts.pool if timeouts else 30,
            connect_args=connect_args,
            hide_parameters=True,
            json_serializer=json_text,
        )
    _guard_connections(engine, hold, ping=not sqlite)
    _watch_writes(engine)
    event.listen(engine, "handle_error", _replace_read_only)
    return engine


def _replace_read_only(context: Any) -> None:
    """A connection whose statement failed because it cannot write (`cannot_write`) is
    replaced, that one alone: a PostgreSQL session keeps the default_transaction_read_only
    it started with, and SQLite's connection that fell back to opening the file read-only
    stays so, so they would fail every write after the database takes writes again."""
    if cannot_write(context.original_exception):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def _sqlite_pragmas(engine: Engine, busy_ms: int, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: in WAL mode the log is synced at every commit (NORMAL: at checkpoints only)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    # One transaction at a time in this process, queued on a lock: SQLite's own wait for
    # its write lock polls (sleeps of up to 100 ms), which left a busy server's threads
    # asleep while the file was free. Other processes still meet the busy timeout.
    gate = threading.Lock()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(_SNAPSHOT):
            connection.exec_driver_sql("BEGIN")  # deferred: a read snapshot, no write lock
            return
        left = time_left()  # wait for the write lock no longer than the caller waits
        wait = busy_ms if left is None else max(0, min(busy_ms, int(left * 1000)))
        start = time.monotonic()
        held = _take_gate(gate, wait / 1000)
        if held:
            connection.info[_GATE] = gate
            wait = max(0, wait - int((time.monotonic() - start) * 1000))
        try:
            _begin_immediate(connection, wait)
        except BaseException:
            _release_gate(connection)
            raise

    for name in ("commit", "rollback"):
        event.listen(engine, name, _release_gate)
    event.listen(engine.pool, "checkin", lambda _dbapi, record: _open_gate(record.info))
    event.listen(engine.pool, "invalidate", lambda _dbapi, record, _exc: _open_gate(record.info))


# SQLite's busy wait, in the main thread, in slices this long: sqlite3 waits in C, and a
# signal handler (StopSignal: a stop while a server starts, Ctrl-C of a command) runs
# only between two bytecodes, so one long busy wait delayed the stop by the whole wait
BUSY_SLICE_MS = 100
_SQLITE_BUSY = 5  # SQLite's primary result code (extended codes keep it in their low byte)


def _begin_immediate(connection: Any, wait_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting at most `wait_ms` for another process's write lock. In the
    main thread the wait is cut in BUSY_SLICE_MS slices, so a stop signal that arrives
    meanwhile is handled within one slice; the last try (and any other thread's only
    one, and any error other than busy) goes through SQLAlchemy, whose error the callers
    map."""
    if threading.current_thread() is threading.main_thread() and wait_ms > BUSY_SLICE_MS:
        raw = connection.connection.dbapi_connection
        until = time.monotonic() + wait_ms / 1000
        while (left := int((until - time.monotonic()) * 1000)) > BUSY_SLICE_MS:
            raw.execute(f"PRAGMA busy_timeout={BUSY_SLICE_MS}")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorcode", 0) & 0xFF != _SQLITE_BUSY:
                    break  # not a wait: SQLAlchemy's try below raises it as callers expect
                continue
            left = max(0, int((until - time.monotonic()) * 1000))
            raw.execute(f"PRAGMA busy_timeout={left}")  # the transaction's, as below
            return
        wait_ms = max(0, left)
    connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
    connection.exec_driver_sql("BEGIN IMMEDIATE")


_GATE = "sqlite_gate"
_SNAPSHOT = "read_snapshot"
# how often a stream's thread waiting for the write lock looks whether its call has ended
ENDED_POLL = 0.05


def _take_gate(gate: threading.Lock, seconds: float) -> bool:
    """The process's write lock, within `seconds` (False: not). A long-lived stream's
    thread (context.ending_with) gives up as soon as its call has ended (DeadlineExceeded:
    nobody waits for the answer): a follower that cancelled while a long write held the
    lock would otherwise keep its thread, and its slot, until the lock freed (review 61
    R61-2). SQLite's own wait for another process's lock (the busy timeout) is not cut."""
    ended = call_ended()
    if ended is None:
        return gate.acquire(timeout=seconds)
    until = time.monotonic() + seconds
    while not ended.is_set():
        left = until - time.monotonic()
        if gate.acquire(timeout=max(0.0, min(left, ENDED_POLL))):
            return True
        if left <= ENDED_POLL:
            return False
    raise DeadlineExceeded("the call ended while it waited for the database's write lock")


@contextlib.contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one snapshot of the database, taking no write
    lock, rolled back at the end: a long read of a live database (`audit verify`, an
    anchor) sees no commit made while it reads. PostgreSQL: REPEATABLE READ; SQLite: a
    deferred BEGIN (in WAL mode its first read fixes the snapshot; writers go on)."""
    options: dict[str, Any] = {_SNAPSHOT: True}
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect() as connection:
        connection = connection.execution_options(**options)
        with connection.begin() as transaction:
            yield connection
            transaction.rollback()


def _release_gate(connection: Connection) -> None:
    """The gate `connection` holds, opened; an invalidated connection (a lost or replaced
    one: `_replace_read_only`) had it opened by the pool's "invalidate" (its `info` is
    then out of reach until the rollback)."""
    if not connection.invalidated:
        _open_gate(connection.info)


def _open_gate(info: dict[Any, Any]) -> None:
    gate = info.pop(_GATE, None)
    if gate is not None:
        gate.release()


# ---------------------------------------------------------------- deadlines


class Watchdog:
    """Cuts database connections held past their deadline, from one thread for all: a
    PostgreSQL socket is shut down (the blocked read fails at once, whatever the network
    does), a SQLite statement is interrupted. The connection is then invalidated by the
    pool and the call answers UNAVAILABLE, or DEADLINE_EXCEEDED past its own deadline.

    Every checkout is watched, so a watch must cost little: the thread is woken only by
    a watch due sooner than every other (not at every checkout, which cost a thread wake
    and a GIL hand-over per database call), and when it wakes it clears every watch that
    has come due, waking up to `SLACK` late so that one wake clears many (a cut 50 ms
    past a deadline of seconds is as good; a released connection's watch is cleared
    unfired)."""

    SLACK = 0.05

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, dbapi_connection: Any, seconds: float) -> _Guard:
        guard = _Guard(dbapi_connection)
        when = time.monotonic() + seconds
        with self._cond:
            sooner = not self._heap or when < self._heap[0][0]
            heapq.heappush(self._heap, (when, next(self._seq), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            if sooner:  # else the thread already wakes before this one is due
                self._cond.notify()
        return guard

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait + self.SLACK)
                    continue
                due = []
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            for guard in due:
                guard.fire()


class _Guard:
    def __init__(self, dbapi_connection: Any) -> None:
        self._connection: Any = dbapi_connection
        self._lock = threading.Lock()
        self.fired = False

    def cancel(self) -> None:
        with self._lock:
            self._connection = None

    def fire(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is None:
                return
            self.fired = True
            _log.warning("database connection held past its deadline: cut")
            with contextlib.suppress(Exception):
                _interrupt(connection)


def _interrupt(connection: Any) -> None:
    if isinstance(connection, sqlite3.Connection):
        connection.interrupt()
        return
    fd = connection.fileno()  # psycopg: shut the socket down under libpq's feet
    cut = socket.socket(fileno=os.dup(fd))
    try:
        cut.shutdown(socket.SHUT_RDWR)
    finally:
        cut.close()


WATCHDOG = Watchdog()


# A connection back in the pool for less than this is not pinged at its next checkout
# (HikariCP's "alive bypass window", 500 ms there): under load every call would
# otherwise pay one more round trip for a connection that just answered. A connection
# that died meanwhile fails its call's first statement as unavailable, and SQLAlchemy
# then replaces every connection of the pool that predates the failure.
PING_AFTER_IDLE = 1.0
_USED_AT = "used_at"


def _alive(dbapi_connection: Any) -> None:
    """One round trip: raises if the connection is dead."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SELECT 1")
    cursor.close()


def _needs_ping(info: dict[Any, Any]) -> bool:
    """Whether a checked-out connection should be pinged: it sat idle in the pool longer
    than PING_AFTER_IDLE. A connection just made (its info is cleared on every reconnect)
    has nothing to prove."""
    used_at = info.get(_USED_AT)
    return used_at is not None and time.monotonic() - used_at > PING_AFTER_IDLE


def _guard_connections(engine: Engine, hold: float | None, *, ping: bool) -> None:
    """Every checkout is watched until checkin, for the sooner of `hold` and the caller's
    deadline; PostgreSQL connections idle for more than PING_AFTER_IDLE are pinged under
    that watch (SQLAlchemy's own pre-ping would run before it, unbounded, and on every
    checkout)."""

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        left = time_left()
        if left is not None and left <= 0:
            raise DeadlineExceeded("the caller's deadline passed before the database was reached")
        limits = [x for x in (hold, left) if x is not None]
        if not limits:
            return
        guard = WATCHDOG.watch(dbapi_connection, min(limits))
        record.info["guard"] = guard
        if not ping or not _needs_ping(record.info):
            return
        try:
            _alive(dbapi_connection)
        except Exception as exc:
            guard.cancel()
            record.info.pop("guard", None)
            if guard.fired and left is not None:
                raise DeadlineExceeded("the database did not answer before the deadline") from exc
            raise sa_exc.DisconnectionError(str(exc)) from exc  # the pool reconnects once

    def release(record: Any) -> None:
        guard = record.info.pop("guard", None) if record is not None else None
        if guard is not None:
            guard.cancel()

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        guard = record.info.get("guard") if record is not None else None
        release(record)
        if record is not None:
            # a connection the watchdog cut on its way back is pinged (and replaced) next
            cut = guard is not None and guard.fired
            record.info[_USED_AT] = float("-inf") if cut else time.monotonic()

    @event.listens_for(engine, "invalidate")
    def on_invalidate(_dbapi_connection: Any, record: Any, _exc: Any) -> None:
        release(record)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def log_bytes(connection: Any) -> int | None:
    """The size of the write-ahead log file (`<file>-wal`; 0: none) of the SQLite file
    database a DBAPI `connection` has open, named as SQLite names it (`PRAGMA
    database_list`: the file it opened, symlinks resolved, whatever form the URL took):
    the most the log has held since it was last truncated (a log started over is written
    again from its start, its file keeping its size). None for an in-memory database."""
    rows = connection.execute("PRAGMA database_list").fetchall()
    name = next((row[2] for row in rows if row[1] == "main"), "")
    if not name:
        return None
    try:
        return os.stat(f"{name}-wal").st_size
    except FileNotFoundError:
        return 0


def once(setup: Callable[[], None]) -> Callable[[], None]:
    """`setup` as a function that runs it the first time it is called, and never again,
    however many threads call it at once (mapping the ORM: the servers call it before
    they serve; the lock keeps any other first callers from mapping twice)."""
    lock = threading.Lock()
    done = False

    def run() -> None:
        nonlocal done
        if done:
            return
        with lock:
            if not done:
                setup()
                done = True

    return run


def ping(engine: Engine) -> None:
    """A health check on a raw DBAPI connection of the engine's pool: the database
    answers and can take writes (`check_writable`). No SQLAlchemy "begin", which on
    SQLite is BEGIN IMMEDIATE and would queue behind writers. Raises when the database
    does not answer, or DatabaseReadOnly when it cannot write. A pooled connection that
    died (pooled connections are not pinged within PING_AFTER_IDLE) is dropped and the
    check made once more: one dead connection is not a database that does not answer. A
    connection that found the database read-only is dropped too, so the next check sees
    the database as it is then (a PostgreSQL session keeps the
    default_transaction_read_only it started with)."""
    for last in (False, True):
        connection = engine.raw_connection()
        reused = _USED_AT in connection.info  # else made just now: its failure is the answer
        try:
            check_writable(connection, engine.dialect.name)
            connection.commit()  # not the pool's ROLLBACK: psycopg drops its prepared statements
            return
        except DatabaseReadOnly:
            connection.invalidate()
            raise
        except Exception:
            connection.invalidate()
            if last or not reused:
                raise
        finally:
            connection.close()


# One round trip, no write, nothing left behind: a hot standby is in recovery, and a
# session under default_transaction_read_only (or on a standby) reports
# transaction_read_only on.
_PG_WRITABLE = "SELECT current_setting('transaction_read_only'), pg_is_in_recovery()"


def check_writable(dbapi_connection: Any, dialect: str) -> None:
    """Raise DatabaseReadOnly unless the database behind `dbapi_connection` can take
    writes (review 57 D1: the probe's SELECT 1 succeeded on a read-only database, and
    health stayed SERVING while every write failed). It writes nothing, so it costs no
    WAL, no fsync and no lock, and never waits behind writers:

    - PostgreSQL: whether the server is in recovery (a hot standby: a failover or a DNS
      change pointed the pool at it) or this session's transactions are read-only
      (default_transaction_read_only, set on the database for maintenance);
    - SQLite: whether this process may write the database file, its write-ahead log and
      shared-memory files and, when those must be created, the folder (a read-only remount,
      permissions or an immutable flag after a restore). The rights are asked of the
      kernel (access(2)), so they include what binds root (a read-only mount, chattr +i).

    On SQLite it also asks the kernel how much room the file's filesystem has left
    (statvfs(2)): below SQLITE_MIN_FREE_BYTES it raises DatabaseFull (review 68: with the
    disk full every write failed while health read SERVING).

    A real write would say more (a full disk on PostgreSQL's server, a stalled
    synchronous standby) but costs a WAL record and an fsync every probe, needs a table
    of its own, and on SQLite would queue for the one write lock behind every writer;
    those faults fail their writes UNAVAILABLE all the same."""
    cursor = dbapi_connection.cursor()
    try:
        if dialect == "sqlite":
            rows = cursor.execute("PRAGMA database_list").fetchall()
            name = next((row[2] for row in rows if row[1] == "main"), "")
            if name:  # else in memory
                _sqlite_writable(Path(name))
                _sqlite_has_room(Path(name))
            return
        cursor.execute(_PG_WRITABLE)
        read_only, in_recovery = cursor.fetchone()
    finally:
        cursor.close()
    if in_recovery:
        raise DatabaseReadOnly("the database is a standby in recovery: it takes no writes")
    if read_only == "on":
        raise DatabaseReadOnly("the database's sessions are read-only (transaction_read_only)")


def _sqlite_writable(path: Path) -> None:
    """What SQLite needs to write `path` in WAL mode as things stand: the file, and its
    write-ahead log and shared-memory files. The folder only when one of those two is
    missing and would have to be created (review 61 R61-4: a read-only folder turned
    health NOT_SERVING while every write succeeded). With both files present SQLite
    never needs the folder: writes, checkpoints (a TRUNCATE checkpoint truncates the log
    in place) and new connections use the files as they are; the last connection's
    close tries to delete them and, if it cannot, leaves them for the next open. Without
    them (a clean shutdown deletes them, and a rollback-journal database has none)
    the first connection must create them: with a read-only folder SQLite cannot even
    read ("unable to open database file"), so the folder counts then."""
    effective = os.access in os.supports_effective_ids
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    needed = [path, wal, shm]
    if not (wal.exists() and shm.exists()):
        needed.append(path.parent)
    for each in needed:
        if each.exists() and not os.access(each, os.W_OK, effective_ids=effective):
            raise DatabaseReadOnly(f"the database is read-only: this process cannot write {each}")


# Below this much free space on the SQLite file's filesystem, health reads the database
# as sick (review 68): a transaction's write-ahead log frames need room (a page each, 4 KB
# by default, the log growing until the next checkpoint), and with none left every write
# fails SQLITE_FULL while a probe that writes nothing still answered.
SQLITE_MIN_FREE_BYTES = 1 << 20


def _sqlite_has_room(path: Path) -> None:
    """Raise DatabaseFull when the filesystem holding `path` has less than
    SQLITE_MIN_FREE_BYTES left for this process (root may use the blocks reserved for it,
    others only what is available to everyone). statvfs(2): no write, no lock."""
    try:
        fs = os.statvfs(path.parent)
    except OSError:
        return  # the file's own checks say what is wrong with the folder
    blocks = fs.f_bfree if os.geteuid() == 0 else fs.f_bavail
    free = blocks * fs.f_frsize
    if free < SQLITE_MIN_FREE_BYTES:
        raise DatabaseFull(
            f"the disk holding {path.name} is full ({free // 1024} KB free): writes fail"
        )


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """MetaData with the naming convention both services' migrations rely on."""
    return MetaData(naming_convention=NAMING_CONVENTION)


# Set at every BEGIN, cleared by the first statement that is not a plain SELECT or by
# taking the driver's connection (`driver_of`): whether a transaction has only read so
# far. A SELECT that may write (several statements, SELECT … INTO, set_config, pg_notify,
# large objects) counts as a write. A function called by a SELECT that writes in ways
# the text does not show would be missed: the services call none.
_READS_ONLY = "reads_only"
_NOT_ONLY_READING = re.compile(r";|\bINTO\b|set_config|pg_notify|\blo_", re.IGNORECASE)


def _watch_writes(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.info[_READS_ONLY] = True

    @event.listens_for(engine, "before_cursor_execute")
    def on_execute(connection: Connection, *args: Any) -> None:
        statement: str = args[1]
        plain_select = statement.lstrip()[:6].upper() == "SELECT"
        if not plain_select or _NOT_ONLY_READING.search(statement) is not None:
            connection.info.pop(_READS_ONLY, None)


def wrote(connection: Connection) -> bool:
    """Whether `connection`'s transaction may have written: True unless every statement
    since its BEGIN went through SQLAlchemy and was a SELECT (an engine not made by
    make_engine always says True)."""
    return not connection.info.get(_READS_ONLY, False)


def as_dbapi_error(
    exc: psycopg.Error | sqlite3.Error, statement: str, connection: Connection
) -> Exception:
    """A driver's error (psycopg's or sqlite3's) raised through `driver_of`'s connection,
    as SQLAlchemy would have raised it (OperationalError for a statement timeout or a
    busy file, IntegrityError…), so callers that map errors by SQLAlchemy's classes (the
    phone page's 503) see it alike; no parameter is kept. One that says the connection
    cannot write (`cannot_write`) also replaces that connection, as `_replace_read_only`
    does for SQLAlchemy's own statements (review 66): left in the pool, a session that
    started read-only would fail the first write after the database takes writes again."""
    base = sqlite3.Error if isinstance(exc, sqlite3.Error) else psycopg.Error
    replace = cannot_write(exc)
    error = sa_exc.DBAPIError.instance(
        statement,
        None,
        exc,
        base,
        hide_parameters=True,
        connection_invalidated=replace,
        dialect=connection.dialect,
    )
    if replace and not connection.invalidated:
        connection.invalidate(exc)  # this connection alone, as `_replace_read_only`
    return error


def driver_of(connection: Connection) -> Any:
    """The driver's own connection under `connection` (psycopg's pipelines, COPY): what
    it runs is out of SQLAlchemy's sight, so the transaction counts as written."""
    connection.info.pop(_READS_ONLY, None)
    driver = connection.connection.driver_connection
    assert driver is not None
    return driver


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


# SQLite result codes that say "not now" rather than "this is a bug": busy or locked past
# the busy timeout, out of memory, read-only (a file this process can no longer write: a
# read-only remount, permissions or an immutable flag after a restore; review 57 D1),
# interrupted (a deadline), I/O error, disk full, cannot open the file, lock protocol.
# Compared on the primary code (the low byte of an extended one: SQLITE_READONLY_* too).
_SQLITE_TRANSIENT = frozenset({5, 6, 7, 8, 9, 10, 13, 14, 15})
SQLITE_READONLY = 8
# PostgreSQL SQLSTATEs that say "not now" though psycopg's class for them is not an
# OperationalError: 25006 read_only_sql_transaction (an InternalError), what a write gets
# from a hot standby after a failover or from a database made read-only
# (default_transaction_read_only) (review 57 D1).
PG_READ_ONLY = "25006"
_PG_TRANSIENT = frozenset({PG_READ_ONLY})


class DatabaseReadOnly(RuntimeError):
    """The database answers but cannot take writes (`check_writable`): a hot standby, a
    read-only PostgreSQL session or database, a SQLite file this process cannot write."""


class DatabaseFull(RuntimeError):
    """The SQLite file's filesystem has (almost) no room left (`check_writable`): every
    write fails SQLITE_FULL. Unlike DatabaseReadOnly, health counts it as a failed probe
    (3 of the last 4 turn NOT_SERVING): a full disk may be a moment's burst."""


def cannot_write(exc: BaseException) -> bool:
    """Whether `exc` says the database, or the connection it came through, cannot write:
    SQLSTATE 25006 or SQLITE_READONLY, bare or wrapped by SQLAlchemy. Such a connection
    is replaced (`make_engine`'s handle_error), so one made read-only while the database
    was (a session that started on a standby or under default_transaction_read_only,
    SQLite's read-only fallback) does not keep failing once the database takes writes."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, DatabaseReadOnly):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == SQLITE_READONLY
    return isinstance(exc, psycopg.Error) and exc.sqlstate == PG_READ_ONLY


def lost_a_race(exc: BaseException) -> bool:
    """True when PostgreSQL rolled the transaction back because it lost to a concurrent
    one: a deadlock (40P01) or a serialization failure (40001), and no other code of
    SQLSTATE class 40 (review 38 N5: "statement completion unknown", 40003, says nothing
    of a race). `database_unavailable` counts these too (a caller may retry), but work
    that holds several locks in one transaction (a group of orders) can take its parts
    again one at a time instead, where the same race cannot form."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    # by SQLSTATE: psycopg's DeadlockDetected is an OperationalError, not a TransactionRollback
    return isinstance(exc, psycopg.Error) and exc.sqlstate in _LOST_RACE


_LOST_RACE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot take the call now (down, restarting,
    unreachable, stalled past a timeout, locked past the busy timeout, disk full,
    read-only: a standby after a failover, a file it cannot write), so the caller may
    retry (health says NOT_SERVING meanwhile); the transaction it was in is rolled back.
    One place for both services: the gRPC error mapping and the phone page ask it."""
    if isinstance(exc, sa_exc.TimeoutError | DatabaseReadOnly):  # no pooled connection
        return True  # within pool_timeout; a database that answers but cannot write
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.Error):  # by result code, never by message text
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_TRANSIENT
    # psycopg: connection failures, server shutdown, query cancelled by statement_timeout,
    # disk full and other insufficient resources are OperationalError; a closed
    # connection is InterfaceError. Constraint and syntax errors are neither. A read-only
    # transaction (25006) is an InternalError: by its SQLSTATE (_PG_TRANSIENT).
    if isinstance(exc, psycopg.Error) and exc.sqlstate in _PG_TRANSIENT:
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


# ------------------------------------------------- statements sent by the driver itself
# A short statement's execution through SQLAlchemy (its compiled-cache lookup, the
# execution context, each parameter gathered and processed) can cost more than SQLite's
# own work: a hot path built once sends such statements to the driver directly.

_COMPILED: dict[tuple[Any, str], Any] = {}  # statements sent by the driver, compiled once
_COMPILED_MAX = 512  # bounded: keyed by query objects, which a full query cache builds anew


def compiled_once(statement: Any, dialect: Any) -> Any:
    """`statement` (built once) compiled for `dialect`, once (`_COMPILED`)."""
    key = (statement, dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        if len(_COMPILED) >= _COMPILED_MAX:  # queries built anew (their cache evicted)
            _COMPILED.clear()
        compiled = _COMPILED[key] = statement.compile(dialect=dialect)
    return compiled


def driver_values(compiled: Any, params: dict[str, Any]) -> dict[str, Any]:
    """`params` as the driver takes them for `compiled`: through the columns' bind
    processors (JSON, dates and instants stored as SQLAlchemy stores them), as
    SQLAlchemy's execution would. Reads the compiled statement's `_bind_processors`,
    which SQLAlchemy keeps private: tests compare the rows each path writes with
    SQLAlchemy's (booking's test_order_statements.py and test_dispatch_query.py, the
    audit trail's test_audit_driver.py)."""
    values: dict[str, Any] = compiled.construct_params(params)
    for name, process in compiled._bind_processors.items():
        if name in values and not isinstance(process, tuple):
            values[name] = process(values[name])
    return values


def sqlite_driver_run(
    connection: Connection, statement: Any, params: dict[str, Any] | list[dict[str, Any]]
) -> list[Any]:
    """SQLite: `statement` (built once: compiled once, `compiled_once`; no expanding
    parameter) run by the driver on `connection`'s transaction, without SQLAlchemy's
    execution; a list of parameter sets runs it once for each (executemany, no rows).
    Its rows as the driver's tuples (no column these read may have a result processor).
    The parameters go through the columns' bind processors (`driver_values`), the
    transaction counts as written (`driver_of`), and a failure is raised as SQLAlchemy
    would raise it (`as_dbapi_error`)."""
    compiled = compiled_once(statement, connection.dialect)
    driver = driver_of(connection)
    try:
        if isinstance(params, list):
            rows = [_positional(compiled, p) for p in params]
            driver.executemany(compiled.string, rows)
            return []
        return list(driver.execute(compiled.string, _positional(compiled, params)).fetchall())
    except sqlite3.Error as exc:
        raise as_dbapi_error(exc, compiled.string, connection) from exc


def _positional(compiled: Any, params: dict[str, Any]) -> list[Any]:
    """`params` in the order of `compiled`'s positional parameters, each through its
    column's bind processor: `driver_values`' answer, taken straight from `params` and
    the values the statement binds itself (a LIMIT's: `_own_values`) when those name
    every parameter as the SQL does (SQLAlchemy's parameter gathering, a few
    microseconds a parameter, adds nothing then: a group's audit rows have hundreds,
    dispatch's booking two dozen)."""
    names = compiled.positiontup or ()
    own = _own_values(compiled)
    if own is None or not all(name in params or name in own for name in names):
        values = driver_values(compiled, params)  # a callable value, an escaped name
        return [values[name] for name in names]
    processors = compiled._bind_processors
    out = []
    for name in names:
        value = params[name] if name in params else own[name]
        process = processors.get(name)
        out.append(value if process is None or isinstance(process, tuple) else process(value))
    return out


_OWN_VALUES: dict[Any, dict[str, Any] | None] = {}


def _own_values(compiled: Any) -> dict[str, Any] | None:
    """The values `compiled`'s statement binds itself (bind parameters that need none
    from the call, such as a LIMIT's), by name, as construct_params would take them;
    None when one is computed (a callable) or a name is escaped in the SQL (then
    `driver_values` gathers them). Kept for the statements `_COMPILED` keeps."""
    if compiled in _OWN_VALUES:
        return _OWN_VALUES[compiled]
    own: dict[str, Any] | None = {}
    if compiled.escaped_bind_names:
        own = None
    else:
        for bind, name in compiled.bind_names.items():
            if bind.callable is not None:
                own = None
                break
            if not bind.required:
                own[name] = bind.value  # type: ignore[index]
    if len(_OWN_VALUES) >= _COMPILED_MAX:
        _OWN_VALUES.clear()
    _OWN_VALUES[compiled] = own
    return own
