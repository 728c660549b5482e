"""Migration b0009 on SQLite and PostgreSQL: a booking's foreign key to its order is checked
at the commit (CreateOrder books before it writes the order's row), still on every row;
the rows stored before are kept, and downgrade checks it at once again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from services.booking.adapters import migrate
from services.booking.adapters.orm import assignments, experts, firm_cards, orders
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.orders import Order
from services.common.migrations import alembic_config
from tests.booking_env import Pair
from tests.support import uscc

AT = datetime(2026, 6, 1, tzinfo=UTC)


def _order(order_id: str) -> dict[str, object]:
    return {
        "id": order_id,
        "enterprise_id": uscc(1),
        "enterprise_name": "企业",
        "region": "x",
        "item_codes": [],
        "preferred_slots": [],
        "contact_name": "",
        "contact_phone": "",
        "note": "",
        "idempotency_key": order_id,
        "status": "submitted",
        "created_at": AT,
    }


def _booking(order_id: str, slot: str) -> dict[str, object]:
    return {"expert_id": "E1", "slot": slot, "day": AT.date(), "order_id": order_id}


def _book_first(engine: Engine, order_id: str, slot: str, *, order: bool) -> None:
    """One transaction: the booking, then (if `order`) the order it names."""
    with engine.begin() as conn:
        conn.execute(insert(assignments).values(**_booking(order_id, slot), created_at=AT))
        if order:
            conn.execute(insert(orders).values(_order(order_id)))


def test_b0009_defers_the_booking_key_to_the_commit_and_back(engine: Engine) -> None:
    migrate.upgrade(engine, "b0008")
    with engine.begin() as conn:
        conn.execute(insert(firm_cards).values(enterprise_id=uscc(1), name="企业", region="x"))
        conn.execute(
            insert(experts).values(
                id="E1",
                name="专家",
                phone="",
                domains=[],
                regions=[],
                slots=[],
                max_visits_per_day=2,
                active=True,
                conflicts=[],
            )
        )
        conn.execute(insert(orders).values(_order("A")))
        conn.execute(insert(assignments).values(**_booking("A", "s1"), created_at=AT))
    with pytest.raises(IntegrityError):  # before: checked at the insert
        _book_first(engine, "B", "s2", order=True)

    migrate.upgrade(engine)
    _book_first(engine, "B", "s2", order=True)  # the order comes later in the transaction
    with pytest.raises(IntegrityError):  # an order that never comes: refused at the commit
        _book_first(engine, "C", "s3", order=False)
    with engine.connect() as conn:
        booked = conn.execute(select(assignments.c.order_id, assignments.c.slot))
        assert sorted(booked) == [("A", "s1"), ("B", "s2")]  # the old row kept

    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "b0008")
    with pytest.raises(IntegrityError):
        _book_first(engine, "D", "s4", order=True)
    with engine.connect() as conn:
        assert len(conn.execute(select(assignments.c.id)).all()) == 2


def test_a_rollback_forgets_the_orders_taken_before_it(sqlite_pair: Pair) -> None:
    """Review 23 F2: `add_order` keeps an order until the commit writes it; a rollback in
    the same block left it there, and a later commit wrote it."""
    pair = sqlite_pair
    firm = pair.register_firm(1)
    pair.issue(firm)
    at = datetime.now(UTC)
    order = Order(
        id="BROLLBACK0001",
        enterprise_id=firm,
        enterprise_name="企业",
        region="稠城街道",
        item_codes=["fire_safety"],
        preferred_slots=[],
        contact_name="郑",
        contact_phone="13812345678",
        note="",
        idempotency_key="rb",
        status="submitted",
        created_at=at,
        updated_at=at,
    )
    uow = SqlUnitOfWork(pair.booking_engine)
    with uow:
        uow.register.add_order(order)
        uow.rollback()
        uow.commit()
    with pair.booking_engine.connect() as connection:
        assert connection.execute(select(orders.c.id)).all() == []
