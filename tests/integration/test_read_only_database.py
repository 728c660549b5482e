"""A database that answers but cannot write (review 57 D1): PostgreSQL after a failover
onto a hot standby, or made read-only for maintenance (`default_transaction_read_only`),
and a SQLite file the process can no longer write (a read-only remount, permissions or
an immutable flag after a restore).

Writes must answer UNAVAILABLE with a retry hint (they answered INTERNAL with a
traceback), health must turn NOT_SERVING (it stayed SERVING: its probe only read), reads
go on, and once the database takes writes again everything recovers without a restart.
Both services share the classification (services/common/db.py) and the probe
(services/common/server.py); booking's gRPC calls, its phone page and its /healthz are
checked too. Real servers, real databases; nothing asserts a duration.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
import structlog
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.web import create_web_app
from services.common import db
from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import DbTimeouts, database_unavailable, make_engine, ping
from services.common.http_server import start_http
from services.common.server import Limits
from services.rules.adapters import migrate
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.booking_env import running_pair
from tests.faults import pg_database, wait_until
from tests.integration.conftest import PG_ADMIN_URL
from tests.support import complaint_event, profile, uscc

RULES = grpc_server.SERVICE_NAME
BOOKING = booking_grpc.SERVICE_NAME
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _admin(sql: str, **params: object) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql), params)
    finally:
        admin.dispose()


def read_only(url: str, on: bool, *, cut: bool) -> None:
    """The database of `url` read-only for new sessions (`on`) or writable again; `cut`:
    its sessions end, as in a failover (the pools reconnect, onto the standby)."""
    name = make_url(url).database
    if on:
        _admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    else:
        _admin(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    if cut:
        _admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()",
            name=name,
        )


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _upsert(n: int) -> pb.UpsertEnterpriseRequest:
    return pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n)))


@dataclass
class Rules:
    """A rules server on `engine`, its database health watched every 0.2 s."""

    engine: Engine
    stub: rules_pb2_grpc.RulesServiceStub
    health: health_pb2_grpc.HealthStub

    def status(self) -> int:
        request = health_pb2.HealthCheckRequest(service=RULES)
        return int(self.health.Check(request, timeout=10).status)

    def refused_writes(self, tag: str) -> list[grpc.RpcError]:
        """Three events and three upserts, each expected to fail: their errors."""
        errors = []
        for i in range(3):
            for call in (
                lambda i=i: self.stub.ReportEvent(complaint_event(1, f"{tag}-{i}"), timeout=30),
                lambda i=i: self.stub.UpsertEnterprise(_upsert(20 + i), timeout=30),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                errors.append(info.value)
        return errors


@contextlib.contextmanager
def rules_on(engine: Engine, rulebook: Rulebook) -> Iterator[Rules]:
    running = grpc_server.build(rulebook, engine=engine, address="127.0.0.1:0", limits=Limits(4, 4))
    running.server.start()
    watcher = common_server.watch_database(
        engine, running.health, [RULES], interval=0.2, probe_timeout=2
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Rules(
            engine,
            rules_pb2_grpc.RulesServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )
    finally:
        watcher.set()
        channel.close()
        running.server.stop(None)


def _assert_unavailable(errors: list[grpc.RpcError]) -> None:
    for error in errors:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        assert dict(error.trailing_metadata() or ()).get("retry-after")


def _unhandled(logged: list[dict[str, object]]) -> list[object]:
    return [e["event"] for e in logged if "unhandled" in str(e.get("event"))]


def test_a_read_only_postgresql_refuses_writes_unavailable_and_health_says_so(
    rulebook: Rulebook,
) -> None:
    with pg_database(PG_ADMIN_URL, "readonly") as url:
        engine = make_engine(url, pool_size=4, timeouts=DbTimeouts(statement=5))
        migrate.upgrade(engine)
        try:
            with rules_on(engine, rulebook) as rules, structlog.testing.capture_logs() as logged:
                rules.stub.UpsertEnterprise(_upsert(1), timeout=30)
                read_only(url, True, cut=True)  # a failover onto a standby
                # the first call after the cut may meet a dead pooled connection: also
                # UNAVAILABLE; every later one meets the read-only database
                _assert_unavailable(rules.refused_writes("ro"))
                assert not _unhandled(logged)
                wait_until(lambda: rules.status() == NOT_SERVING, timeout=20)
                status = rules.stub.GetEnterpriseStatus(
                    pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=30
                )
                assert status.profile.enterprise_id == uscc(1)  # reads go on
                # writable again, the sessions left alone: the pool's read-only
                # connections are replaced, not kept failing until a restart
                read_only(url, False, cut=False)
                wait_until(
                    lambda: (
                        _code(lambda: rules.stub.ReportEvent(complaint_event(1, "rw"), timeout=30))
                        == grpc.StatusCode.OK
                    ),
                    timeout=30,
                )
                wait_until(lambda: rules.status() == SERVING, timeout=30)
                assert not _unhandled(logged)
        finally:
            read_only(url, False, cut=False)
            engine.dispose()


def test_booking_on_a_read_only_postgresql_answers_unavailable_and_503(tmp_path: Path) -> None:
    """Booking's gRPC write, its phone page's order and /healthz (the same classification
    and the same writability check as the gRPC health)."""
    with running_pair(tmp_path, "postgresql", pg_admin_url=PG_ADMIN_URL) as pair:
        url = pair.booking_engine.url.render_as_string(hide_password=False)
        enterprise_id = pair.register_firm(1)
        token = pair.issue(enterprise_id).token
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        http = start_http(create_web_app(pair.ctx, pair.booking_engine))
        checker = grpc_health.HealthServicer()  # as `booking serve` watches its database
        watcher = common_server.watch_database(
            pair.booking_engine, checker, [BOOKING], interval=0.2, probe_timeout=2
        )

        def booking_health() -> int:
            request = health_pb2.HealthCheckRequest(service=BOOKING)
            return int(checker.Check(request, None).status)

        try:
            with (
                httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=30) as client,
                structlog.testing.capture_logs() as logged,
            ):
                assert client.get("/healthz").status_code == 200
                form = client.get(f"/q/{token}/order")
                found = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
                assert found, form.text[:300]
                key = found.group(1)
                read_only(url, True, cut=True)
                errors = []
                for i in range(3):
                    with pytest.raises(grpc.RpcError) as info:
                        pair.expert(f"E{i + 2}", ["dust_explosion"], ["稠城街道"])
                    errors.append(info.value)
                _assert_unavailable(errors)
                page = client.post(
                    f"/q/{token}/order",
                    data={
                        "item_codes": ["dust_explosion"],
                        "preferred_slots": [pair.slot(2), pair.slot(3, "PM")],
                        "contact_name": "王经理",
                        "contact_phone": "13812345678",
                        "idempotency_key": key,
                    },
                )
                assert page.status_code == 503, page.text[:300]
                assert "服务暂时不可用" in page.text
                assert client.get("/healthz").status_code == 503
                wait_until(lambda: booking_health() == NOT_SERVING, timeout=20)
                assert not [e for e in logged if e.get("event") == "unexpected error"]
                assert not _unhandled(logged)
                read_only(url, False, cut=False)
                wait_until(
                    lambda: (
                        _code(lambda: pair.expert("E9", ["dust_explosion"], ["稠城街道"]))
                        == grpc.StatusCode.OK
                    ),
                    timeout=30,
                )
                wait_until(lambda: client.get("/healthz").status_code == 200, timeout=30)
                wait_until(lambda: booking_health() == SERVING, timeout=30)
        finally:
            watcher.set()
            http.stop()
            read_only(url, False, cut=False)


def _immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(
        ["chattr", "+i" if on else "-i", *[str(p) for p in paths if p.exists()]],
        check=True,
        capture_output=True,
    )


def _chattr_works(folder: Path) -> bool:
    probe = folder / "chattr-probe"
    probe.write_text("x")
    try:
        _immutable([probe], True)
    except (OSError, subprocess.CalledProcessError):
        return False
    _immutable([probe], False)
    probe.unlink()
    return True


def test_an_unwritable_sqlite_file_refuses_writes_unavailable_and_health_says_so(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    """The file, its write-ahead log and its folder made immutable (`chattr +i`, which
    binds root too; not the -shm, which SQLite maps into memory: review 57 N2), and the
    pool's connections replaced, as after a restart or a restore: new connections open
    the file read-only and every write fails with SQLITE_READONLY."""
    folder = tmp_path / "db"
    folder.mkdir()
    if not _chattr_works(folder):
        pytest.skip("chattr +i is not available here (needs root and a filesystem with it)")
    path = folder / "rules.db"
    engine = make_engine(f"sqlite:///{path}", timeouts=DbTimeouts(statement=5))
    migrate.upgrade(engine)
    files = [path, Path(f"{path}-wal"), folder]
    try:
        with rules_on(engine, rulebook) as rules, structlog.testing.capture_logs() as logged:
            rules.stub.UpsertEnterprise(_upsert(1), timeout=30)
            _immutable(files, True)
            engine.dispose()  # connections made from now on see the file as it is now
            _assert_unavailable(rules.refused_writes("ro"))
            assert not _unhandled(logged)
            wait_until(lambda: rules.status() == NOT_SERVING, timeout=20)
            _immutable(files, False)
            wait_until(
                lambda: (
                    _code(lambda: rules.stub.ReportEvent(complaint_event(1, "rw"), timeout=30))
                    == grpc.StatusCode.OK
                ),
                timeout=30,
            )
            wait_until(lambda: rules.status() == SERVING, timeout=30)
    finally:
        _immutable(files, False)
        engine.dispose()


def test_a_read_only_sqlite_folder_is_not_a_read_only_database(tmp_path: Path) -> None:
    """Review 61 R61-4: the folder made immutable while the file, its write-ahead log and
    shared-memory file stay writable: every write succeeds, on the pool's connections
    and on a new engine's, so health must not say read-only. Once the log and the
    shared memory are gone (a clean shutdown), the folder is needed to create them:
    then SQLite cannot open the database at all, and the check says so."""
    folder = tmp_path / "db"
    folder.mkdir()
    if not _chattr_works(folder):
        pytest.skip("chattr +i is not available here (needs root and a filesystem with it)")
    path = folder / "rules.db"
    engine = make_engine(f"sqlite:///{path}", timeouts=DbTimeouts(statement=5))
    migrate.upgrade(engine)
    fresh = None
    try:
        with engine.connect() as conn:  # -wal and -shm exist while a connection is open
            conn.execute(text("SELECT 1"))
        assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        _immutable([folder], True)
        fresh = make_engine(f"sqlite:///{path}", timeouts=DbTimeouts(statement=5))
        for each in (engine, fresh):
            with each.begin() as conn:
                conn.execute(text("UPDATE feed_head SET publisher = 'written'"))
            ping(each)  # raised DatabaseReadOnly
        fresh.dispose()
        engine.dispose()
        _immutable([folder], False)
        with engine.connect() as conn:  # a clean close: SQLite deletes -wal and -shm
            conn.execute(text("SELECT 1"))
        engine.dispose()
        assert not Path(f"{path}-wal").exists()
        _immutable([folder], True)
        with pytest.raises(db.DatabaseReadOnly):
            db._sqlite_writable(path)
    finally:
        _immutable([folder], False)
        engine.dispose()
        if fresh is not None:
            fresh.dispose()


# ---------------------------------------------------------------- the classification


def test_read_only_errors_are_classified_by_their_codes(tmp_path: Path) -> None:
    """A real SQLITE_READONLY (8) and a real SQLSTATE 25006 (psycopg's InternalError)
    say "unavailable", bare or as SQLAlchemy wraps them; another InternalError (25P02, a
    statement in an aborted transaction: a bug of ours) does not."""
    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (n integer)").connection.commit()
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as sqlite_error:
        ro.execute("INSERT INTO t VALUES (1)")
    ro.close()
    assert sqlite_error.value.sqlite_errorcode == sqlite3.SQLITE_READONLY
    assert database_unavailable(sqlite_error.value)
    with pg_database(PG_ADMIN_URL, "readonly") as url:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("CREATE TABLE t (n integer)")
                conn.commit()
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                with pytest.raises(sa_exc.DBAPIError) as read_only_error:
                    conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                conn.rollback()
                with pytest.raises(sa_exc.DBAPIError):
                    conn.exec_driver_sql("SELECT 1 / 0")
                with pytest.raises(sa_exc.DBAPIError) as aborted:
                    conn.exec_driver_sql("SELECT 1")
                conn.rollback()
        finally:
            engine.dispose()
    assert isinstance(read_only_error.value.orig, psycopg.errors.ReadOnlySqlTransaction)
    assert database_unavailable(read_only_error.value)
    assert database_unavailable(read_only_error.value.orig)
    assert isinstance(aborted.value.orig, psycopg.errors.InFailedSqlTransaction)
    assert not database_unavailable(aborted.value)


def test_the_health_ping_says_a_read_only_postgresql_cannot_take_writes() -> None:
    """db.ping (the phone page's /healthz) on a database that answers but is read-only."""
    with pg_database(PG_ADMIN_URL, "readonly") as url:
        engine = make_engine(url, timeouts=DbTimeouts(statement=5))
        try:
            ping(engine)
            read_only(url, True, cut=True)
            with pytest.raises(Exception) as info:
                ping(engine)
            assert database_unavailable(info.value)
            assert "read-only" in str(info.value)
        finally:
            read_only(url, False, cut=False)
            engine.dispose()


@pytest.fixture(autouse=True)
def _no_stray_immutable_flags(tmp_path: Path) -> Iterator[None]:
    """pytest must be able to remove tmp_path whatever a test left."""
    yield
    for root, dirs, files in os.walk(tmp_path):
        for name in [*dirs, *files]:
            with contextlib.suppress(Exception):
                subprocess.run(["chattr", "-i", os.path.join(root, name)], capture_output=True)
