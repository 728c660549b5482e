"""The demo city in both registers (what `make run` seeds), on a smaller city so it runs
in seconds: rules replays the booking history on its days, booking records the same
events as delivered, and the two agree event for event."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from google.protobuf import json_format
from sqlalchemy import text

from services.booking.adapters import migrate as booking_migrate
from services.booking.adapters.menu import load_menu
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.service_layer import demo as booking_demo
from services.booking.service_layer.ports import BookingContext
from services.common import demo_city
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.db import make_engine
from services.rules.adapters import migrate as rules_migrate
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import convert
from services.rules.entrypoints import grpc_server as rules_grpc
from services.rules.service_layer import demo as rules_demo
from services.rules.service_layer import register_handlers
from services.rules.service_layer.unit_of_work import UnitOfWork as RulesUnitOfWork
from services.rules.service_layer.whitelist_history import whitelist_sizes
from tests.booking_env import TEST_KEYS
from tests.support import RULESETS
from tests.unit.booking.fakes import FakeRules

TODAY = date(2026, 6, 1)


def test_both_registers_hold_the_same_year(tmp_path: Path) -> None:
    city = demo_city.city(TODAY, firm_count=60, booking_count=14)
    rules_engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}")
    booking_engine = make_engine(f"sqlite:///{tmp_path / 'booking.db'}")
    rules_migrate.upgrade(rules_engine)
    booking_migrate.upgrade(booking_engine)
    ctx = replace(rules_grpc.context_from(load_rulebook(RULESETS)), today=lambda: TODAY)

    def new_uow() -> RulesUnitOfWork:
        return RulesUnitOfWork(rules_engine)

    assert rules_demo.seed_city(new_uow, ctx, city) == 60
    events = sorted(rules_demo.history(city), key=lambda e: e[0])
    assert rules_demo.replay_history(new_uow, ctx, city) == len(events)
    assert rules_demo.seed_city(new_uow, ctx, city) == 0  # again: nothing new
    assert rules_demo.replay_history(new_uow, ctx, city) == 0

    booking = BookingContext(
        keyring=TEST_KEYS,
        menu=load_menu(RULESETS / "menu.yaml"),
        rules=FakeRules(),  # the seeder calls nothing remote
        public_url="http://phone.test",
        today=lambda: TODAY,
    )
    seeded = booking_demo.seed_city(SqlUnitOfWork(booking_engine), booking, city)
    assert seeded is not None and seeded.events == len(events)

    # the events happened on their days in rules: decisions dated then, not today
    with rules_engine.connect() as r:
        days = dict(r.execute(text("SELECT event_id, occurred_on FROM events")).all())
        by_event = [
            row[0]
            for row in r.execute(text("SELECT as_of FROM decisions WHERE cause LIKE '事件%'"))
        ]
    assert {e["event_id"] for _, e in events} == set(days)
    assert len(by_event) == len(events)  # each found / verified / overdue re-decided …
    assert sorted(str(d) for d in by_event) == sorted(str(d) for d, _ in events)  # … on its day
    sizes = whitelist_sizes(new_uow(), ctx, "", "", "")
    assert len(sizes) == 12 and sizes[-1].size > 0

    # booking's outbox holds the same events, delivered on their days; sent again, rules
    # answers each as the duplicate it is (same caller, id and content)
    with booking_engine.connect() as b:
        rows = b.execute(
            text("SELECT event_id, payload, delivered_at FROM outbox ORDER BY id")
        ).all()
    assert len(rows) == len(events) and all(row.delivered_at is not None for row in rows)
    for row in rows:
        payload = (
            row.payload if isinstance(row.payload, dict) else __import__("json").loads(row.payload)
        )
        message = json_format.ParseDict(payload, pb.EnterpriseEvent())
        view = register_handlers.report_event(
            new_uow(), ctx, convert.event_to_dict(message), rules_demo.BOOKING_CALLER
        )
        assert view.duplicate, row.event_id
        assert str(row.delivered_at).startswith(days[row.event_id])
    rules_engine.dispose()
    booking_engine.dispose()


def test_every_demo_account_has_its_work_to_do(tmp_path: Path) -> None:
    """Review 59 F10: demo-expert had no visit, demo-inspector an empty queue, and the
    firms `make run` prints as having tickets open had no sign-in mobile; the seeded
    times read 8 hours late on SQLite (F3)."""
    from services.booking.domain.staff import StaffAccount
    from services.booking.entrypoints.cli import _firms_with_open_tickets
    from services.booking.service_layer import staff_views
    from services.booking.service_layer.staff_sessions import principal_of
    from services.booking.service_layer.views import Guidance
    from services.common.instants import in_shanghai

    city = demo_city.city(TODAY, firm_count=60, booking_count=14)
    engine = make_engine(f"sqlite:///{tmp_path / 'booking.db'}")
    booking_migrate.upgrade(engine)
    ctx = BookingContext(
        keyring=TEST_KEYS,
        menu=load_menu(RULESETS / "menu.yaml"),
        rules=FakeRules(),
        public_url="http://phone.test",
        today=lambda: TODAY,
    )
    assert booking_demo.seed_city(SqlUnitOfWork(engine), ctx, city) is not None
    expert = StaffAccount("demo-expert", "专家", "expert", "", expert_id=demo_city.STAFF_EXPERT_ID)
    inspector = StaffAccount("demo-inspector", "检查员", "inspector", "", demo_city.STAFF_REGION)

    days = staff_views.my_visits(
        SqlUnitOfWork(engine), ctx, principal_of(expert), Guidance(FakeRules())
    ).days
    rows = [r for _, found in days for r in found]
    assert {r.order.status for r in rows} >= {"dispatched", "visited"}
    assert any(d == TODAY for d, _ in days)  # a visit to record today
    queue = staff_views.recheck_queue(
        SqlUnitOfWork(engine), ctx, principal_of(inspector), staff_views.QueueFilter()
    )
    assert queue["tickets"] and {t.expert_id for t in queue["tickets"]} >= {"E-FIRE-01"}
    overdue = staff_views.QueueFilter(overdue=True)
    assert staff_views.recheck_queue(SqlUnitOfWork(engine), ctx, principal_of(inspector), overdue)[
        "tickets"
    ]
    printed = _firms_with_open_tickets(city, 2)
    with SqlUnitOfWork(engine) as uow:
        assert all(uow.register.firm(f).sign_in_phone == booking_demo.DEMO_PHONE for f in printed)  # type: ignore[union-attr]
        assert all(uow.register.firm(f).region == demo_city.STAFF_REGION for f in printed)  # type: ignore[union-attr]
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT created_at FROM visits LIMIT 1")).scalar_one()
    assert in_shanghai(datetime.fromisoformat(stored)).hour == 17  # at(slot_day, 17)
    engine.dispose()


def test_the_replay_leaves_the_write_lock_free_between_events(tmp_path: Path) -> None:
    """`make run` replays the history while the server serves: on SQLite every call takes
    the write lock, so the replay must give it up and wait after each event (a replay
    committing back to back starved the server's calls into "database is locked")."""
    city = demo_city.city(TODAY, firm_count=30, booking_count=6)
    path = tmp_path / "rules.db"
    engine = make_engine(f"sqlite:///{path}")
    rules_migrate.upgrade(engine)
    ctx = replace(rules_grpc.context_from(load_rulebook(RULESETS)), today=lambda: TODAY)
    rules_demo.seed_city(lambda: RulesUnitOfWork(engine), ctx, city)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    taken: list[bool] = []

    def pause() -> None:  # another connection takes the write lock at once, or fails
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        taken.append(True)

    applied = rules_demo.replay_history(lambda: RulesUnitOfWork(engine), ctx, city, pause=pause)
    assert applied > 0
    assert len(taken) == applied
    assert rules_demo.REPLAY_PAUSE > 0  # the default pause waits
