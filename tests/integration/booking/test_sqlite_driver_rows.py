"""Statements that SQLite gets from the driver, not through SQLAlchemy's execution
(services/common/db.py `sqlite_driver_run`): a group's orders and transitions
(adapters/repository.py `write_orders`) and the audit trail's rows and heads
(services/common/audit.py `_append_chains`). Each must store exactly what SQLAlchemy's
execution of the same statement stores: the same statement and parameters run both ways
on one real SQLite database, then the rows compared as the file holds them (read by the
driver: JSON text, instants as text), and a failure raised as SQLAlchemy raises it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Integer, bindparam, literal, select, text
from sqlalchemy import exc as sa_exc

from services.booking.adapters import migrate
from services.booking.adapters.orm import audit_log, order_transitions, orders
from services.booking.adapters.repository import (
    _columns,
    _firm_cards_query,
    _insert_columns,
    _insert_into,
)
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.records import FirmCard
from services.common.audit import (
    _heads_query,
    _insert_rows,
    _move_heads_to_last,
    _sqlite_heads,
    chains_of,
)
from services.common.db import make_engine, sqlite_driver_run
from tests.support import uscc


@pytest.fixture
def booking(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'booking.db'}")
    migrate.upgrade(engine)
    return engine


def _stored(engine: Engine, table: str, order_by: str) -> list[tuple[Any, ...]]:
    """The rows as the file holds them (the driver's values: no result processing)."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        return list(driver.execute(f"SELECT * FROM {table} ORDER BY {order_by}").fetchall())


def _entries(tag: str) -> list[dict[str, Any]]:
    """Audit rows of every kind a seal writes: no before, a before with None and lists,
    Chinese text, a masked mobile, nested values."""
    at = "2026-11-29T06:00:00.000001+00:00"
    after = {"status": "dispatched", "expert_id": "E1", "item_codes": ["fire_safety", "消防"]}
    return [
        {"caller": f"qr:{tag}", "action": "create", "entity": "order", "entity_id": f"B{tag}1"}
        | {"before": None, "after": {**after, "contact_phone": "138****5678", "note": "二楼"}}
        | {"chain": f"firm:{tag}", "at": at, "prev_hash": "0" * 64, "hash": "a" * 64},
        {"caller": "anonymous", "action": "update", "entity": "order", "entity_id": f"B{tag}1"}
        | {"before": {"status": "submitted", "expert_id": None, "slot": None}, "after": after}
        | {"chain": f"firm:{tag}", "at": at, "prev_hash": "a" * 64, "hash": "b" * 64},
        {"caller": "anonymous", "action": "create", "entity": "assignment", "entity_id": "B1"}
        | {"before": None, "after": {"nested": {"n": 1, "t": True, "x": [None, 1.5]}}}
        | {"chain": f"expert:{tag}", "at": at, "prev_hash": "0" * 64, "hash": "c" * 64},
    ]


def _params(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {f"{name}_{n}": value for n, row in enumerate(entries) for name, value in row.items()}


def test_audit_rows_by_the_driver_are_stored_as_sqlalchemy_stores_them(booking: Engine) -> None:
    names = tuple(_entries("x")[0])
    statement = _insert_rows(audit_log, names, 3)
    with booking.begin() as conn:
        conn.execute(statement, _params(_entries("AAA")))
        sqlite_driver_run(conn, statement, _params(_entries("BBB")))
        moves = [{"_chain": "firm:AAA", "last_hash": "b" * 64}]
        conn.execute(text("INSERT INTO audit_chains VALUES ('firm:AAA', 0, '')"))
        conn.execute(text("INSERT INTO audit_chains VALUES ('firm:BBB', 0, '')"))
        conn.execute(_move_heads_to_last(audit_log, chains_of(audit_log)), moves)
        sqlite_driver_run(
            conn,
            _move_heads_to_last(audit_log, chains_of(audit_log)),
            [{"_chain": "firm:BBB", "last_hash": "b" * 64}],
        )
    rows = [r[1:] for r in _stored(booking, "audit_log", "id")]  # without the serial id
    assert len(rows) == 6
    as_driver = [
        tuple(v.replace("AAA", "BBB") if isinstance(v, str) else v for v in r) for r in rows[:3]
    ]
    assert as_driver == rows[3:]
    heads = _stored(booking, "audit_chains", "chain")
    assert [h[1:] for h in heads] == [(2, "b" * 64), (5, "b" * 64)]  # each its chain's last row
    keys = ["firm:AAA", "firm:BBB", "firm:none"]  # the seal's read of its chains' heads
    with booking.connect() as conn:
        by_sqlalchemy = conn.execute(_heads_query(chains_of(audit_log), False), {"keys": keys})
        named = {f"k{n}": key for n, key in enumerate(keys)}
        by_driver = sqlite_driver_run(conn, _sqlite_heads(chains_of(audit_log), 3), named)
        assert sorted(tuple(r) for r in by_sqlalchemy) == sorted(by_driver)
        assert len(by_driver) == 2


def test_order_rows_by_the_driver_are_stored_as_sqlalchemy_stores_them(booking: Engine) -> None:
    at = datetime(2026, 11, 29, 6, 0, 0, 123456, tzinfo=UTC)

    def order(n: int) -> dict[str, Any]:
        return {
            "id": f"B26112{n}",
            "enterprise_id": f"9133000000000000{n:02d}",
            "enterprise_name": "企业",
            "region": "稠城街道",
            "item_codes": ["fire_safety", "消防"],
            "preferred_slots": ["2026-12-01 AM"],
            "contact_name": "联系人",
            "contact_phone": "13812345678",
            "note": "",
            "idempotency_key": f"k{n}",
            "status": "dispatched",
            "expert_id": "E1" if n % 2 else None,
            "slot": "2026-12-01 AM" if n % 2 else None,
            "dispatch_note": "",
            "created_at": at,
            "updated_at": at,
            "clause_refs": [],
        }

    def moves(n: int) -> list[dict[str, Any]]:
        return [
            {"order_id": f"B26112{n}", "at": at, "actor": "firm", "from_status": ""}
            | {"to_status": "submitted", "reason": "已受理"},
            {"order_id": f"B26112{n}", "at": at, "actor": "dispatcher"}
            | {"from_status": "submitted", "to_status": "dispatched", "reason": "派给 E1"},
        ]

    assert set(order(1)) == set(_columns(orders))
    assert set(moves(1)[0]) == set(_columns(order_transitions))
    with booking.begin() as conn:
        conn.execute(text("PRAGMA defer_foreign_keys = ON"))  # no firm, no expert: removed below
        conn.execute(_insert_into(orders), [order(1), order(2)])
        conn.execute(_insert_into(order_transitions), moves(1) + moves(2))
        by_sqlalchemy = _stored_in(conn, "orders"), _stored_in(conn, "order_transitions")
        conn.execute(text("DELETE FROM order_transitions"))
        conn.execute(text("DELETE FROM orders"))
        sqlite_driver_run(conn, _insert_columns(orders), [order(1), order(2)])
        sqlite_driver_run(conn, _insert_columns(order_transitions), moves(1) + moves(2))
        by_driver = _stored_in(conn, "orders"), _stored_in(conn, "order_transitions")
        conn.execute(text("DELETE FROM order_transitions"))
        conn.execute(text("DELETE FROM orders"))
    assert by_driver[0] == by_sqlalchemy[0] and len(by_driver[0]) == 2
    assert [t[1:] for t in by_driver[1]] == [t[1:] for t in by_sqlalchemy[1]]  # ids: serial
    assert len(by_driver[1]) == 4


def _stored_in(conn: Any, table: str) -> list[tuple[Any, ...]]:
    driver = conn.connection.driver_connection
    return list(driver.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall())


def test_a_statement_with_values_of_its_own_and_a_failure_as_sqlalchemy_gives_them(
    booking: Engine,
) -> None:
    """Parameters the call does not name (a literal bound in the statement) are still
    sent; a key used before raises SQLAlchemy's IntegrityError."""
    query = select(literal(40, Integer) + bindparam("n", type_=Integer)).limit(1)
    with booking.begin() as conn:
        assert sqlite_driver_run(conn, query, {"n": 2}) == [(42,)]
        assert conn.execute(query, {"n": 2}).all() == [(42,)]
        row = _entries("k")[0]
        sqlite_driver_run(conn, _insert_rows(audit_log, tuple(row), 1), _params([row]))
        heads = "INSERT INTO audit_chains (chain, last_id, last_hash) VALUES (:c, 1, :h)"
        conn.execute(text(heads), {"c": "firm:k", "h": "a" * 64})
        with pytest.raises(sa_exc.IntegrityError):
            sqlite_driver_run(
                conn,
                _insert_columns(order_transitions).values(id=bindparam("id", type_=Integer)),
                [
                    {"id": 1, "order_id": "B1", "at": datetime.now(UTC), "actor": "x"}
                    | {"from_status": "", "to_status": "submitted", "reason": ""}
                ]
                * 2,
            )


def test_firm_cards_read_by_the_driver_are_the_cards_sqlalchemy_reads(booking: Engine) -> None:
    """A group's cards (BookingRegister.firm_cards_of): the same records, the instant of
    the code's issue read as SQLAlchemy reads it, an unknown firm left out."""
    issued = datetime(2026, 11, 29, 6, 0, 0, 123456, tzinfo=UTC)
    uow = SqlUnitOfWork(booking)
    with uow:
        uow.register.add(FirmCard(uscc(1), "企业1", "稠城街道", "k1", "s1", issued, "13812345678"))
        uow.register.add(FirmCard(uscc(2), "企业2", "北苑街道"))
        uow.commit()
    with uow:
        cards = uow.register.firm_cards_of([uscc(2), uscc(1), uscc(3), uscc(1)])
    with booking.connect() as conn:
        rows = conn.execute(_firm_cards_query(), {"keys": [uscc(1), uscc(2), uscc(3)]})
        expected = {row.enterprise_id: FirmCard(**row._mapping) for row in rows}
    assert cards == expected and set(cards) == {uscc(1), uscc(2)}
    # as SQLAlchemy's Core reads an instant on SQLite: UTC, without its zone
    assert cards[uscc(1)].qr_issued_at == issued.replace(tzinfo=None)
    assert cards[uscc(2)].qr_issued_at is None
