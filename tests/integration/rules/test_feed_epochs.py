"""The change feed's epoch (review 58 F1): a cursor names the feed that gave it, so a
feed restored from a backup (`backup`/`restore` on SQLite, `pg_dump`/`pg_restore` on
PostgreSQL), or another deployment's feed, refuses it with FAILED_PRECONDITION instead of
silently skipping the changes the restored feed gave their positions to; bare cursors
given before feeds had epochs still work as far as the feed can vouch for them."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text

from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.db import make_engine
from services.common.migrations import alembic_config
from services.rules.adapters import migrate
from services.rules.adapters.feed import FeedStore
from services.rules.domain.changes import ResyncRequired, parse_cursor
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.cli import main
from services.rules.service_layer.feed import follow
from tests.integration.conftest import PG_ADMIN_URL, Clock, upsert
from tests.integration.rules.test_change_feed import resync_cause, take
from tests.support import profile, uscc


@contextmanager
def serving(engine: Engine, rulebook: Any) -> Iterator[RulesServiceStub]:
    server, port = grpc_server.create_server(rulebook, engine=engine, today=Clock())
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield RulesServiceStub(channel)
    finally:
        channel.close()
        server.stop(None)


def refused(stub: RulesServiceStub, cursor: str) -> str:
    """The FAILED_PRECONDITION a follower resuming from `cursor` gets: its cause (the
    ErrorInfo a client reads), then its details (the message, for people)."""
    with pytest.raises(grpc.RpcError) as info:
        take(stub, 1, after=cursor)
    return f"{resync_cause(info.value, cursor)}: {info.value.details()}"


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_a_cursor_the_restored_feed_has_passed_is_refused(tmp_path: Path, rulebook: Any) -> None:
    """Review 58 F1 as found: a backup at 3 firms, 3 more firms, the follower saves the
    cursor of change 12; `restore`, and 4 firms register while the follower is away, so
    the restored feed runs past 12 with other changes. Resuming from the saved cursor was
    accepted and changes 7-12 never came; now it is refused, and an empty cursor replays
    the restored feed."""
    url = f"sqlite:///{tmp_path / 'rules.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with serving(engine, rulebook) as stub:
        for n in range(1, 4):
            upsert(stub, profile(n))
        assert main(["backup", "--out", str(tmp_path / "backup.db"), "--db", url]) == 0
        for n in range(4, 7):
            upsert(stub, profile(n))
        saved = take(stub, 12)[-1].cursor
    engine.dispose()
    assert main(["restore", "--from", str(tmp_path / "backup.db"), "--db", url]) == 0
    engine = make_engine(url)
    with serving(engine, rulebook) as stub:
        for n in range(7, 11):
            upsert(stub, profile(n))
        replayed = take(stub, 14)  # another follower: the restored feed runs past 12
        assert "OTHER_EPOCH: cursor" in refused(stub, saved)
    engine.dispose()
    assert {c.enterprise_id for c in replayed} == {uscc(n) for n in (1, 2, 3, 7, 8, 9, 10)}
    assert parse_cursor(replayed[-1].cursor).position == 14


def test_a_copy_of_a_backup_put_back_by_hand_renews_the_epoch_too(
    tmp_path: Path, rulebook: Any
) -> None:
    """`backup` marks its copy: a database that is such a copy renews its epoch when it is
    first read, however it came back (here: copied over the database file)."""
    url = f"sqlite:///{tmp_path / 'rules.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    with serving(engine, rulebook) as stub:
        upsert(stub, profile(1))
        assert main(["backup", "--out", str(tmp_path / "backup.db"), "--db", url]) == 0
        upsert(stub, profile(2))
        saved = take(stub, 4)[-1].cursor
    engine.dispose()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"rules.db{suffix}").unlink(missing_ok=True)
    (tmp_path / "rules.db").write_bytes((tmp_path / "backup.db").read_bytes())
    engine = make_engine(url)
    with serving(engine, rulebook) as stub:
        upsert(stub, profile(3))
        upsert(stub, profile(4))
        assert len(take(stub, 6)) == 6  # the feed runs past the saved cursor
        assert "OTHER_EPOCH: cursor" in refused(stub, saved)
    engine.dispose()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own (it is dropped and restored), migrated."""
    name = f"rules_epoch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_pg_restore_renews_the_epoch(pg_database: str, tmp_path: Path, rulebook: Any) -> None:
    """README's PostgreSQL restore (`pg_dump --format=custom`, `pg_restore --clean`, the
    server stopped) needs no step of its own: the restored feed head is read from a table
    that `pg_restore` created anew, so its epoch is renewed and the cursors of the feed it
    replaced are refused."""
    libpq = pg_database.replace("postgresql+psycopg://", "postgresql://")
    dump = tmp_path / "rules.dump"
    engine = make_engine(pg_database)
    with serving(engine, rulebook) as stub:
        for n in range(1, 3):
            upsert(stub, profile(n))
        subprocess.run(["pg_dump", "--format=custom", "-f", str(dump), libpq], check=True)
        for n in range(3, 5):
            upsert(stub, profile(n))
        saved = take(stub, 8)[-1].cursor
    engine.dispose()
    subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "-d", libpq, str(dump)],
        check=True,
        capture_output=True,
    )
    engine = make_engine(pg_database)
    with serving(engine, rulebook) as stub:
        for n in range(5, 9):
            upsert(stub, profile(n))
        replayed = take(stub, 12)  # the restored feed runs past the saved cursor
        assert parse_cursor(replayed[-1].cursor).position == 12
        assert "OTHER_EPOCH: cursor" in refused(stub, saved)
    engine.dispose()


def _psql(libpq: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", libpq, "-c", sql], check=True)


def test_a_data_only_restore_into_the_same_database_renews_the_epoch(
    pg_database: str, tmp_path: Path, rulebook: Any
) -> None:
    """Review 61 R61-1: every table emptied (TRUNCATE) and `pg_restore --data-only` into
    the same database keeps the database's and the table's oids, so the anchor matched,
    the epoch stayed, and a follower whose cursor the restored feed then passed resumed
    from it and silently missed the changes between. The restored head row is written by
    the restore's transaction, not the one its anchor names. What keeps the row as it is
    (VACUUM FULL, FREEZE, CLUSTER) and the 0018 migration itself renew nothing."""
    libpq = pg_database.replace("postgresql+psycopg://", "postgresql://")
    dump = tmp_path / "rules.data.dump"
    engine = make_engine(pg_database)
    with serving(engine, rulebook) as stub:
        for n in range(1, 3):
            upsert(stub, profile(n))
        before = FeedStore(engine).head().epoch
        _migrate(engine, "0017", up=False)  # a database upgraded from 0017 keeps its epoch
        _migrate(engine, "head", up=True)
        _psql(libpq, "VACUUM (FULL, FREEZE) feed_head")
        _psql(libpq, "CLUSTER feed_head USING pk_feed_head")
        assert FeedStore(engine).head().epoch == before
        subprocess.run(
            ["pg_dump", "--data-only", "--format=custom", "-f", str(dump), libpq], check=True
        )
        for n in range(3, 5):
            upsert(stub, profile(n))
        saved = take(stub, 8)[-1].cursor
        assert FeedStore(engine).head().epoch == before
    engine.dispose()
    names = subprocess.run(  # every table, as the review did
        [
            "psql",
            "-At",
            "-d",
            libpq,
            "-c",
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public'",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert "feed_head" in names
    _psql(libpq, f"TRUNCATE {names}")
    subprocess.run(
        ["pg_restore", "--data-only", "--disable-triggers", "--no-owner", "-d", libpq, str(dump)],
        check=True,
        capture_output=True,
    )
    engine = make_engine(pg_database)
    with serving(engine, rulebook) as stub:
        for n in range(5, 9):
            upsert(stub, profile(n))
        replayed = take(stub, 12)  # the restored feed runs past the saved cursor
        assert parse_cursor(replayed[-1].cursor).position == 12
        assert "OTHER_EPOCH: cursor" in refused(stub, saved)  # was: taken, 3 firms missed
    engine.dispose()


def test_a_cursor_of_another_deployment_is_refused(
    db_engine: Engine, tmp_path: Path, rulebook: Any
) -> None:
    """Every feed counts from 1: a cursor of another database's feed (a test deployment's,
    SQLite's against PostgreSQL's) named a position this feed had too, and was taken. A
    new database takes no bare cursor either: it never gave one."""
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate.upgrade(other)
    with serving(other, rulebook) as stub:
        upsert(stub, profile(1))
        theirs = take(stub, 2)[-1].cursor
    other.dispose()
    with serving(db_engine, rulebook) as stub:
        upsert(stub, profile(2))
        upsert(stub, profile(3))
        assert len(take(stub, 4)) == 4  # an empty cursor is fine
        assert "OTHER_EPOCH: cursor" in refused(stub, theirs)
        assert "BARE_BEYOND" in refused(stub, "2")


def _migrate(engine: Engine, revision: str, up: bool) -> None:
    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.upgrade if up else command.downgrade)(config, revision)


def test_bare_cursors_given_before_epochs(db_engine: Engine, rulebook: Any) -> None:
    """A feed that gave bare cursors before the upgrade (0017) takes them up to its last
    position, and answers with cursors that name its epoch. After a restore (here
    `renew-feed-epoch`) it takes them only up to the last position of the restored feed:
    one beyond may be a change the restored feed lost, and is refused."""
    with serving(db_engine, rulebook) as stub:
        upsert(stub, profile(1))
        upsert(stub, profile(2))
        assert len(take(stub, 4)) == 4
        _migrate(db_engine, "0016", up=False)  # as a feed of before epochs, upgraded
        _migrate(db_engine, "head", up=True)
        resumed = take(stub, 2, after="2")  # a bare cursor this feed gave
        assert [parse_cursor(c.cursor).position for c in resumed] == [3, 4]
        assert parse_cursor(resumed[0].cursor).epoch is not None
        upsert(stub, profile(3))
        assert len(take(stub, 2, after="4")) == 2
        assert "AHEAD: cursor 7 is ahead of the feed" in refused(stub, "7")
        assert main(["renew-feed-epoch", "--db", _url(db_engine)]) == 0
        other = refused(stub, resumed[-1].cursor)  # the epoch before
        assert "OTHER_EPOCH: cursor" in other
        assert "renew-feed-epoch" in other  # review 61 R61-6: not only "restored"
        assert len(take(stub, 2, after="4")) == 2  # shared by the feed before: still taken
        upsert(stub, profile(4))  # positions 7 and 8, the restored feed's own
        assert "BARE_BEYOND" in refused(stub, "7")
        assert "beyond position 6" in refused(stub, "7")


def test_a_stream_open_when_the_epoch_is_renewed_ends(db_engine: Engine, rulebook: Any) -> None:
    """A follower reading while the database is restored under it (the epoch renewed)
    does not read on into the restored feed's positions: FAILED_PRECONDITION."""
    with serving(db_engine, rulebook) as stub:
        for n in range(1, 4):
            upsert(stub, profile(n))
    store = FeedStore(db_engine)
    changes = follow(store, "", (), lambda: True, batch=2)
    first = next(changes)
    assert first.cursor and parse_cursor(first.cursor).epoch == store.head().epoch
    store.head(renew=True)
    next(changes)  # the batch read before the renewal
    with pytest.raises(ResyncRequired, match="epoch was renewed while you followed") as ended:
        next(changes)
    assert ended.value.cause == "RESTORED"  # the cause callers know, kept
    # review 61 R61-6: nothing was restored here; the text says what may have happened
    assert "renew-feed-epoch" in str(ended.value)
