"""The booking register's migrations build exactly the tables services/booking/adapters/orm.py
maps (as tests/integration/rules/test_reevaluation.py checks for the rules register), on
SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from services.booking.adapters import migrate
from services.booking.adapters.orm import metadata


def test_booking_migrations_match_the_mapped_tables(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
