"""Failures inside the statements booking sends by psycopg's pipeline on PostgreSQL
(`BookingRegister._pipelined`, `_after_savepoint`), review 35: a double tap (an order's
idempotency key sent again) fails the order's insert inside the pipeline, which must be
an ordinary answer (the first order), never a psycopg warning in the service's log that
names the connection; and audit heads locked after dispatch's savepoint are forgotten
when it is rolled back to (its raw ROLLBACK TO SAVEPOINT released their locks), so the
seal reads them again and the chain does not fork."""

from __future__ import annotations

from typing import Any

import pytest
from google.rpc import code_pb2
from sqlalchemy import Engine

from services.booking.adapters import migrate
from services.booking.adapters.orm import AUDIT, audit_log
from services.booking.adapters.repository import _SAVEPOINT
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.service_layer.orders import create_order
from services.common.audit import chains_of, heads_query
from services.common.db import _interrupt, database_unavailable, driver_of
from services.common.grpc_errors import classify
from tests.integration.booking.test_audit_chains import _card, _expert, _report, _token
from tests.integration.booking.test_dispatch_query import HALF_DAYS, _ctx
from tests.support import uscc

FORM: dict[str, Any] = {
    "item_codes": ["fire_safety"],
    "preferred_slots": [HALF_DAYS[0], HALF_DAYS[3]],
    "contact_name": "联系人",
    "contact_phone": "13812345678",
}


@pytest.fixture
def pg(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the pipeline is PostgreSQL's")
    migrate.upgrade(engine)
    with SqlUnitOfWork(engine) as uow:
        uow.register.add(_card(1))
        uow.register.add(_expert("E1"))
        uow.commit()
    return engine


def _order(engine: Engine, key: str) -> Any:
    return create_order(SqlUnitOfWork(engine), _ctx(), _token(1), dict(FORM), key)


def test_a_repeated_key_answers_the_first_order_and_logs_no_psycopg_warning(
    pg: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Some double taps (1 in 10 to 1 in 400, by the machine's timing: this test failed
    on the old code about every other run) had psycopg read the insert's error while the
    next statement was queued: closing the pipeline with that error propagating logged
    "error ignored terminating <psycopg.Pipeline … (host=… user=…)>"."""
    with caplog.at_level("WARNING", logger="psycopg"):
        for n in range(400):
            first = _order(pg, f"dup{n}")
            assert _order(pg, f"dup{n}").id == first.id
    assert [r.getMessage()[:120] for r in caplog.records if r.name.startswith("psycopg")] == []
    assert _report(pg).ok


def test_heads_locked_after_a_savepoint_are_read_again_once_it_is_rolled_back_to(
    pg: Engine,
) -> None:
    chain = f"firm:{uscc(1)}"
    uow = SqlUnitOfWork(pg)
    with uow:
        register = uow.register
        register._run(_SAVEPOINT)
        rows = register._pipelined([(heads_query(chains_of(audit_log)), {"keys": [chain]})])[0]
        AUDIT.heads_locked(register.session, [chain], rows)
        register._back_to_savepoint()  # the heads' lock is released with it
        with SqlUnitOfWork(pg) as other:  # another writer moves the head meanwhile
            card = other.register.firm(uscc(1), for_update=True)
            assert card is not None
            card.name = "别人"
            other.commit()
        card = register.firm(uscc(1), for_update=True)
        assert card is not None
        card.name = "我"
        uow.commit()
    assert _report(pg).ok


def test_a_rollback_to_dispatchs_savepoint_keeps_the_prepared_statements(pg: Engine) -> None:
    """A dispatch that lost its race rolls back to its savepoint; through psycopg's
    cursor the command status ("ROLLBACK") made psycopg deallocate every statement the
    connection had prepared, so each (the candidate query among them) was parsed and
    planned again five times. Sent by libpq, the statements stay prepared, and a bad
    rollback is still SQLAlchemy's error."""
    from sqlalchemy.exc import DBAPIError

    from services.booking.adapters.orm import experts

    probe = "SELECT count(*) FROM experts WHERE id = %s"
    uow = SqlUnitOfWork(pg)
    with uow:
        register = uow.register
        driver = driver_of(register.session.connection())
        for _ in range(3):
            driver.execute(probe, ["E1"], prepare=True)
        names = "SELECT count(*) FROM pg_prepared_statements"
        before = driver.execute(names).fetchone()[0]
        assert before >= 1
        register._run(_SAVEPOINT)
        register._run(experts.update().where(experts.c.id == "E1").values(name="改"))
        register._back_to_savepoint()
        assert driver.execute(probe, ["E1"], prepare=True).fetchone()[0] == 1
        assert driver.execute(names).fetchone()[0] == before
        assert register.expert("E1").name != "改"  # type: ignore[union-attr]
        uow.commit()
    with SqlUnitOfWork(pg) as uow, pytest.raises(DBAPIError, match="dispatch_claim"):
        uow.register._back_to_savepoint()  # no savepoint: SQLAlchemy's error, not psycopg's


def test_a_connection_cut_before_the_rollback_to_savepoint_reads_as_unavailable(
    pg: Engine,
) -> None:
    """Review 42 F1: the watchdog cuts a stalled connection (or the server dies) between
    dispatch's booking and its rollback to the savepoint, which goes by libpq: its error
    says the database is unavailable (OperationalError), as psycopg's cursor said it,
    not a bare DatabaseError that reads as a bug; the call ends UNAVAILABLE and gives its
    connection back."""
    uow = SqlUnitOfWork(pg)
    caught: list[BaseException] = []
    with pytest.raises(Exception) as ended, uow:
        register = uow.register
        register._run(_SAVEPOINT)
        _interrupt(driver_of(register.session.connection()))  # what Watchdog.fire does
        try:
            register._back_to_savepoint()
        except Exception as exc:
            caught.append(exc)
            raise
    (rollback_error,) = caught
    assert database_unavailable(rollback_error), repr(rollback_error)[:200]
    assert classify(ended.value)[0].code == code_pb2.UNAVAILABLE
    assert pg.pool.checkedout() == 0
