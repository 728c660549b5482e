"""Migration b0013 (review 59 F3): a demo city seeded on SQLite before instants were bound
in UTC held its history's Shanghai wall times as if they were UTC (8 hours late); b0013
stores them in UTC, leaves what a use case wrote since alone, and a second run changes
nothing. PostgreSQL converted them when they were written: nothing to do there."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, text

from services.booking.adapters import migrate
from services.booking.adapters.menu import load_menu
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.service_layer import demo
from services.booking.service_layer.ports import BookingContext
from services.common import demo_city
from services.common.instants import as_utc, in_shanghai
from tests.booking_env import TEST_KEYS
from tests.support import RULESETS
from tests.unit.booking.fakes import FakeRules

TODAY = date(2026, 6, 1)
INSTANTS = {
    "orders": ("id", ("created_at", "updated_at")),
    "order_transitions": ("id", ("at",)),
    "assignments": ("id", ("created_at",)),
    "visits": ("id", ("created_at",)),
    "tickets": ("id", ("created_at",)),
    "ticket_transitions": ("id", ("at",)),
    "outbox": ("id", ("created_at", "delivered_at")),
    "firm_cards": ("enterprise_id", ("qr_issued_at",)),
    "experts": ("id", ("updated_at",)),
}
LIVE = datetime(2026, 6, 1, 7, 12, 5, 123456, tzinfo=UTC)  # a use case's now()


def _table(name: str) -> sa.TableClause:
    key, columns = INSTANTS[name]
    return sa.table(
        name, sa.column(key), *(sa.column(c, sa.DateTime(timezone=True)) for c in columns)
    )


def _instants(engine: Engine) -> dict[tuple[str, str, str], datetime | None]:
    """Every instant of the tables the seeder writes, in UTC, by (table, key, column)."""
    out: dict[tuple[str, str, str], datetime | None] = {}
    with engine.connect() as conn:
        for name, (key, columns) in INSTANTS.items():
            for row in conn.execute(sa.select(_table(name))).mappings():
                for c in columns:
                    out[(name, str(row[key]), c)] = as_utc(row[c]) if row[c] else None
    return out


def _as_the_old_seeder_stored_them(engine: Engine) -> None:
    """SQLite before b0013's code: the seeder's Shanghai instants kept their wall time."""
    with engine.begin() as conn:
        for name, (key, columns) in INSTANTS.items():
            table = _table(name)
            for row in conn.execute(sa.select(table)).mappings().all():
                wall = {
                    c: in_shanghai(row[c]).replace(tzinfo=None)
                    for c in columns
                    if row[c] is not None and row[c].second == 0 and row[c].microsecond == 0
                }
                if wall:
                    conn.execute(table.update().where(table.c[key] == row[key]).values(**wall))


def _seeded(engine: Engine) -> tuple[demo_city.City, str]:
    """A small demo city seeded (by today's code, at the head), and a ticket transition
    written since by a use case (its id)."""
    migrate.upgrade(engine)
    city = demo_city.city(TODAY, firm_count=60, booking_count=14)
    ctx = BookingContext(
        keyring=TEST_KEYS,
        menu=load_menu(RULESETS / "menu.yaml"),
        rules=FakeRules(),
        public_url="http://phone.test",
        today=lambda: TODAY,
    )
    assert demo.seed_city(SqlUnitOfWork(engine), ctx, city) is not None
    ticket = city.tickets()[0].id
    moves = sa.table(
        "ticket_transitions",
        sa.column("id"),
        sa.column("ticket_id"),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor"),
        sa.column("from_status"),
        sa.column("to_status"),
        sa.column("reason"),
    )
    row: dict[str, Any] = {"ticket_id": ticket, "actor": "firm", "reason": "补充照片"}
    with engine.begin() as conn:
        at = LIVE if conn.dialect.name != "sqlite" else LIVE.replace(tzinfo=None)
        conn.execute(moves.insert().values(**row, at=at, from_status="open", to_status="open"))
        live = conn.execute(sa.select(sa.func.max(moves.c.id))).scalar_one()
    return city, str(live)


def test_b0013_stores_the_old_demo_seed_s_times_in_utc(engine: Engine) -> None:
    _, live = _seeded(engine)
    meant = _instants(engine)  # as the seeder means them (instants are bound in UTC now)
    visit = next(v for (t, _, _), v in meant.items() if t == "visits")
    assert visit is not None and in_shanghai(visit).hour == 17
    if engine.dialect.name == "sqlite":
        _as_the_old_seeder_stored_them(engine)
        assert _instants(engine) != meant
    _run_b0013(engine)
    assert _instants(engine) == meant
    assert meant[("ticket_transitions", live, "at")] == LIVE  # a use case's time: kept
    _run_b0013(engine)  # a second run changes nothing
    assert _instants(engine) == meant


def _run_b0013(engine: Engine) -> None:
    """b0013 alone on a register at the head (its data as a register at b0012 would hold
    it: the later revisions change only the outbox's columns), the head set back after."""
    head = migrate.current_revision(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'b0012'"))
    migrate.upgrade(engine, "b0013")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})


def test_b0013_on_a_register_without_a_demo(engine: Engine) -> None:
    migrate.upgrade(engine, "b0012")
    migrate.upgrade(engine, "b0013")
    assert migrate.current_revision(engine) == "b0013"
