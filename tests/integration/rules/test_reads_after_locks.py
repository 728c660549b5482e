"""Reads after row locks on PostgreSQL (review 26): a statement that waits for a row
lock re-reads the locked row alone, at READ COMMITTED; the rows it joins stay as its
snapshot had them. So a ReportEvent group (BatchRegister.group_reads) and a re-evaluation
batch (next_firms) lock their firms first and read them, their current decision's day
and their open entries, in a statement after. Each test holds a firm's lock in another
transaction (its commit delayed) while the group or batch waits on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, select, text

from services.rules.adapters.orm import whitelist_entries
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import event_to_dict
from services.rules.service_layer import register_handlers as rh
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Clock, upsert
from tests.integration.rules.test_events import accident, complaint, profile_updated
from tests.support import profile, uscc

R = TypeVar("R")


def _item(ctx: Any, ev: Any, source: str = "x") -> rh.Reported:
    event, fingerprint = rh.parse_reported(ctx, event_to_dict(ev))
    return rh.Reported(event, fingerprint, source)


class _SlowCommit(UnitOfWork):
    """Commits 2 s after `holding` is set: its row locks held meanwhile."""

    holding = threading.Event()

    def commit(self) -> None:
        _SlowCommit.holding.set()
        time.sleep(2.0)
        super().commit()


def _meanwhile(
    held: Callable[[_SlowCommit], Any], engine: Engine, then: Callable[[], R]
) -> tuple[Any, R]:
    """`held(uow)` in a thread of its own, on a unit of work that keeps its row locks
    2 s before committing; `then()` once they are held (it waits on them). Both
    results."""
    _SlowCommit.holding.clear()
    first: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: first.update(result=held(_SlowCommit(engine))))
    thread.start()
    assert _SlowCommit.holding.wait(20)
    result = then()
    thread.join(30)
    return first["result"], result


def test_a_group_waiting_on_a_firms_lock_reads_its_entry_as_committed(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """PostgreSQL, READ COMMITTED: a group whose firm is locked by another transaction
    (a single ReportEvent) waits in group_reads; once that commits, the group must see the
    entry it revoked as revoked (the old code read the entries in a later statement)."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks and READ COMMITTED snapshots are PostgreSQL's")
    upsert(register_stub, profile(1))  # on the white list: one open entry
    ctx = grpc_server.context_from(rulebook, Clock())
    # the group's first read waits on the firm's lock, taken before the other commits
    a_view, answers = _meanwhile(
        lambda uow: rh.apply_reported(uow, ctx, _item(ctx, accident(1, "a1"))),
        db_engine,
        lambda: rh.apply_group(lambda: UnitOfWork(db_engine), ctx, [_item(ctx, accident(1, "b1"))]),
    )
    b_view = answers[0]
    assert not isinstance(b_view, Exception), b_view
    with db_engine.connect() as conn:
        rows = conn.execute(
            select(whitelist_entries).where(whitelist_entries.c.enterprise_id == uscc(1))
        ).all()
    assert len(rows) == 1
    # the accident alone revoked the entry: the closure is its decision's
    assert rows[0].closed_decision_id == a_view.decision_id, (
        rows[0].closed_decision_id,
        a_view.decision_id,
        b_view.decision_id,
    )
    kinds = [h.kind for h in b_view.history]
    assert kinds.count("whitelist_revoked") == 1, kinds


def test_a_group_waiting_on_a_firms_lock_sees_the_entry_granted_meanwhile(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """The other way round: the transaction the group waits on grants an entry; the
    group's accident must revoke it (the old code did). Read from the group's older
    snapshot, the firm has no open entry: the accident leaves the new one open."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks and READ COMMITTED snapshots are PostgreSQL's")
    upsert(register_stub, profile(1, blacklisted=True))  # not on the white list
    ctx = grpc_server.context_from(rulebook, Clock())
    cleared = profile_updated(1, "a1", profile(1, blacklisted=False))
    view, answers = _meanwhile(
        lambda uow: rh.apply_reported(uow, ctx, _item(ctx, cleared)),
        db_engine,
        lambda: rh.apply_group(lambda: UnitOfWork(db_engine), ctx, [_item(ctx, accident(1, "b1"))]),
    )
    assert view.entry is not None  # the update put the firm on the white list
    assert not isinstance(answers[0], Exception), answers[0]
    with db_engine.connect() as conn:
        still_open = conn.execute(
            select(whitelist_entries.c.id).where(
                whitelist_entries.c.enterprise_id == uscc(1),
                whitelist_entries.c.revoked_on.is_(None),
            )
        ).all()
        status = conn.execute(text("select status from firms")).scalar()
    assert answers[0].entry is None
    assert still_open == [], (status, still_open)  # an accident today: off the white list


def test_a_group_waiting_on_a_firms_lock_keeps_the_register_moving_forward(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """The firms' outer join to their decisions was read from the locking statement's
    snapshot: after waiting on the lock the firm named a decision that snapshot lacked,
    so decided_on was None and the group decided as of today although the firm's current
    decision speaks for a later day."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks and READ COMMITTED snapshots are PostgreSQL's")
    upsert(register_stub, profile(1))
    ctx = grpc_server.context_from(rulebook, Clock())
    view, answers = _meanwhile(
        lambda uow: rh.upsert_enterprise(uow, ctx, profile(1), "2026-09-01"),
        db_engine,
        lambda: rh.apply_group(lambda: UnitOfWork(db_engine), ctx, [_item(ctx, accident(1, "b1"))]),
    )
    assert str(view.decision.as_of) == "2026-09-01"
    assert str(answers[0].decision.as_of) == "2026-09-01", answers[0].decision.as_of


def test_two_groups_of_one_firm_at_once_close_its_entry_once(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """`--event-groups` 2 (the default): the second group waits on the first's firm lock
    and must then see the entry the first revoked."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks and READ COMMITTED snapshots are PostgreSQL's")
    for n in (1, 2):
        upsert(register_stub, profile(n))
    ctx = grpc_server.context_from(rulebook, Clock())
    group_a = [_item(ctx, accident(1, "a1")), _item(ctx, complaint(2, "a2"))]
    group_b = [_item(ctx, accident(1, "b1")), _item(ctx, complaint(2, "b2"))]
    views, second = _meanwhile(
        lambda uow: rh.apply_group(lambda: uow, ctx, group_a),
        db_engine,
        lambda: rh.apply_group(lambda: UnitOfWork(db_engine), ctx, group_b),
    )
    with db_engine.connect() as conn:
        row = conn.execute(
            select(whitelist_entries).where(whitelist_entries.c.enterprise_id == uscc(1))
        ).one()
    assert row.closed_decision_id == views[0].decision_id
    assert [h.kind for h in second[0].history].count("whitelist_revoked") == 1


def test_a_reevaluation_batch_waiting_on_a_firms_lock_leaves_a_later_decision_alone(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """next_firms read the firm's current decision's day in its locking statement: after
    waiting on the lock it paired the firm with its previous decision's day, and the
    batch decided it as of the run's day, behind the decision just committed."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks and READ COMMITTED snapshots are PostgreSQL's")
    for n in (1, 2):
        upsert(register_stub, profile(n))
    ctx = grpc_server.context_from(rulebook, Clock())
    _, run = _meanwhile(
        lambda uow: rh.upsert_enterprise(uow, ctx, profile(1), "2026-09-01"),
        db_engine,
        lambda: reevaluate_all(UnitOfWork(db_engine), ctx, date(2026, 7, 31)),
    )
    assert run.processed == 2
    with UnitOfWork(db_engine) as uow:
        days = {
            n: uow.register.decision_day(uow.register.firm(uscc(n)).decision_id) for n in (1, 2)
        }
    assert days == {1: date(2026, 9, 1), 2: date(2026, 7, 31)}  # firm 1 left as decided
