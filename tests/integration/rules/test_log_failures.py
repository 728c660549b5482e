"""Review 41 F2: a log line that cannot be written never fails what it reports. The
RPC's log line is written as the call ends; when stderr is a pipe whose reader died (a
log shipper, journald restarting), the write raises, and the call used to be answered
UNKNOWN although its write had committed (a retry without an idempotency key then
applies it twice)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, text

from services.common import logging as common_logging
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from tests.integration.conftest import upsert
from tests.support import profile


def test_a_log_line_that_cannot_be_written_does_not_fail_a_committed_call(
    register_stub: RulesServiceStub, db_engine: Engine, monkeypatch: Any
) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone: every write fails with EPIPE
    dead = os.fdopen(write, "w")
    monkeypatch.setattr("sys.stderr", dead)
    common_logging.configure("info", json=True)  # as an entry point does
    try:
        status = upsert(register_stub, profile(1))
    finally:
        monkeypatch.undo()
        with contextlib.suppress(BrokenPipeError):
            dead.close()
    assert status.decision.enterprise_id == profile(1)["enterprise_id"]  # answered OK
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM firms")).scalar() == 1


def test_a_line_to_a_closed_stderr_is_dropped() -> None:
    """The same for a closed file (what pytest's capture leaves behind)."""
    closed = open(os.devnull, "w")  # noqa: SIM115 - closed on purpose
    closed.close()
    with pytest.raises(ValueError):
        structlog.PrintLogger(closed).info("structlog's own raises")
    common_logging._SparingLogger(closed).info("nothing to write to")


def test_a_process_without_stderr_or_stdout_logs_to_nowhere(monkeypatch: Any) -> None:
    """Review 50 N5: a daemon started `>&- 2>&-` has sys.stderr and sys.stdout None, and
    structlog's logger then raised on every line."""
    monkeypatch.setattr("sys.stderr", None)
    monkeypatch.setattr("sys.stdout", None)
    common_logging._stderr_logger().info("nothing to write to")
