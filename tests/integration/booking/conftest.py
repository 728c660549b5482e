"""Booking fixtures: `pair` runs both services; booking's database is SQLite or PostgreSQL;
`engine` is a fresh booking database of each kind, for tests on the use cases directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.booking.adapters import migrate
from tests.booking_env import Pair, running_pair, scratch_engine
from tests.integration.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with running_pair(tmp_path, request.param, pg_admin_url=PG_ADMIN_URL) as running:
        yield running


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[Pair]:
    with running_pair(tmp_path, "sqlite") as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def staff_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, migrated booking database of each kind, without servers: for the staff
    accounts' and sessions' use cases."""
    with scratch_engine(request.param, tmp_path, "staff", PG_ADMIN_URL) as made:
        migrate.upgrade(made)
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh booking database of each kind (not migrated)."""
    with scratch_engine(request.param, tmp_path, "booking_dispatch", PG_ADMIN_URL) as made:
        yield made
