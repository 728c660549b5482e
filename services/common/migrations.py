"""Alembic, driven from code for both services: each service passes its migrations folder.

Every command starts by bringing its database to the newest revision. When it is there
already, `upgrade` sees so from the version files' own lines and the database's
alembic_version row, without importing Alembic (a fifth of a short command's start-up:
Alembic, Mako and Pygments' lexers); anything else goes through Alembic as before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, MetaData, inspect
from sqlalchemy.engine import Connection

from services.common.db import make_engine

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(script_location: Path, url: str = "") -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


MIGRATION_LOCK = 7_331_006  # a PostgreSQL advisory lock key, held for an upgrade's transaction


def upgrade(engine: Engine, script_location: Path, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest); never hand-written DDL.
    Nothing to do, and Alembic not imported, when the database is at the newest revision
    of a linear history (`script_head`)."""
    if revision == "head" and _at_head(engine, script_location):
        return
    from alembic import command

    config = alembic_config(script_location)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # replicas starting at once: one migrates
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


_LINE = {
    name: re.compile(rf'^{name} = (?:None|"([0-9A-Za-z_]+)")$', re.MULTILINE)
    for name in ("revision", "down_revision", "branch_labels", "depends_on")
}


def script_head(script_location: Path) -> str | None:
    """The newest revision of the folder's versions/*.py, read from their own lines
    (`revision = "…"`, `down_revision = "…"` or None, `branch_labels = None`,
    `depends_on = None`, each once and in just that form); None unless they make one
    linear history (one first revision, none with two successors): then Alembic reads
    them itself."""
    revisions: set[str] = set()
    downs: set[str] = set()
    count = 0
    for path in (script_location / "versions").glob("*.py"):
        if path.name == "__init__.py" or path.name.startswith(".#"):  # as Alembic skips them
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeError):  # an editor's lock file, an unreadable file
            return None
        found = {name: line.findall(text) for name, line in _LINE.items()}
        if any(len(values) != 1 for values in found.values()) or any(
            len(re.findall(rf"^{name}\b", text, re.MULTILINE)) != 1 for name in _LINE
        ):
            return None
        if not found["revision"][0] or found["branch_labels"][0] or found["depends_on"][0]:
            return None
        count += 1
        revisions.add(found["revision"][0])
        downs.add(found["down_revision"][0])  # "" for the first revision
    heads = revisions - downs
    linear = count == len(revisions) == len(downs) and downs - revisions == {""}
    return heads.pop() if linear and len(heads) == 1 else None


def _at_head(engine: Engine, script_location: Path) -> bool:
    """Whether the database's one alembic_version row names `script_head`."""
    head = script_head(script_location)
    if head is None:
        return False
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return [row[0] for row in rows] == [head]


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def run_env(metadata: MetaData) -> None:
    """The body of a service's migrations/env.py."""
    from alembic import context

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
