"""CreateOrder's statements that PostgreSQL gets from the driver, not through SQLAlchemy's
execution (adapters/repository.py `_pipelined`): the firm card's read stays a read (a
unit of work that only read it commits, keeping the connection's prepared statements),
and an order's row, with its JSON columns, is written as SQLAlchemy would write it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text

from services.booking.adapters import migrate
from services.booking.adapters.orm import firm_cards, orders
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from tests.integration.booking.test_audit_chains import _card, _expert, _order
from tests.support import uscc


@pytest.fixture
def booking(engine: Engine) -> Engine:
    migrate.upgrade(engine)
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.register.add(_card(1))
        uow.register.add(_expert("E1"))
        uow.commit()
    return engine


def test_reading_a_firm_card_keeps_the_unit_a_read(booking: Engine) -> None:
    if booking.dialect.name != "postgresql":
        pytest.skip("prepared statements and a read-only unit's COMMIT are PostgreSQL's")
    uow = SqlUnitOfWork(booking)
    for _ in range(8):  # psycopg prepares a statement on its 5th run
        with uow:
            card = uow.register.firm_card(uscc(1))
            assert card is not None and card.name == "企业1"
    with uow:  # ended by COMMIT, not ROLLBACK (which drops every prepared statement)
        count = uow.register.session.execute(text("SELECT count(*) FROM pg_prepared_statements"))
        assert count.scalar_one() >= 1
        assert uow.register.firm_card(uscc(2)) is None


def test_an_orders_row_is_written_with_its_lists(booking: Engine) -> None:
    order = _order(booking, 1, "k1")
    with booking.connect() as conn:
        row = conn.execute(select(orders).where(orders.c.id == order.id)).one()
        name = conn.execute(select(firm_cards.c.name)).scalar_one()
    assert (row.item_codes, row.preferred_slots, row.clause_refs) == (
        ["fire_safety"],
        order.preferred_slots,
        [],
    )
    assert (row.enterprise_name, row.status, row.expert_id) == (name, "dispatched", "E1")
