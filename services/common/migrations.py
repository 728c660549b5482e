"""Alembic, driven from code for both services: each service passes its migrations folder."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData
from sqlalchemy.engine import Connection

from services.common.db import make_engine


def alembic_config(script_location: Path, url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


MIGRATION_LOCK = 7_331_006  # a PostgreSQL advisory lock key, held for an upgrade's transaction


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest); never hand-written DDL."""
    config = alembic_config(script_location)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # replicas starting at once: one migrates
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def run_env(metadata: MetaData) -> None:
    """The body of a service's migrations/env.py."""
    config = context.config

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
