"""The booking register's migrations build exactly the tables services/booking/adapters/orm.py
maps (as tests/integration/rules/test_reevaluation.py checks for the rules register)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.booking.adapters import migrate
from services.booking.adapters.orm import metadata
from services.common.db import make_engine


def test_booking_migrations_match_the_mapped_tables(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'booking.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
