"""Review 52 on SQLite and PostgreSQL: dispatch books only half-days still ahead (F3), an
order whose half-days have all passed is cancelled by the system and the firm told (silent
item 4), and an order whose expert can no longer take it is taken from them and
dispatched again in the transaction of the expert's change (silent item 3), also when a
dispatch read the expert before the change was committed. Service-level tests on each
database, then the same through the real servers and the phone page."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Engine, insert, select, text

from services.booking.adapters import migrate
from services.booking.adapters.orm import (
    assignments,
    audit_head,
    audit_log,
    firm_cards,
    order_transitions,
)
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer import dispatch as dispatch_use_case
from services.booking.service_layer import experts as expert_use_cases
from services.booking.service_layer.orders import create_order
from services.booking.service_layer.ports import BookingContext
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.audit import verify
from services.common.http_server import start_http
from tests.booking_env import Clock, Pair
from tests.integration.booking.test_audit_chains import KEYS, _card, _token
from tests.integration.booking.test_dispatch_query import MENU, _general_way_only
from tests.support import uscc


def _day(clock: Clock, days: int, half: str = "AM") -> str:
    return f"{clock.today + timedelta(days=days)} {half}"


@pytest.fixture
def clock() -> Clock:
    return Clock(date(2026, 6, 1))


@pytest.fixture
def ctx(clock: Clock) -> BookingContext:
    return BookingContext(KEYS, MENU, None, "https://example.org", today=clock)  # type: ignore[arg-type]


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The booking database, migrated, with firms 1 and 2 (their QR codes issued)."""
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for n in (1, 2):
            card = _card(n)
            conn.execute(
                insert(firm_cards).values({c.name: getattr(card, c.name) for c in firm_cards.c})
            )
    return engine


@pytest.fixture(params=["usual", "general"])
def way(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each of dispatch's two ways: the usual two statements, or the general way."""
    patched = pytest.MonkeyPatch()
    if request.param == "general":
        _general_way_only(patched)
    yield request.param
    patched.undo()


def _order(engine: Engine, ctx: BookingContext, firm: int, key: str, *slots: str) -> Any:
    form = {
        "item_codes": ["fire_safety"],
        "preferred_slots": list(slots),
        "contact_name": "联系人",
        "contact_phone": "13812345678",
    }
    return create_order(SqlUnitOfWork(engine), ctx, _token(firm), form, key)


def _expert(expert_id: str, slots: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "expert_id": expert_id,
        "name": f"专家{expert_id}",
        "domains": ["fire_crowded"],
        "regions": ["稠城街道"],
        "slots": slots,
        **fields,
    }


def _upsert(engine: Engine, ctx: BookingContext, data: dict[str, Any]) -> None:
    expert_use_cases.upsert_expert(SqlUnitOfWork(engine), ctx, data)


def _stored(engine: Engine, ctx: BookingContext, order_id: str) -> Any:
    uow = SqlUnitOfWork(engine)
    with uow:
        order = uow.register.order(order_id)
        assert order is not None
        moves = [(m.from_status, m.to_status, m.actor, m.reason) for m in order.history]
        return order.status, order.expert_id, order.slot, order.dispatch_note, moves


def _booked(engine: Engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(assignments.c.order_id, assignments.c.expert_id, assignments.c.slot)
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]


def _verified(engine: Engine) -> None:
    with engine.connect() as conn:
        report = verify(conn, audit_log, audit_head)
    assert report.ok, report


# ---------------------------------------------------------------- half-days still ahead


def test_only_half_days_ahead_are_booked_and_an_order_of_passed_ones_is_cancelled(
    db: Engine, ctx: BookingContext, clock: Clock, way: str
) -> None:
    """Orders wait from 06-01; on 06-02 an expert offering 06-01 to 06-05 arrives (a
    month's availability loaded mid-month): one order is booked on 06-03, not on the
    morning of 06-02 (today: not ahead); the other, of 06-02 only, is cancelled."""
    later = _order(db, ctx, 1, "a", _day(clock, 1), _day(clock, 2, "PM"))
    today_only = _order(db, ctx, 1, "b", _day(clock, 1), _day(clock, 1, "PM"))
    assert later.status == today_only.status == "submitted"
    offered = [_day(clock, d, h) for d in range(0, 5) for h in ("AM", "PM")]
    clock.today += timedelta(days=1)
    _upsert(db, ctx, _expert("E1", offered))  # then the waiting orders are retried
    status, expert, slot, _, _ = _stored(db, ctx, later.id)
    assert (status, expert, slot) == ("dispatched", "E1", _day(clock, 1, "PM"))
    status, expert, slot, note, moves = _stored(db, ctx, today_only.id)
    assert (status, expert, slot, note) == ("cancelled", None, None, messages.SLOTS_PASSED)
    assert moves[-1] == ("submitted", "cancelled", "dispatcher", messages.SLOTS_PASSED)
    assert _booked(db) == {(later.id, "E1", _day(clock, 1, "PM"))}
    assert dispatch_use_case.redispatch_waiting(SqlUnitOfWork(db), ctx) == 0
    _verified(db)


# ---------------------------------------------------------------- the expert's change


@pytest.fixture
def no_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the retry after the commit: what the change's own transaction did."""
    monkeypatch.setattr(expert_use_cases, "redispatch_after_commit", lambda _uow, _ctx: None)


def test_a_deactivated_experts_orders_are_dispatched_again_in_the_same_transaction(
    db: Engine, ctx: BookingContext, clock: Clock, way: str, no_retry: None
) -> None:
    days = [_day(clock, d, h) for d in range(1, 8) for h in ("AM", "PM")]
    _upsert(db, ctx, _expert("E1", days))
    _upsert(db, ctx, _expert("E2", days, regions=["北苑街道"]))  # not local: second choice
    first = _order(db, ctx, 1, "a", _day(clock, 1), _day(clock, 2))
    second = _order(db, ctx, 2, "b", _day(clock, 3), _day(clock, 4))
    assert first.expert_id == second.expert_id == "E1"
    _upsert(db, ctx, _expert("E1", days, active=False))
    for order in (first, second):
        status, expert, slot, _, moves = _stored(db, ctx, order.id)
        assert (status, expert, slot) == ("dispatched", "E2", order.slot)
        reason = messages.TAKEN_FROM_EXPERT["inactive"]
        label = f"{int(order.slot[5:7])}月{int(order.slot[8:10])}日上午"
        assert moves[-2] == (
            "dispatched",
            "submitted",
            "dispatcher",
            reason.format(expert="E1", slot=label),
        )
        assert moves[-1][:3] == ("submitted", "dispatched", "dispatcher")
    assert _booked(db) == {(first.id, "E2", first.slot), (second.id, "E2", second.slot)}
    _verified(db)


def test_a_conflict_declared_after_dispatch_moves_only_that_firms_order(
    db: Engine, ctx: BookingContext, clock: Clock, way: str, no_retry: None
) -> None:
    days = [_day(clock, d, h) for d in range(1, 8) for h in ("AM", "PM")]
    _upsert(db, ctx, _expert("E1", days))
    _upsert(db, ctx, _expert("E2", days, regions=["北苑街道"]))
    mine = _order(db, ctx, 1, "a", _day(clock, 1), _day(clock, 2))
    other = _order(db, ctx, 2, "b", _day(clock, 1), _day(clock, 2))
    _upsert(db, ctx, _expert("E1", days, conflicts=[uscc(1)]))
    assert _stored(db, ctx, mine.id)[:2] == ("dispatched", "E2")
    assert _stored(db, ctx, other.id)[:2] == ("dispatched", "E1")
    with db.connect() as conn:
        reasons = conn.execute(
            select(order_transitions.c.reason).where(order_transitions.c.to_status == "submitted")
        ).scalars()
        assert any("回避" in r for r in reasons)


def test_with_nobody_free_a_withdrawn_half_days_order_waits_and_its_slot_is_freed(
    db: Engine, ctx: BookingContext, clock: Clock, no_retry: None
) -> None:
    days = [_day(clock, d) for d in range(1, 8)]
    _upsert(db, ctx, _expert("E1", days))
    order = _order(db, ctx, 1, "a", _day(clock, 1), _day(clock, 2))
    _upsert(db, ctx, _expert("E1", days[2:]))  # both of the order's half-days withdrawn
    status, expert, slot, note, moves = _stored(db, ctx, order.id)
    assert (status, expert, slot, note) == ("submitted", None, None, messages.NO_EXPERT)
    assert moves[-1][:2] == ("dispatched", "submitted")
    assert _booked(db) == set()


# ---------------------------------------------------------------- a dispatch racing the change


@pytest.mark.parametrize("change", ["deactivate", "conflict"])
def test_a_dispatch_that_read_the_expert_before_the_change_does_not_book_them(
    db: Engine, ctx: BookingContext, clock: Clock, change: str
) -> None:
    """PostgreSQL: the change holds the expert's row (as UpsertExpert does) while a
    dispatch reads its offers, passes the held expert over, and then waits for them, the
    only one free; the change commits; the dispatch, locked at last, must see it. (SQLite
    lets one writer in at a time: nothing to race.)"""
    if db.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite admits one writer at a time")
    days = [_day(clock, d) for d in range(1, 8)]
    _upsert(db, ctx, _expert("E1", days))
    order = _order(db, ctx, 1, "a", _day(clock, 1), _day(clock, 2))
    uow = SqlUnitOfWork(db)
    with uow:  # the order waits again, as if taken before E1 offered anything
        uow.register.release_slot(order.id)
        stored = uow.register.order(order.id)
        assert stored is not None
        stored.status, stored.expert_id, stored.slot = "submitted", None, None
        uow.commit()
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            done = dispatch_use_case.dispatch_order(SqlUnitOfWork(db), ctx, order.id, actor="t")
            out["order"] = (str(done.status), done.expert_id)
        except Exception as exc:  # reported by the assertion below
            out["order"] = f"{type(exc).__name__}: {exc}"

    with db.connect() as held:
        held.execute(text("SELECT id FROM experts WHERE id = 'E1' FOR UPDATE"))
        if change == "deactivate":
            held.execute(text("UPDATE experts SET active = false WHERE id = 'E1'"))
        else:
            held.execute(
                text("INSERT INTO expert_conflicts (expert_id, enterprise_id) VALUES ('E1', :f)"),
                {"f": uscc(1)},
            )
        worker = threading.Thread(target=run)
        worker.start()
        _wait_until_blocked(db, held)
        held.commit()
    worker.join(30)
    assert out == {"order": ("submitted", None)}, out
    assert _booked(db) == set()


def _wait_until_blocked(engine: Engine, holder: Any) -> None:
    """Until another session waits for a lock `holder`'s transaction holds (bounded)."""
    pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
    deadline = time.monotonic() + 20
    with engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": pid},
            ).scalar()
            probe.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the dispatch never waited for the expert's row")


# ---------------------------------------------------------------- through the real servers


def _field_violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return fields


def test_the_servers_never_dispatch_into_the_past_and_move_orders_off_a_changed_expert(
    pair: Pair,
) -> None:
    """s10, s3_dispatch 4 and s3c, end to end: gRPC, then the firm's phone page."""
    f1, f2 = pair.register_firm(1), pair.register_firm(2)
    t1, t2 = pair.issue(f1).token, pair.issue(f2).token
    pair.expert("X", ["fire_crowded"], ["稠城街道"], days=range(1, 3), max_visits_per_day=1)
    a = pair.booking.CreateOrder(pair.order_request(t1, key="a"), timeout=10)
    pair.booking.CreateOrder(pair.order_request(t1, key="b"), timeout=10)
    c = pair.booking.CreateOrder(pair.order_request(t2, key="c"), timeout=10)
    assert (a.status, c.status) == (bpb.ORDER_STATUS_DISPATCHED, bpb.ORDER_STATUS_SUBMITTED)
    pair.clock.today += timedelta(days=4)
    # an admin's dispatch of the waiting order: its half-days have passed
    with pytest.raises(grpc.RpcError) as failed:
        pair.booking.DispatchOrder(bpb.DispatchOrderRequest(order_id=c.order_id), timeout=10)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _field_violations(failed.value) == ["order_id"]
    # firm 1 cancels its order of a day passed: the waiting order is not dispatched to it
    session = pair.sign_in(f1, t1)
    pair.booking.CancelOrder(
        bpb.CancelOrderRequest(order_id=a.order_id, qr_token=t1, reason="专家没来"),
        metadata=session,
        timeout=10,
    )
    c = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=c.order_id), timeout=10)
    assert (c.status, c.expert_id, c.slot) == (bpb.ORDER_STATUS_CANCELLED, "", "")
    assert c.dispatch_note == messages.SLOTS_PASSED
    # the firm can book again, and its order is moved off an expert who declares a conflict
    pair.expert("Y", ["fire_crowded"], ["稠城街道"])
    pair.expert("Z", ["fire_crowded"], ["北苑街道"])
    d = pair.booking.CreateOrder(pair.order_request(t2, key="d"), timeout=10)
    assert (d.status, d.expert_id) == (bpb.ORDER_STATUS_DISPATCHED, "Y")
    pair.expert("Y", ["fire_crowded"], ["稠城街道"], conflicts=[f2])
    d = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=d.order_id), timeout=10)
    assert (d.status, d.expert_id) == (bpb.ORDER_STATUS_DISPATCHED, "Z")
    assert any("回避" in h.reason for h in d.history)
    # the firm's phone page says why, in Chinese
    http = start_http(create_web_app(pair.ctx, pair.booking_engine))
    try:
        base = f"http://127.0.0.1:{http.port}"
        with httpx.Client(base_url=base, timeout=20) as client:
            phone = "13912345678"
            pair.booking.SetSignInPhone(
                bpb.SetSignInPhoneRequest(enterprise_id=f2, phone=phone), timeout=10
            )
            client.post(f"/q/{t2}/sign-in", data={"phone": phone})
            code = pair.sms.last_code(phone)
            client.post(f"/q/{t2}/sign-in/code", data={"phone": phone, "code": code})
            expired = client.get(f"/q/{t2}/orders/{c.order_id}").text
            moved = client.get(f"/q/{t2}/orders/{d.order_id}").text
            landing = client.get(f"/q/{t2}").text
    finally:
        http.stop()
    assert messages.SLOTS_PASSED in expired and "已取消" in expired
    # review 54 D5: the firm reads the experts by name and a neutral reason, not that
    # expert Y declared a conflict of interest with it
    assert messages.TAKEN_FOR_FIRM["again"] in moved
    assert "需回避本企业" not in moved and "利益冲突" not in moved
    assert "派单给专家 专家Y，" in moved and "派单给专家 专家Z，" in moved
    assert "派单给专家 Y，" not in moved and "派单给专家 Z，" not in moved
    assert messages.SLOTS_PASSED in landing


@pytest.mark.parametrize("change", ["deactivate", "conflict", "domain"])
def test_the_usual_cases_booking_under_the_lock_reads_the_expert_again(
    db: Engine, ctx: BookingContext, clock: Clock, change: str
) -> None:
    """PostgreSQL's usual case books in a second statement, once the first locked the
    expert it ranked first: a change committed between the two (the first statement's
    reading predates it) must stop that booking. The booking statement alone, run after
    such a change: it books nothing."""
    from services.booking.adapters import repository

    days = [_day(clock, d) for d in range(1, 8)]
    changed = {"deactivate": {"active": False}, "conflict": {"conflicts": [uscc(1)]}}
    _upsert(db, ctx, _expert("E1", days, **changed.get(change, {"domains": ["gas"]})))
    order = _order(db, ctx, 1, "a", _day(clock, 1), _day(clock, 2))
    assert order.status == "submitted"
    params = {
        "p0": _day(clock, 1),
        "p1": _day(clock, 2),
        "d0": "fire_crowded",
        "enterprise_id": uscc(1),
        "expert_id": "E1",
        "order_id": order.id,
        "created_at": order.created_at,
    }
    with db.begin() as conn:
        booking = repository._book_first_free(db.dialect.name, 2, 1)
        assert conn.execute(booking, params).all() == []
