"""Create or upgrade the booking register's schema with Alembic."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from services.common import migrations

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    migrations.upgrade(engine, MIGRATIONS, revision)


def current_revision(engine: Engine) -> str | None:
    return migrations.current_revision(engine)
