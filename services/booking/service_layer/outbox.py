"""Deliver the outbox to the rules service: in order, retried with backoff, never lost.

A message is marked delivered only after the rules service acknowledged it; the rules
service applies each event id once, so a crash between the two only causes a harmless
redelivery. Several replicas may run the worker: a delivery claims its message row
(`FOR UPDATE SKIP LOCKED`), and a firm whose message another replica holds sends
nothing after it in this pass, so each firm's events still reach rules in the order
written. While the rules service is unreachable, delivery stops at the first
undelivered message (later events about the same hazard must not overtake it) and is
retried with exponential backoff. A message the rules service rejects for good
(INVALID_ARGUMENT, NOT_FOUND …) is parked as failed, logged, and skipped. Which is which
is decided by the failure's gRPC status code (domain/rules_service.py), never its text.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import structlog

from services.booking.domain.rules_service import RulesRejected, RulesUnavailable
from services.booking.service_layer.ports import RulesPort
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now, start_of_day
from services.common.instants import as_utc

MAX_BACKOFF_SECONDS = 60.0
_log = structlog.get_logger("outbox")


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    waiting: bool = False  # stopped because the rules service is unavailable


def backoff(attempts: int) -> float:
    """Seconds before the next try: 0.5, 1, 2, 4 … capped at 60, with ±20 % jitter."""
    base = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** max(0, attempts - 1))
    return float(base * random.uniform(0.8, 1.2))


def deliver_pending(uow: UnitOfWork, rules: RulesPort, *, limit: int = 200) -> DeliveryReport:
    """Deliver due messages, each firm's strictly in the order written, one transaction
    each. A firm whose earliest message waits out a backoff (or was just refused for
    now) sends nothing after it; when the rules service is unreachable, all stop."""
    report = DeliveryReport()
    with uow:
        pending = [
            (int(m.id or 0), m.enterprise_id, m.next_attempt_at)
            for m in uow.register.pending_messages(limit)
        ]
    held: set[str] = set()
    for message_id, firm, due in pending:
        if firm in held:
            continue
        if due is not None and as_utc(due) > now():
            held.add(firm)  # its earliest message is waiting: keep the firm's order
            report.waiting = True
            continue
        outcome = _deliver_one(uow, rules, message_id)
        if outcome == "delivered":
            report.delivered += 1
        elif outcome == "failed":
            report.failed += 1
        elif outcome == "unavailable":
            report.waiting = True
            return report  # the rules service is down: nothing more now
        else:
            held.add(firm)
            report.waiting = True
    return report


def _deliver_one(uow: UnitOfWork, rules: RulesPort, message_id: int) -> str:
    with uow:
        message = uow.register.claim_message(message_id)
        if message is None:
            return "busy"  # another replica is delivering it: hold the firm's later ones
        if message.delivered_at is not None or message.failed_at:
            return "skipped"
        message.attempts += 1
        try:
            rules.report(message.payload)
        except RulesUnavailable as exc:
            message.next_attempt_at = now() + timedelta(seconds=backoff(message.attempts))
            message.last_error = str(exc)[:500]
            uow.commit()
            down = exc.unreachable
            if not down:
                _log.warning(
                    "event not accepted yet, will retry",
                    event_id=message.event_id,
                    error=message.last_error,
                )
            return "unavailable" if down else "held"
        except RulesRejected as exc:
            message.failed_at, message.last_error = now(), str(exc)[:500]
            _log.error(
                "event rejected by the rules service; parked",
                event_id=message.event_id,
                error=message.last_error,
            )
            uow.commit()
            return "failed"
        message.delivered_at, message.last_error = now(), ""
        uow.commit()
        return "delivered"


def requeue_failed(uow: UnitOfWork) -> list[str]:
    """Give parked messages another go (after the cause was fixed); returns their event ids."""
    with uow:
        parked = uow.register.failed_messages()
        for message in parked:
            message.failed_at, message.next_attempt_at = None, None
        uow.commit()
        return [m.event_id for m in parked]


def resend_since(uow: UnitOfWork, day: date) -> list[str]:
    """Queue again every message delivered since `day` (Asia/Shanghai): after the rules
    service was restored from a backup it may have lost them. Its event ids make a
    message it still has a harmless duplicate. Returns their event ids, in order."""
    with uow:
        # the column binds it in UTC (columns.Instant), as SQLite compares wall times
        again = uow.register.delivered_since(start_of_day(day))
        for message in again:
            message.delivered_at, message.next_attempt_at, message.attempts = None, None, 0
        uow.commit()
        return [m.event_id for m in again]


class OutboxWorker:
    """A background thread that delivers the outbox; `wake()` after writing a message."""

    def __init__(
        self, new_uow: Callable[[], UnitOfWork], rules: RulesPort, *, idle_seconds: float = 1.0
    ) -> None:
        self._new_uow = new_uow
        self._rules = rules
        self._idle = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = deliver_pending(self._new_uow(), self._rules)
            except Exception:
                _log.exception("outbox delivery failed")
                report = DeliveryReport(waiting=True)
            if report.delivered and not report.waiting:
                continue  # there may be more
            self._wake.wait(self._idle)
            self._wake.clear()
