"""CreateOrder's group commit (service_layer/order_groups.py, orders.take_orders) on SQLite
and PostgreSQL: a group must leave the same rows and give the same answers as the same
orders taken one by one (orders, transitions, bookings, the audit entries with their
callers, every chain verifying), orders competing for one scarce half-day behave as
sequential ones, a repeated key inside a group and across groups answers with its first
order, a bad order fails alone, and a database that fails the group's commit fails every
caller as the one-by-one path does, leaving nothing written."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy import exc as sa_exc

from services.booking.adapters import migrate
from services.booking.adapters.expert_offers import write_offer
from services.booking.adapters.orm import (
    assignments,
    audit_head,
    audit_log,
    experts,
    firm_cards,
    order_transitions,
    orders,
)
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.domain.orders import KeyUsedForOtherOrder, Order
from services.booking.domain.records import Expert
from services.booking.service_layer import orders as use_cases
from services.booking.service_layer.order_groups import OrderGroups
from services.common.audit import verify
from services.common.call_groups import GroupLimits
from services.common.context import Principal, bind
from services.common.db import database_unavailable
from services.common.errors import DomainError, PermissionDenied, ValidationError
from services.common.ratelimit import Rate, RateLimiter
from tests.booking_env import scratch_engine
from tests.integration.booking.test_audit_chains import _card, _token
from tests.integration.booking.test_dispatch_query import HALF_DAYS, _ctx
from tests.integration.conftest import PG_ADMIN_URL
from tests.support import uscc

CTX = _ctx()


def _form(slots: list[str], item: str = "fire_safety") -> dict[str, Any]:
    return {
        "item_codes": [item],
        "preferred_slots": slots,
        "contact_name": "联系人",
        "contact_phone": "13812345678",
    }


def _expert(expert_id: str, slots: list[str], per_day: int = 2) -> Expert:
    return Expert(expert_id, "专家", "", ["fire_crowded"], ["稠城街道"], slots, per_day, True, [])


def _seed(engine: Engine, pool: list[Expert], firms: int = 4) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for n in range(1, firms + 1):
            card = _card(n)
            conn.execute(
                insert(firm_cards).values({c.name: getattr(card, c.name) for c in firm_cards.c})
            )
        for expert in pool:
            conn.execute(
                insert(experts).values({c.name: getattr(expert, c.name) for c in experts.c})
            )
            write_offer(conn, expert, ("slots", "domains", "regions", "conflicts"))


@pytest.fixture(params=["sqlite", "postgresql"])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two fresh booking databases of one kind: one takes orders in a group, the other
    one by one."""
    with (
        scratch_engine(request.param, tmp_path, "groups_a", PG_ADMIN_URL) as a,
        scratch_engine(request.param, tmp_path, "groups_b", PG_ADMIN_URL) as b,
    ):
        yield a, b


def _in_context(caller: str) -> contextvars.Context:
    """A caller's own context, as the server gives each call (the trail names it)."""
    context = contextvars.copy_context()
    context.run(bind, Principal(caller))
    return context


# firm, key, form (None: a forged token). The scarce day HALF_DAYS[:2] is offered by E1
# alone, at most one visit that day; E2 offers the next days.
ORDERS: list[tuple[int, str, dict[str, Any] | None]] = [
    (1, "k1", _form(HALF_DAYS[:2])),
    (2, "k2", _form(HALF_DAYS[:2])),  # E1's day is taken: waits (no one else)
    (3, "k3", _form(HALF_DAYS[:4])),  # the next candidate: E2
    (1, "k1", _form(HALF_DAYS[:2])),  # a repeat of the first, inside the group
    (4, "bad", _form(["not a slot", HALF_DAYS[3]])),  # refused (INVALID_ARGUMENT) alone
    (2, "forged", None),  # a forged token: refused alone
    (4, "k4", _form(HALF_DAYS[2:4])),
    (2, "k0", _form(HALF_DAYS[4:6])),  # a repeat of an order taken before the group
]
POOL = [_expert("E1", HALF_DAYS[:2], per_day=1), _expert("E2", HALF_DAYS[2:6])]


def _items() -> list[use_cases.NewOrder]:
    return [
        use_cases.NewOrder(_token(firm) if form is not None else "forged", form or {}, key)
        for firm, key, form in ORDERS
    ]


def _answer(engine: Engine, item: use_cases.NewOrder, taken: Any) -> Order | Exception:
    if isinstance(taken, Exception):
        return taken
    try:
        return use_cases.answer(SqlUnitOfWork(engine), CTX, item, taken)
    except DomainError as exc:
        return exc


def _shape(answer: Order | Exception) -> tuple[Any, ...]:
    """An answer without what differs by chance (ids, instants)."""
    if isinstance(answer, Exception):
        return (type(answer).__name__, str(answer))
    return (
        answer.enterprise_id,
        answer.idempotency_key,
        str(answer.status),
        answer.expert_id,
        answer.slot,
        answer.dispatch_note,
    )


def _rows(engine: Engine) -> dict[str, Any]:
    """The register's rows of orders, bookings and the trail, ids and instants replaced
    by the orders' (firm, key)."""
    with engine.connect() as conn:
        keys = {
            r.id: (r.enterprise_id, r.idempotency_key)
            for r in conn.execute(
                select(orders.c.id, orders.c.enterprise_id, orders.c.idempotency_key)
            )
        }
        taken = sorted(
            (keys[r.id], r.status, r.expert_id, r.slot, r.dispatch_note, tuple(r.preferred_slots))
            for r in conn.execute(select(orders))
        )
        moves = sorted(
            (keys[r.order_id], r.from_status, r.to_status, r.actor, r.reason)
            for r in conn.execute(select(order_transitions))
        )
        booked = sorted(
            (keys[r.order_id], r.expert_id, r.slot) for r in conn.execute(select(assignments))
        )
        trail: dict[str, list[tuple[Any, ...]]] = {}
        for r in conn.execute(select(audit_log).order_by(audit_log.c.id)):
            after = {
                k: v
                for k, v in (r.after or {}).items()
                if k not in ("id", "created_at", "updated_at", "order_id")
            }
            trail.setdefault(r.chain, []).append(
                (
                    r.caller,
                    r.action,
                    r.entity,
                    keys.get(r.entity_id, r.entity_id),
                    sorted(after.items()),
                    sorted((r.before or {}).keys()),
                )
            )
        report = verify(conn, audit_log, audit_head)
    assert report.ok, report
    return {"orders": taken, "moves": moves, "booked": booked, "trail": trail}


def test_a_group_leaves_the_rows_and_answers_of_the_orders_one_by_one(
    two: tuple[Engine, Engine],
) -> None:
    grouped, alone = two
    for engine in two:
        _seed(engine, POOL)
        # an order taken before: the last item repeats its key
        use_cases.create_order(SqlUnitOfWork(engine), CTX, _token(2), _form(HALF_DAYS[4:6]), "k0")
    contexts = [_in_context(f"caller-{n}") for n in range(len(ORDERS))]

    def run(n: int, work: Callable[[], Any]) -> Any:
        return contexts[n].run(work)

    items = _items()
    taken = use_cases.take_orders(lambda: SqlUnitOfWork(grouped), CTX, items, run)
    group_answers = [_answer(grouped, i, t) for i, t in zip(items, taken, strict=True)]

    one_by_one: list[Order | Exception] = []
    for n, (firm, key, form) in enumerate(ORDERS):
        token = _token(firm) if form is not None else "forged"
        try:
            one_by_one.append(
                contexts[n].run(
                    use_cases.create_order, SqlUnitOfWork(alone), CTX, token, form or {}, key
                )
            )
        except DomainError as exc:
            one_by_one.append(exc)

    assert [_shape(a) for a in group_answers] == [_shape(a) for a in one_by_one]
    # what the case is about actually happened
    shapes = [_shape(a) for a in group_answers]
    assert shapes[0][2:4] == ("dispatched", "E1")
    assert shapes[1][2:] == ("submitted", None, None, messages.NO_EXPERT)
    assert shapes[2][3] == "E2"
    assert isinstance(group_answers[3], Order) and isinstance(group_answers[0], Order)
    assert group_answers[3].id == group_answers[0].id
    assert isinstance(group_answers[4], ValidationError)
    assert isinstance(group_answers[5], PermissionDenied)
    assert _rows(grouped) == _rows(alone)


def test_orders_for_one_scarce_half_day_arriving_together_book_it_once(engine: Engine) -> None:
    _seed(engine, [_expert("E1", HALF_DAYS[:2], per_day=1)], firms=8)
    groups = OrderGroups(lambda: SqlUnitOfWork(engine), CTX, GroupLimits(8, 0.2, 1))
    start = threading.Barrier(8)
    answers: list[Order | BaseException] = [RuntimeError("not answered")] * 8

    def order(n: int) -> None:
        start.wait()
        try:
            answers[n] = groups.create(_token(n + 1), _form(HALF_DAYS[:2]), f"scarce-{n}")
        except BaseException as exc:
            answers[n] = exc

    threads = [threading.Thread(target=order, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(a, Order) for a in answers), answers
    taken = [a for a in answers if isinstance(a, Order)]
    assert sorted(str(a.status) for a in taken) == ["dispatched"] + ["submitted"] * 7
    assert {a.dispatch_note for a in taken if str(a.status) == "submitted"} == {messages.NO_EXPERT}
    rows = _rows(engine)
    assert len(rows["orders"]) == 8 and len(rows["booked"]) == 1


def test_a_key_repeated_inside_a_group_answers_with_its_first_order(engine: Engine) -> None:
    _seed(engine, POOL)
    first = use_cases.NewOrder(_token(1), _form(HALF_DAYS[2:4]), "again")
    other = use_cases.NewOrder(_token(2), _form(HALF_DAYS[2:4]), "again")  # another firm's
    taken = use_cases.take_orders(lambda: SqlUnitOfWork(engine), CTX, [first, first, other])
    answers = [_answer(engine, i, t) for i, t in zip([first, first, other], taken, strict=True)]
    assert all(isinstance(a, Order) for a in answers)
    a, b, c = answers
    assert isinstance(a, Order) and isinstance(b, Order) and isinstance(c, Order)
    assert a.id == b.id != c.id and str(b.status) == "dispatched"
    rows = _rows(engine)
    assert len(rows["orders"]) == 2 and len(rows["booked"]) == 2
    # and again in a later group: the stored order
    again = use_cases.take_orders(lambda: SqlUnitOfWork(engine), CTX, [first, other])
    again_answers = [_answer(engine, i, t) for i, t in zip([first, other], again, strict=True)]
    assert [x.id for x in again_answers if isinstance(x, Order)] == [a.id, c.id]
    assert len(_rows(engine)["orders"]) == 2


def test_a_key_repeated_with_other_content_is_already_exists_in_and_after_a_group(
    engine: Engine,
) -> None:
    """Review 47b F6: the same key with other content is refused (ALREADY_EXISTS, naming
    the first order), inside a group and in a later one; nothing more is written."""
    _seed(engine, POOL)
    first = use_cases.NewOrder(_token(1), _form(HALF_DAYS[2:4]), "again")
    edited = use_cases.NewOrder(_token(1), {**_form(HALF_DAYS[2:4]), "note": "改了"}, "again")
    items = [first, edited]
    taken = use_cases.take_orders(lambda: SqlUnitOfWork(engine), CTX, items)
    a, b = [_answer(engine, i, t) for i, t in zip(items, taken, strict=True)]
    assert isinstance(a, Order) and isinstance(b, KeyUsedForOtherOrder)
    assert b.order_id == a.id and b.code == "already_exists"
    later = use_cases.take_orders(lambda: SqlUnitOfWork(engine), CTX, [edited, first])
    c, d = [_answer(engine, i, t) for i, t in zip([edited, first], later, strict=True)]
    assert isinstance(c, KeyUsedForOtherOrder) and isinstance(d, Order) and d.id == a.id
    assert len(_rows(engine)["orders"]) == 1


def test_a_group_charges_the_order_limit_only_for_orders_it_takes(engine: Engine) -> None:
    """Review 47b F7 on the group path: refused forms and repeated keys cost nothing,
    a group taken again order by order is charged once, and a spent limit still answers
    a repeat with its order."""
    _seed(engine, POOL)
    ctx = replace(CTX, order_limiter=RateLimiter(Rate(per_second=1e-9, burst=2)))
    bad = _form(["not a slot"])
    items = [
        *(use_cases.NewOrder(_token(1), bad, f"bad{n}") for n in range(3)),
        use_cases.NewOrder(_token(1), _form(HALF_DAYS[2:4]), "a"),
        use_cases.NewOrder(_token(1), _form(HALF_DAYS[2:4]), "a"),  # a repeat: free
        use_cases.NewOrder(_token(1), _form(HALF_DAYS[4:6]), "b"),
        use_cases.NewOrder(_token(1), _form(HALF_DAYS[4:6]), "c"),  # the third: refused
    ]
    taken = use_cases.take_orders(lambda: SqlUnitOfWork(engine), ctx, items)
    answers = [_answer(engine, i, t) for i, t in zip(items, taken, strict=True)]
    assert [type(x).__name__ for x in answers] == ["ValidationError"] * 3 + ["Order"] * 3 + [
        "RateLimited"
    ]
    assert isinstance(answers[3], Order) and isinstance(answers[4], Order)
    assert answers[3].id == answers[4].id
    # spent: a repeat of "a" still gets its order, alone and in a group
    again = use_cases.take_orders(lambda: SqlUnitOfWork(engine), ctx, [items[3]])
    assert _answer(engine, items[3], again[0]).id == answers[3].id  # type: ignore[union-attr]
    alone = use_cases.create_order(SqlUnitOfWork(engine), ctx, _token(1), items[3].form, "a")
    assert alone.id == answers[3].id
    assert len(_rows(engine)["orders"]) == 2


def test_a_bad_order_fails_alone_and_the_others_are_taken(engine: Engine) -> None:
    _seed(engine, POOL)
    items = [
        use_cases.NewOrder(_token(1), _form(HALF_DAYS[2:4]), "a"),
        use_cases.NewOrder(_token(2), _form(HALF_DAYS[2:4], item="no_such_item"), "b"),
        use_cases.NewOrder(_token(3), _form(HALF_DAYS[4:6]), "c"),
    ]
    taken = use_cases.take_orders(lambda: SqlUnitOfWork(engine), CTX, items)
    assert isinstance(taken[1], ValidationError)
    assert [str(t.status) for t in taken if isinstance(t, Order)] == ["dispatched"] * 2
    rows = _rows(engine)
    assert {k for k, *_ in rows["orders"]} == {(uscc(1), "a"), (uscc(3), "c")}


class _SickCommit(SqlUnitOfWork):
    """The database goes away at the commit, after every row of the transaction was
    written (a connection lost in COMMIT)."""

    def commit(self) -> None:
        self.register.write_orders()
        self.flush()
        raise sa_exc.OperationalError(
            "COMMIT", {}, Exception("server closed the connection"), connection_invalidated=True
        )


def test_a_database_failing_the_groups_commit_fails_every_caller_as_one_by_one(
    engine: Engine,
) -> None:
    _seed(engine, POOL)
    items = [
        use_cases.NewOrder(_token(n), _form(HALF_DAYS[2 * n - 2 : 2 * n]), f"sick-{n}")
        for n in (1, 2, 3)
    ]
    with pytest.raises(sa_exc.OperationalError) as alone:
        use_cases.create_order(_SickCommit(engine), CTX, items[0].token, items[0].form, "x")
    assert database_unavailable(alone.value)  # the one-by-one path's UNAVAILABLE

    groups = OrderGroups(lambda: _SickCommit(engine), CTX, GroupLimits(8, 0.2, 1))
    start = threading.Barrier(len(items))
    answers: list[Any] = [None] * len(items)

    def order(n: int) -> None:
        start.wait()
        try:
            answers[n] = groups.create(items[n].token, items[n].form, items[n].key)
        except BaseException as exc:
            answers[n] = exc

    threads = [threading.Thread(target=order, args=(n,)) for n in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()  # never a hang
    assert all(
        isinstance(a, sa_exc.OperationalError) and database_unavailable(a) for a in answers
    ), answers
    rows = _rows(engine)
    assert rows["orders"] == [] and rows["booked"] == [] and rows["trail"] == {}


def test_two_groups_deadlocked_on_experts_take_their_orders_again_alone(engine: Engine) -> None:
    """Review 27 F1 (PostgreSQL, grouping turned on): each group's first order books one
    of two experts (X, Y: one half-day each); each group's second order then waits for
    the other group's expert: a deadlock. The group PostgreSQL picks as its victim is
    taken again order by order (never UNAVAILABLE to its callers), as one by one, where
    an order never waits while holding an expert."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite admits one writer at a time")
    _seed(engine, [_expert("X", HALF_DAYS[:2], per_day=1), _expert("Y", HALF_DAYS[:2], per_day=1)])
    firsts = {"a": threading.Event(), "b": threading.Event()}

    def run_of(name: str) -> Callable[[int, Callable[[], Any]], Any]:
        def run(n: int, work: Callable[[], Any]) -> Any:
            if n == 0:
                if name == "b":
                    firsts["a"].wait(30)  # a books first, so b's first order gets the other
                done = work()
                firsts[name].set()
                return done
            firsts["a"].wait(30)  # the second orders once both groups hold an expert
            firsts["b"].wait(30)
            return work()

        return run

    items = {
        "a": [use_cases.NewOrder(_token(n), _form(HALF_DAYS[:2]), f"a{n}") for n in (1, 2)],
        "b": [use_cases.NewOrder(_token(n), _form(HALF_DAYS[:2]), f"b{n}") for n in (3, 4)],
    }
    out: dict[str, Any] = {}

    def group(name: str) -> None:
        try:
            new_uow = lambda: SqlUnitOfWork(engine)  # noqa: E731
            out[name] = use_cases.take_orders(new_uow, CTX, items[name], run_of(name))
        except BaseException as exc:
            out[name] = exc

    threads = [threading.Thread(target=group, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()  # never a hang
    assert not any(isinstance(v, BaseException) for v in out.values()), out
    answers = [
        _answer(engine, i, t)
        for name in ("a", "b")
        for i, t in zip(items[name], out[name], strict=True)
    ]
    assert all(isinstance(a, Order) for a in answers), answers
    statuses = sorted(str(a.status) for a in answers if isinstance(a, Order))
    assert statuses == ["dispatched"] * 2 + ["submitted"] * 2  # two half-days, four orders
    assert len(_rows(engine)["booked"]) == 2  # and every audit chain verifies (_rows)
