"""Review 66 point 6: a statement booking sends to the driver itself (psycopg's
pipeline: CreateOrder's insert with the trail's heads, dispatch's booking; SQLite's
dispatch query) that fails because the database cannot write (SQLSTATE 25006 after a
failover onto a standby, or a database made read-only) replaces its pooled connection,
as the ORM's statements do (services/common/db.py `_replace_read_only`): the session
keeps the default_transaction_read_only it started with, so the first write after the
database takes writes again failed once more on it. Real PostgreSQL, one pooled
connection; nothing asserts a duration."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select, text

from services.booking.adapters import migrate
from services.booking.adapters.orm import experts
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.common.db import database_unavailable, make_engine
from tests.booking_env import scratch_engine
from tests.integration.conftest import PG_ADMIN_URL
from tests.integration.test_read_only_database import read_only


def _expert(expert_id: str) -> dict[str, object]:
    return {
        "id": expert_id,
        "name": "专家",
        "phone": "",
        "domains": ["gas"],
        "regions": [],
        "slots": [],
        "max_visits_per_day": 2,
        "active": True,
        "conflicts": [],
        "updated_at": None,
    }


def test_a_driver_statement_refused_as_read_only_replaces_its_connection(
    tmp_path: Path,
) -> None:
    with scratch_engine("postgresql", tmp_path, "driver_ro", PG_ADMIN_URL) as made:
        migrate.upgrade(made)
        url = made.url.render_as_string(hide_password=False)
        engine = make_engine(url, pool_size=1)  # one connection, reused in turn
        try:
            read_only(url, True, cut=True)
            with pytest.raises(sa_exc.DBAPIError) as refused, SqlUnitOfWork(engine) as uow:
                uow.register._pipelined([(insert(experts), _expert("E1"))])
            assert database_unavailable(refused.value)
            assert refused.value.connection_invalidated
            read_only(url, False, cut=False)  # writable again; the pool's sessions not cut
            with engine.begin() as conn:  # the first write after: on a new session
                conn.execute(insert(experts), _expert("E2"))
            with engine.connect() as conn:
                assert conn.execute(select(experts.c.id)).scalars().all() == ["E2"]
                assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "off"
        finally:
            engine.dispose()
            read_only(url, False, cut=False)
