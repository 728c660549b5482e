"""Migration 0014: the rules register's audit log has no index by entity id (no read asks
for one; every audit entry written paid for it), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select

from services.common.audit import verify
from services.common.migrations import alembic_config
from services.rules.adapters import migrate
from services.rules.adapters.orm import audit_head, audit_log, metadata
from services.rules.entrypoints.grpc_server import context_from
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import upsert
from tests.support import profile

INDEX = "ix_audit_log_entity_id"


def _indexes(engine: Engine) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes("audit_log")}


def _run(engine: Engine, fn: Any, revision: str) -> None:
    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        fn(config, revision)


def test_the_audit_log_has_no_entity_index_and_0014_goes_down_and_up(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    for n in range(1, 6):
        upsert(register_stub, profile(n), as_of="2026-03-01")
    reevaluate_all(UnitOfWork(db_engine), context_from(rulebook), date(2026, 7, 1))
    with db_engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(audit_log)).scalar()
    assert entries and INDEX not in _indexes(db_engine)
    assert "ix_audit_log_chain_id" in _indexes(db_engine)  # what verifying a chain reads
    _run(db_engine, command.downgrade, "0013")
    assert INDEX in _indexes(db_engine)
    _run(db_engine, command.upgrade, "head")
    assert INDEX not in _indexes(db_engine)
    with db_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar() == entries
        assert verify(conn, audit_log, audit_head).ok


def test_0015_names_the_feed_publisher_and_goes_down_and_up(db_engine: Engine) -> None:
    """Migration 0015 (review 49 F1): the feed head's `publisher` column, kept through a
    downgrade and upgrade of a database that holds a claim (the claim goes with it)."""
    from sqlalchemy import text

    def columns() -> set[str]:
        return {c["name"] for c in inspect(db_engine).get_columns("feed_head")}

    assert "publisher" in columns()
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE feed_head SET publisher = 'NATS JetStream stream X'"))
    _run(db_engine, command.downgrade, "0014")
    assert "publisher" not in columns()
    _run(db_engine, command.upgrade, "head")
    assert "publisher" in columns()
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT publisher FROM feed_head")).scalar() is None
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_0016_keeps_each_runs_mode_and_a_run_of_unknown_mode_is_not_resumed(
    db_engine: Engine,
) -> None:
    """Migration 0016 (review 53 N11): a re-evaluation run keeps its mode (`raised`) and
    how many firms it decided for the next day (`ahead`). A run left unfinished before it
    (mode unknown: NULL) is never resumed, since it may have been started under the
    other rule; a new run starts. Down and up again on a database that holds one."""
    from sqlalchemy import text

    from services.rules.adapters.orm import reevaluation_runs
    from services.rules.service_layer.reevaluation import start_run

    def columns() -> set[str]:
        return {c["name"] for c in inspect(db_engine).get_columns("reevaluation_runs")}

    _run(db_engine, command.downgrade, "0015")
    assert not {"raised", "ahead"} & columns()
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO reevaluation_runs (id, as_of, started_at, processed, "
                "last_enterprise_id) VALUES ('old', :day, :at, 3, '')"
            ),
            {"day": date(2026, 6, 30), "at": "2026-06-30 10:00:00+00:00"},
        )
    _run(db_engine, command.upgrade, "head")
    with db_engine.connect() as conn:
        old = conn.execute(select(reevaluation_runs.c.raised, reevaluation_runs.c.ahead)).one()
        assert tuple(old) == (None, 0)
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    for today in (date(2026, 6, 30), date(2026, 7, 1)):  # raised, then not
        started = start_run(UnitOfWork(db_engine), date(2026, 6, 30), today=today)
        assert started.run_id != "old" and not started.resumed
        again = start_run(UnitOfWork(db_engine), date(2026, 6, 30), today=today)
        assert (again.run_id, again.resumed) == (started.run_id, True)
