"""the demo city's seeded times on SQLite stored in UTC, as every other instant

Revision ID: b0013
Revises: b0011
Create Date: 2026-12-03

Data only, SQLite only. The demo seeder (`make run`: service_layer/demo.py, common/
demo_city.py) wrote its history's instants on the Shanghai clock; SQLite keeps no zone,
so it stored their wall time, which every reader takes as UTC: each seeded time read 8
hours late (a proof sent "today 10:00" shown at 18:00, review 59 F3). PostgreSQL
converted them and is right. Instant columns now bind every value in UTC (common/
columns.py `Instant`); this moves the times the seeder wrote to where it meant them.

A register holds such times when a visit of a demo order (`idempotency_key` "demo-…")
is stored at exactly 17:00:00 (the seeder's visits are at 17:00 in Shanghai: 09:00 UTC
once right). Then, of the demo orders and what hangs off them (their history, bookings,
visits, tickets, the tickets' history and outbox messages, their firms' cards) and of
the city's experts, every instant on a whole minute (second and microsecond 0: the
seeder's; one a use case wrote later has its microseconds) is taken as Shanghai time
and stored in UTC. Afterwards no demo visit is at 17:00, so a second run changes
nothing. Nothing a person or a caller decided changes, only when the seeder said it
happened: no audit entry (the seeder wrote none either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, time
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.common.instants import SHANGHAI

revision = "b0013"
down_revision = "b0012"
branch_labels = None
depends_on = None

SEEDED_VISIT = time(17)  # service_layer/demo.py: a visit at(slot_day, 17)
Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # timestamptz converted the seeder's instants itself
    orders = sa.table(
        "orders",
        sa.column("id", sa.String),
        sa.column("idempotency_key", sa.String),
        sa.column("enterprise_id", sa.String),
        sa.column("expert_id", sa.String),
    )
    demo = bind.execute(
        sa.select(orders.c.id, orders.c.enterprise_id, orders.c.expert_id).where(
            orders.c.idempotency_key.like("demo-%")
        )
    ).all()
    if not demo:
        return
    order_ids = {row.id for row in demo}
    visits = sa.table("visits", sa.column("order_id", sa.String), sa.column("created_at", Instant))
    seeded = [
        at
        for order_id, at in bind.execute(sa.select(visits.c.order_id, visits.c.created_at))
        if order_id in order_ids and _stamp(at).time() == SEEDED_VISIT
    ]
    if not seeded:
        return  # seeded in UTC already, or repaired before
    tickets = sa.table("tickets", sa.column("id", sa.String), sa.column("order_id", sa.String))
    ticket_ids = {
        t for t, o in bind.execute(sa.select(tickets.c.id, tickets.c.order_id)) if o in order_ids
    }
    firms = {row.enterprise_id for row in demo}
    experts = {row.expert_id for row in demo if row.expert_id} | _city_experts(bind)
    by_ticket_event = _outbox_ids(bind, ticket_ids)
    for table, key, owner, owners, instants in (
        ("orders", "id", "id", order_ids, ("created_at", "updated_at")),
        ("order_transitions", "id", "order_id", order_ids, ("at",)),
        ("assignments", "id", "order_id", order_ids, ("created_at",)),
        ("visits", "id", "order_id", order_ids, ("created_at",)),
        ("tickets", "id", "order_id", order_ids, ("created_at",)),
        ("ticket_transitions", "id", "ticket_id", ticket_ids, ("at",)),
        ("outbox", "id", "id", by_ticket_event, ("created_at", "delivered_at")),
        ("firm_cards", "enterprise_id", "enterprise_id", firms, ("qr_issued_at",)),
        ("experts", "id", "id", experts, ("updated_at",)),
    ):
        _repair(bind, table, key, owner, owners, instants)


def downgrade() -> None:
    """Nothing to undo: the code before read the repaired times as the same instants."""


def _stamp(value: Any) -> datetime:
    """A stored instant as written (naive; SQLite may answer text)."""
    found = datetime.fromisoformat(value) if isinstance(value, str) else value
    return found.replace(tzinfo=None)


def _on_the_minute(value: Any) -> bool:
    return value is not None and _stamp(value).second == 0 and _stamp(value).microsecond == 0


def _in_utc(value: Any) -> datetime:
    """A wall time on the Shanghai clock, as the UTC wall time SQLite should hold."""
    return _stamp(value).replace(tzinfo=SHANGHAI).astimezone(UTC).replace(tzinfo=None)


def _city_experts(bind: sa.Connection) -> set[str]:
    """The demo city's experts (E-01 … E-20: common/demo_city.py `experts`), booked or not."""
    experts = sa.table("experts", sa.column("id", sa.String))
    ids = bind.execute(sa.select(experts.c.id)).scalars()
    return {i for i in ids if re.fullmatch(r"E-\d\d", i)}


def _outbox_ids(bind: sa.Connection, ticket_ids: set[str]) -> set[str]:
    """The outbox rows (ids as text) of these tickets' events (`booking-<ticket>-…`)."""
    outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("event_id", sa.String))
    return {
        str(row_id)
        for row_id, event_id in bind.execute(sa.select(outbox.c.id, outbox.c.event_id))
        if event_id.split("-")[1:2] and event_id.split("-")[1] in ticket_ids
    }


def _repair(
    bind: sa.Connection,
    name: str,
    key: str,
    owner: str,
    owners: Iterable[str],
    instants: tuple[str, ...],
) -> None:
    """Every instant on the minute of the rows of `name` whose `owner` is one of `owners`,
    stored in UTC."""
    wanted = set(owners)
    keys: list[sa.ColumnClause[Any]] = [sa.column(key)] + (
        [sa.column(owner)] if owner != key else []
    )
    table = sa.table(name, *keys, *(sa.column(c, Instant) for c in instants))
    for row in bind.execute(sa.select(table)).mappings().all():
        if str(row[owner]) not in wanted:
            continue
        moved = {c: _in_utc(row[c]) for c in instants if _on_the_minute(row[c])}
        if moved:
            bind.execute(table.update().where(table.c[key] == row[key]).values(**moved))
