"""A traceback in the logs carries no phone number: the engines hide a failing
statement's parameters, and the masking runs after the exception is formatted (structlog
events and stdlib records alike); on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, text

from services.common import logging as common_logging
from tests.booking_env import drop_pg, fresh_engine
from tests.integration.conftest import PG_ADMIN_URL

PHONE = "13912345678"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    made = fresh_engine(request.param, tmp_path, "logs", PG_ADMIN_URL)
    yield made
    if request.param == "sqlite":
        made.dispose()
    else:
        drop_pg(made, PG_ADMIN_URL)


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    out = io.StringIO()
    common_logging.configure("info", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    root = logging.getLogger()
    handler = logging.StreamHandler(out)  # as configure() sets up stdlib logging
    handler.setFormatter(common_logging.MaskingFormatter("%(name)s %(message)s"))
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)  # structlog's set-up: tests/conftest.py puts it back


def test_a_failing_statement_logs_no_phone_number(engine: Engine, sink: io.StringIO) -> None:
    with pytest.raises(Exception) as failed, engine.connect() as conn:
        conn.execute(text("insert into no_such_table (phone) values (:p)"), {"p": PHONE})
    assert PHONE not in str(failed.value)  # hide_parameters
    try:
        raise failed.value
    except Exception:
        structlog.get_logger("t").exception("unexpected error")
        logging.getLogger("services.test").exception("Exception in ASGI application")
    assert "no_such_table" in sink.getvalue()
    assert PHONE not in sink.getvalue()


def test_a_traceback_is_masked_after_it_is_formatted(sink: io.StringIO) -> None:
    try:
        raise ValueError(f"老板电话{PHONE}\x00 Bearer tok-0123456789abcdef")
    except ValueError:
        structlog.get_logger("t").exception("unexpected error")
        logging.getLogger("services.test").exception("Exception in ASGI application")
    logged = sink.getvalue()
    assert "ValueError" in logged and logged.count("139****5678") == 2
    assert PHONE not in logged and "tok-0123456789abcdef" not in logged
