"""Review 54 D4: serve's periodic loop runs the sweep, the retry of waiting orders (with
the system cancellation of passed ones) and the outbox wake-up each on its own, so one
that fails skips none of the others; each failure is logged once, naming its job."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from services.booking.entrypoints import cli


class _Once:
    """A stop event that lets the loop run one round."""

    def __init__(self) -> None:
        self.rounds = 0

    def wait(self, _interval: float) -> bool:
        self.rounds += 1
        return self.rounds > 1


class _Worker:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_a_failing_sweep_skips_neither_the_order_retries_nor_the_outbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []

    def sweep(*_: Any) -> int:
        ran.append("sweep")
        raise RuntimeError("Conflict: a concurrent change got there first")

    def redispatch(*_: Any) -> int:
        ran.append("redispatch")
        return 0

    monkeypatch.setattr(cli.tickets, "sweep", sweep)
    monkeypatch.setattr(cli.dispatch, "redispatch_waiting", redispatch)
    monkeypatch.setattr(cli, "SqlUnitOfWork", lambda engine: None)
    worker = _Worker()
    with structlog.testing.capture_logs() as logged:
        cli._periodic(None, None, worker, 0, _Once())  # type: ignore[arg-type]
    assert ran == ["sweep", "redispatch"] and worker.woken == 1
    failures = [e for e in logged if e["log_level"] == "error"]
    assert [(e["event"], e["job"]) for e in failures] == [("periodic job failed", "sweep")]
