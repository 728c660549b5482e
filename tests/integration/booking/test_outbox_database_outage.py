"""Review 68 (the fault soak): while booking's database was unreachable (PostgreSQL behind
a proxy that went down, SQLite on a full disk) the outbox worker logged an error with a
60-line traceback on every pass, once a second, for the whole outage: 41 in 80 s of a
full disk. An unavailable database is an outage the worker waits out, as every call's
UNAVAILABLE says: one warning when it starts, one line when it is over."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.engine import make_url

from services.booking.adapters import migrate
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.service_layer import outbox as box
from services.common.db import DbTimeouts, make_engine
from tests.faults import TcpProxy, pg_database, through, wait_until
from tests.integration.conftest import PG_ADMIN_URL


class NoRules:
    def report(self, payload: Any) -> None:
        raise AssertionError("no event to deliver")


def test_an_unreachable_database_is_one_warning_not_a_traceback_every_pass() -> None:
    target = make_url(PG_ADMIN_URL)
    with pg_database(PG_ADMIN_URL, "outbox_outage") as url:
        direct = make_engine(url)
        migrate.upgrade(direct)
        direct.dispose()
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        engine = make_engine(
            through(url, proxy), pool_size=2, timeouts=DbTimeouts(statement=2, connect=1, pool=1)
        )
        passes = [0]

        def new_uow() -> SqlUnitOfWork:
            passes[0] += 1
            return SqlUnitOfWork(engine)

        worker = box.OutboxWorker(new_uow, NoRules(), idle_seconds=0.05)
        try:
            with structlog.testing.capture_logs() as logged:
                worker.start()
                wait_until(lambda: passes[0] >= 1, 30)
                proxy.down()
                seen = passes[0]
                wait_until(lambda: passes[0] >= seen + 4, 60)  # passes that all fail
                proxy.up()
                seen = passes[0]
                wait_until(lambda: passes[0] >= seen + 3, 60)  # and some that answer
        finally:
            worker.stop()
            proxy.close()
            engine.dispose()
    errors = [e for e in logged if e["log_level"] in ("error", "critical")]
    assert errors == []
    warned = [e for e in logged if e["log_level"] == "warning" and "database" in e["event"]]
    assert len(warned) == 1 and "traceback" not in repr(warned).lower()
    assert "exception" not in warned[0] and warned[0]["error"]
    assert any("answers again" in e["event"] for e in logged)
