"""Days of record are Asia/Shanghai days, instants are stored in UTC, on SQLite and
PostgreSQL alike (review 59 F3): SQLite keeps no zone, so before every bound value went
through `columns.Instant` an order taken at 03:00 in Yiwu (19:00 UTC the day before) was
counted in the previous day's (and on the 1st, the previous month's) statistics, and an
instant written on the Shanghai clock (the demo seed's) was read back 8 hours late."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, insert, select

from services.booking.adapters import migrate
from services.booking.adapters.orm import firm_cards, orders
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.service_layer import stats
from services.common.instants import SHANGHAI, as_utc, in_shanghai
from tests.integration.booking.test_booking_key_deferred import _order
from tests.support import uscc
from tests.unit.booking.fakes import Clock, context


def _taken(engine: Engine, order_id: str, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(orders).values({**_order(order_id), "created_at": at}))


def _found(engine: Engine, first: date, last: date) -> set[str]:
    with SqlUnitOfWork(engine) as uow:
        found, _ = stats.read_records(uow, stats.Period(first, last, ()))
        return {o.id for o in found}


def test_a_day_of_record_holds_the_orders_taken_on_it_in_yiwu(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(firm_cards).values(enterprise_id=uscc(1), name="企业", region="x"))
    # stored as the use cases store them: now(), in UTC
    _taken(engine, "EARLY", datetime(2026, 11, 28, 19, 0, tzinfo=UTC))  # 29 Nov 03:00 in Yiwu
    _taken(engine, "LATE", datetime(2026, 11, 28, 15, 30, tzinfo=UTC))  # 28 Nov 23:30 in Yiwu
    _taken(engine, "DECEMBER", datetime(2026, 11, 30, 18, 0, tzinfo=UTC))  # 1 Dec 02:00
    assert _found(engine, date(2026, 11, 29), date(2026, 11, 29)) == {"EARLY"}
    assert _found(engine, date(2026, 11, 28), date(2026, 11, 28)) == {"LATE"}
    assert _found(engine, date(2026, 12, 1), date(2026, 12, 31)) == {"DECEMBER"}
    with SqlUnitOfWork(engine) as uow:
        taken, tickets = stats.read_records(
            uow, stats.Period(date(2026, 11, 1), date(2026, 12, 31), ())
        )
    figures = stats.summarise(context(clock=Clock(date(2026, 12, 31))), taken, tickets)
    months = dict(figures["by_month"])  # type: ignore[call-overload]
    assert months["2026-11"]["bookings_received"] == 2
    assert months["2026-12"]["bookings_received"] == 1


def test_an_instant_on_the_shanghai_clock_is_stored_as_the_same_instant(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(firm_cards).values(enterprise_id=uscc(1), name="企业", region="x"))
    seeded = datetime(2026, 11, 7, 17, 0, tzinfo=SHANGHAI)  # as the demo seed writes them
    _taken(engine, "SEEDED", seeded)
    with engine.connect() as conn:
        stored = conn.execute(select(orders.c.created_at)).scalar_one()
    assert as_utc(stored) == datetime(2026, 11, 7, 9, 0, tzinfo=UTC)
    assert in_shanghai(stored) == seeded
