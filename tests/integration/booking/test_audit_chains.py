"""Booking's audit trail on a chain per firm and per expert (migration b0008), on SQLite and
PostgreSQL: the entries written before stay on the global chain and still verify, the
migration opens an empty head for every firm and expert stored, an order's entries go on
its firm's chain and its booking on the expert's, and `verify` names an edited or removed
row on any of them."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, delete, insert, select, update

from services.booking.adapters import migrate
from services.booking.adapters.expert_offers import write_offer
from services.booking.adapters.orm import (
    AUDIT,
    assignments,
    audit_head,
    audit_log,
    experts,
    firm_cards,
    order_transitions,
    orders,
)
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages, qr
from services.booking.domain.records import Expert, FirmCard
from services.booking.domain.slots import parse_slot
from services.booking.service_layer.orders import create_order
from services.common.audit import GENESIS, append, audit_tables, chains_of, verify
from services.common.migrations import alembic_config
from tests.integration.booking.test_dispatch_query import HALF_DAYS, _ctx
from tests.support import uscc

KEYS = _ctx().keyring
HEADS = chains_of(audit_log)


def _report(engine: Engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return verify(conn, audit_log, audit_head)


def _entries(engine: Engine, chain: str | None = None) -> list[Any]:
    query = select(audit_log).order_by(audit_log.c.id)
    if chain is not None:
        query = query.where(audit_log.c.chain == chain)
    with engine.connect() as conn:
        return list(conn.execute(query))


def _heads(engine: Engine) -> dict[str, tuple[int, str]]:
    with engine.connect() as conn:
        return {r.chain: (r.last_id, r.last_hash) for r in conn.execute(select(HEADS))}


def _order(engine: Engine, firm: int, key: str) -> Any:
    form = {
        "item_codes": ["fire_safety"],
        "preferred_slots": HALF_DAYS[:2],
        "contact_name": "联系人",
        "contact_phone": "13812345678",
    }
    return create_order(SqlUnitOfWork(engine), _ctx(), _token(firm), form, key)


@functools.cache
def _issued(firm: int) -> tuple[Any, str]:
    """The firm's one QR code (the card stores its serial; the token text carries it)."""
    return qr.issue(KEYS, uscc(firm))


def _token(firm: int) -> str:
    return _issued(firm)[1]


def _card(firm: int) -> FirmCard:
    token = _issued(firm)[0]
    return FirmCard(uscc(firm), f"企业{firm}", "稠城街道", token.key_id, token.serial)


def _expert(expert_id: str) -> Expert:
    return Expert(expert_id, "专家", "", ["fire_crowded"], ["稠城街道"], HALF_DAYS, 2, True, [])


@pytest.fixture
def stored(engine: Engine) -> Iterator[Engine]:
    """A register as the code before b0008 left it: a firm, an expert, and two entries on
    the one global chain; then migrated to the head."""
    migrate.upgrade(engine, "b0007")
    old_log, old_head = audit_tables(MetaData())  # the log without its chain column
    card, expert = _card(1), _expert("E1")
    with engine.begin() as conn:
        for table, record in ((firm_cards, card), (experts, expert)):
            conn.execute(insert(table).values({c.name: getattr(record, c.name) for c in table.c}))
        write_offer(conn, expert, ("slots", "domains", "regions", "conflicts"))
        entries = [
            {"caller": "old", "action": "create", "entity": kind, "entity_id": key}
            | {"before": None, "after": {"name": "x"}}
            for kind, key in (("firm", uscc(1)), ("expert", "E1"))
        ]
        append(conn, old_log, old_head, entries, lock=False)
    migrate.upgrade(engine)
    yield engine


def test_b0008_keeps_the_old_entries_and_opens_a_chain_per_firm_and_expert(
    stored: Engine,
) -> None:
    old = _entries(stored)
    assert [r.chain for r in old] == ["", ""]
    assert _heads(stored) == {f"firm:{uscc(1)}": (0, GENESIS), "expert:E1": (0, GENESIS)}
    assert _report(stored).ok and _report(stored).entries == 2

    order = _order(stored, 1, "k1")
    assert (str(order.status), order.expert_id) == ("dispatched", "E1")
    rows = _entries(stored)
    assert rows[:2] == old  # the global chain as it was
    firm_chain, expert_chain = _entries(stored, f"firm:{uscc(1)}"), _entries(stored, "expert:E1")
    assert {r.entity for r in firm_chain} == {"order"} and len(firm_chain) == 2
    assert [r.entity for r in expert_chain] == ["assignment"]
    for chain in (firm_chain, expert_chain):
        assert chain[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(chain))
        assert _heads(stored)[chain[0].chain] == (chain[-1].id, chain[-1].hash)
    assert _report(stored).ok and _report(stored).entries == 5

    config = alembic_config(migrate.MIGRATIONS)
    with stored.begin() as conn, pytest.raises(RuntimeError, match="per-key chains"):
        config.attributes["connection"] = conn
        command.downgrade(config, "b0007")


def test_verify_names_an_edited_or_removed_row_on_a_firm_or_an_expert_chain(
    stored: Engine,
) -> None:
    uow = SqlUnitOfWork(stored)
    with uow:  # a second firm and expert, stored as IssueQrCode and UpsertExpert do
        uow.register.add(_card(2))
        uow.register.add(_expert("E2"))
        uow.commit()
    for n, firm in enumerate((1, 2, 1, 2)):
        _order(stored, firm, f"k{n}")
    assert _report(stored).ok
    expert_rows = _entries(stored, "expert:E1") + _entries(stored, "expert:E2")
    booked = next(r for r in expert_rows if r.entity == "assignment")
    with stored.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == booked.id).values(caller="x"))
    report = _report(stored)
    assert (report.ok, report.broken_at) == (False, booked.id) and "edited" in report.reason
    with stored.begin() as conn:
        conn.execute(
            update(audit_log).where(audit_log.c.id == booked.id).values(caller=booked.caller)
        )
    assert _report(stored).ok

    last = _entries(stored, f"firm:{uscc(2)}")[-1]
    with stored.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == last.id))
    report = _report(stored)
    assert not report.ok and "ends before the recorded head" in report.reason


def test_orders_of_many_firms_at_once_leave_every_chain_intact(stored: Engine) -> None:
    uow = SqlUnitOfWork(stored)
    with uow:
        for firm in range(2, 7):
            uow.register.add(_card(firm))
        for expert_id in ("E2", "E3"):
            uow.register.add(_expert(expert_id))
        uow.commit()
    jobs = [(1 + n % 6, f"key-{n}") for n in range(18)]
    with ThreadPoolExecutor(6) as pool:
        done = list(pool.map(lambda job: _order(stored, *job), jobs))
    assert len({o.id for o in done}) == 18
    report = _report(stored)
    assert report.ok, report
    chains = {r.chain for r in _entries(stored)}
    assert {f"firm:{uscc(n)}" for n in range(1, 7)} <= chains


def _written(engine: Engine, order_id: str) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """What an order left: its row, its transitions, its booking, and the trail's entries
    about it (without their instants and hashes)."""
    fields = ("caller", "action", "entity", "entity_id", "before", "after", "chain")
    with engine.connect() as conn:
        row = conn.execute(select(orders).where(orders.c.id == order_id)).one()
        moves = conn.execute(
            select(order_transitions.c.actor, order_transitions.c.from_status)
            .add_columns(order_transitions.c.to_status, order_transitions.c.reason)
            .where(order_transitions.c.order_id == order_id)
            .order_by(order_transitions.c.id)
        ).all()
        booked = conn.execute(
            select(assignments.c.expert_id, assignments.c.slot, assignments.c.day).where(
                assignments.c.order_id == order_id
            )
        ).all()
        entries = conn.execute(
            select(*(audit_log.c[f] for f in fields))
            .where(audit_log.c.entity_id == order_id)
            .order_by(audit_log.c.id)
        ).all()
    return row, moves, booked, entries


def _naive(instant: datetime) -> datetime:
    """An instant as UTC without its zone (SQLite's rows read through Core have none)."""
    return instant.astimezone(UTC).replace(tzinfo=None) if instant.tzinfo else instant


def test_a_taken_order_writes_its_row_history_booking_and_entries_as_before(
    engine: Engine,
) -> None:
    """The rows an order leaves, dispatched or waiting, and its entries on the firm's and
    the expert's chains: the order as taken, then what dispatch changed, and the booking
    (as the ORM's flushes wrote them before CreateOrder wrote them itself)."""
    migrate.upgrade(engine)
    uow = SqlUnitOfWork(engine)
    with uow:
        uow.register.add(_card(1))
        uow.register.add(_expert("E1"))
        uow.commit()
    firm, chain = uscc(1), f"firm:{uscc(1)}"
    taken = {
        "enterprise_id": firm,
        "status": "submitted",
        "item_codes": ["fire_safety"],
        "expert_id": None,
        "slot": None,
        "contact_phone": "138****5678",
        "dispatch_note": "",
    }
    order = _order(engine, 1, "k1")
    row, moves, booked, entries = _written(engine, order.id)
    assert (row.status, row.expert_id, row.slot, row.dispatch_note) == (
        "dispatched",
        "E1",
        HALF_DAYS[0],
        "",
    )
    assert (row.enterprise_name, row.contact_phone, row.idempotency_key) == (
        "企业1",
        "13812345678",
        "k1",
    )
    assert _naive(row.updated_at) == _naive(order.history[-1].at)
    assert _naive(row.created_at) == _naive(order.history[0].at)
    assert [tuple(m) for m in moves] == [
        ("firm", "", "submitted", messages.ORDER_TAKEN),
        ("dispatcher", "submitted", "dispatched", order.history[-1].reason),
    ]
    assert [tuple(b) for b in booked] == [("E1", HALF_DAYS[0], parse_slot(HALF_DAYS[0]).day)]
    moved = {"status": "dispatched", "expert_id": "E1", "slot": HALF_DAYS[0]}
    before = {"status": "submitted", "expert_id": None, "slot": None}
    booking = {"expert_id": "E1", "slot": HALF_DAYS[0]}
    assert [tuple(e) for e in entries] == [
        ("anonymous", "create", "assignment", order.id, None, booking, "expert:E1"),
        ("anonymous", "create", "order", order.id, None, taken, chain),
        ("anonymous", "update", "order", order.id, before, moved, chain),
    ]

    waiting = _order(engine, 1, "k2")  # E1's two half-days of HALF_DAYS[:2] are not both free
    waiting = _order(engine, 1, "k3") if waiting.status == "dispatched" else waiting
    row, moves, booked, entries = _written(engine, waiting.id)
    assert (row.status, row.expert_id, row.dispatch_note) == ("submitted", None, messages.NO_EXPERT)
    assert _naive(row.updated_at) == _naive(row.created_at) == _naive(waiting.history[0].at)
    assert [tuple(m) for m in moves] == [("firm", "", "submitted", messages.ORDER_TAKEN)]
    assert booked == []
    note = ({"dispatch_note": ""}, {"dispatch_note": messages.NO_EXPERT})
    assert [tuple(e) for e in entries] == [
        ("anonymous", "create", "order", waiting.id, None, taken, chain),
        ("anonymous", "update", "order", waiting.id, *note, chain),
    ]
    assert _report(engine).ok


def test_an_order_again_under_its_key_answers_the_first_and_leaves_every_chain_intact(
    stored: Engine,
) -> None:
    """The order's insert fails on its key at the commit (on PostgreSQL sent together with
    the lock of its chains' heads): the attempt is rolled back, its booking with it, and
    the key's order is the answer; the trail holds the first order's entries alone."""
    first = _order(stored, 1, "k1")
    again = _order(stored, 1, "k1")
    assert again.id == first.id
    with stored.connect() as conn:
        assert conn.execute(select(orders.c.id)).scalars().all() == [first.id]
        assert conn.execute(select(assignments.c.order_id)).scalars().all() == [first.id]
    assert _report(stored).ok and _report(stored).entries == 5
    second = _order(stored, 1, "k2")  # the heads moved as the chains say
    assert second.id != first.id and _report(stored).ok


def _firm_entry(engine: Engine, name: str, locked: list[str] | None, head: str) -> Any:
    """A change of firm 1's card recorded in a unit of work whose repository says it
    already locked the heads of the chains `locked`, firm 1's read as `head`
    (AuditTrail.heads_locked); the entry the commit wrote."""
    uow = SqlUnitOfWork(engine)
    chain = f"firm:{uscc(1)}"
    with uow:
        card = uow.register.firm(uscc(1), for_update=True)
        assert card is not None
        card.name = name
        uow.flush()
        if locked is not None:
            AUDIT.heads_locked(uow.register.session, locked, [(chain, head)])
        uow.commit()
    return _entries(engine, chain)[-1]


def test_the_seal_takes_heads_locked_before_only_when_they_cover_its_chains(
    stored: Engine,
) -> None:
    """What a repository read and locked ahead (an order's insert and the heads' lock in
    one round trip on PostgreSQL) is what the entries are chained after, and only when it
    covers every chain they go to; a rollback forgets it."""
    chain = f"firm:{uscc(1)}"
    real = _heads(stored)[chain][1]
    assert _firm_entry(stored, "甲", [], "bogus").prev_hash == real  # not covered: read
    real = _heads(stored)[chain][1]
    assert _firm_entry(stored, "乙", [chain], real).prev_hash == real
    assert _report(stored).ok
    uow = SqlUnitOfWork(stored)
    with uow:  # locked ahead, then rolled back: the session's next transaction reads them
        assert uow.register.firm(uscc(1), for_update=True) is not None
        AUDIT.heads_locked(uow.register.session, [chain], [(chain, "bogus")])
        uow.rollback()
        card = uow.register.firm(uscc(1), for_update=True)
        assert card is not None
        card.name = "丙"
        uow.commit()
    assert _entries(stored, chain)[-1].prev_hash != "bogus" and _report(stored).ok
    # taken as given when it covers the chains: a wrong head breaks the chain there
    broken = _firm_entry(stored, "丁", [chain], "bogus")
    assert broken.prev_hash == "bogus" and not _report(stored).ok
