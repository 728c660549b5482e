"""Booking fixtures: `pair` runs both services; booking's database is SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.booking_env import Pair, running_pair
from tests.integration.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with running_pair(tmp_path, request.param, pg_admin_url=PG_ADMIN_URL) as running:
        yield running


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[Pair]:
    with running_pair(tmp_path, "sqlite") as running:
        yield running
