"""Deliver the outbox to the rules service: each firm's messages in the order written,
retried with backoff, never lost, never overtaken.

A message is marked delivered only after the rules service acknowledged it; the rules
service applies each event id once, so a crash between the two only causes a harmless
redelivery. Which failure is which is decided by its gRPC status code
(domain/rules_service.py), never its text.

Order, per firm. A firm's messages reach rules strictly in the order they were written:
the next one goes only once every earlier one was delivered (or deliberately discarded).
The firm's earliest open message (its head, records.OutboxMessage) decides:
- a transient failure (RESOURCE_EXHAUSTED, INTERNAL …) schedules a retry with
  exponential backoff, 0.5 s → 60 s, and the firm's later messages wait for it; when the
  rules service is unreachable (UNAVAILABLE, DEADLINE_EXCEEDED: rules may even have
  applied it), the pass stops for every firm, and the message is sent again once its
  backoff is over (its firm's later ones waiting for it);
- a refusal for good (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION …) parks it: kept,
  logged, and holding the firm's later messages until an operator fixes the cause and
  requeues it (`booking outbox --retry-failed`) or drops it on purpose (`--discard
  EVENT_ID --reason TEXT`, in the audit trail). Sending the later ones would let rules
  see, say, a hazard's HAZARD_VERIFIED or RECTIFICATION_OVERDUE without its
  HAZARD_FOUND, or judge the firm on its later events alone, and nobody would notice;
- a message booking cannot encode for rules (EventUnreadable, status UNREADABLE: a field
  or value this version does not know, written by another version during a rolling
  upgrade, or by hand) is parked the same way, never sent (review 60 F3: it used to
  stop every firm's delivery, then to back its firm off for ever, listed nowhere);
- an error of booking's own while sending (not rules' answer) backs the firm off like a
  transient refusal (INTERNAL): a fix may cure it.
A firm is held by its head, parked or failing: `booking outbox`, `sweep`'s line and the
worker's reminder every ten minutes list every held firm, why and since when (its head's
`failing_since`, migration b0015): parked ones at once, ones refused for now at every try
once that has lasted HELD_AFTER_SECONDS (review 60 F6). Health does not reflect a held
firm: it is one firm's events, not the replica's sickness (every replica reads the same
outbox), and NOT_SERVING would take every replica out of service for it.
Other firms keep flowing: a pass reads only the heads that may be sent now, one per firm,
skipping through `ix_outbox_open` (migration b0012) from one firm's head to the next, so
what it reads grows with the number of firms waiting, never with the messages held
behind their heads (review 60 F7: it grouped every open message, once a second); the
others' come through, in the order written across firms too.

No transaction is open while rules is asked (review 57 D4: on SQLite the call used to be
made inside the write transaction, holding the process's write lock, so a stalled rules
service made booking's own writes run out of their deadlines). A delivery takes three
steps: it claims the firm's head in one short transaction (`claimed_until`, `claimed_by`,
migration b0014: LEASE_SECONDS from now), calls rules with none open (cut at CALL_SECONDS,
well inside the claim, however many rules replicas it tries), and records the answer in a
second short transaction. A claim held by a process that died ends by itself; its message
is then sent again, which rules, applying each event id once, answers as before.

Replicas (and a `sweep` run beside the server). Each delivery looks its firm's head up
again in its own transaction and claims it there (`FOR UPDATE SKIP LOCKED` against a
claim being taken at the same moment); a head claimed by another delivery, parked or
waiting out a backoff holds its firm: nothing after it goes, and a head parked or
delivered by another replica meanwhile is never passed by. Order does not rest on the
claim: a firm's next message is sent only once its head is marked delivered, which only
an answer from rules does; the claim only keeps two deliveries from sending the same
message at once. Should a delivery outlive its claim (a process paused, replicas' clocks
far apart), the message may go twice, never out of order: rules applies it once, an
acknowledgement marks it delivered whichever delivery gets it, and a failure is recorded
only by the delivery that holds the claim then, never over a delivered message. Two
messages of one firm written by transactions running at once (two rechecks at the same
moment) go in the order of their ids, which the database hands out before either
commits; messages whose order matters (a hazard's FOUND, then its VERIFIED) are written
one transaction after the other.

Stopping (SIGTERM): the worker starts no delivery once told to stop; the one in flight
finishes and records its answer.
"""

from __future__ import annotations

import heapq
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog

from services.booking.domain import messages
from services.booking.domain.rules_service import UNREACHABLE as NO_ANSWER
from services.booking.domain.rules_service import (
    EventUnreadable,
    RulesError,
    RulesRejected,
    RulesUnavailable,
)
from services.booking.service_layer.ports import RulesPort
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now, start_of_day
from services.common.context import deadline_in
from services.common.errors import (
    DeadlineExceeded,
    FieldViolation,
    NotFound,
    PreconditionFailed,
    ValidationError,
)
from services.common.instants import as_utc, in_shanghai
from services.common.values import control_problem, trim

MAX_BACKOFF_SECONDS = 60.0
MAX_REASON = 500  # characters of an operator's reason for a discard
REMIND_SECONDS = 600.0  # how often the worker logs the firms held
# A firm whose earliest open message has been failing (refused for now, every try) this
# long is listed as held, like one behind a parked message: past any hiccup, which the
# backoff (capped at 60 s) rides out in a minute or two.
HELD_AFTER_SECONDS = 300.0
# A delivery's claim on its message lasts LEASE_SECONDS; its rules call is cut at
# CALL_SECONDS (5 s per rules replica normally: the client's timeout), so the claim
# outlives the call, leaving room for recording the answer and for replicas' clocks a few
# seconds apart. A claim left by a process that died holds its firm until it ends.
LEASE_SECONDS = 30.0
CALL_SECONDS = 20.0
_log = structlog.get_logger("outbox")

# what a delivery of a firm's head came to
DELIVERED, PARKED, RETRY, UNREACHABLE, HELD, BUSY, DONE = (
    "delivered",
    "parked",  # refused for good just now: the firm is held from here on
    "retry",  # refused for now: backoff, the firm waits
    "unreachable",  # rules did not answer: every firm waits
    "held",  # its head was parked already, or waits out a backoff
    "busy",  # another replica is delivering its head
    "done",  # nothing open any more
)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # parked in this pass (each holds its firm)
    waiting: bool = False  # a message must be tried again later (rules down, a backoff)


@dataclass(frozen=True)
class HeldFirm:
    """A firm whose messages wait behind its earliest open one: parked (refused for good,
    or unreadable), or refused for now at every try for HELD_AFTER_SECONDS or more."""

    enterprise_id: str
    event_id: str  # the firm's earliest open message, which holds it
    kind: str
    error: str  # the last failure: its status code (gRPC's, or UNREADABLE), then detail
    since: datetime  # its first failed delivery (UTC)
    parked: bool  # True: waits for an operator; False: still retried with backoff
    attempts: int  # deliveries tried
    next_attempt_at: datetime | None  # when it is tried again (None: parked, or now)
    behind: int  # the firm's later messages it holds


@dataclass(frozen=True)
class BeingSent:
    """An open message claimed by a delivery whose answer from rules is not recorded yet:
    in flight, or left by a delivery whose process died or stalled (`lapsed`: its claim
    has run out; the next pass claims it again and sends it)."""

    event_id: str
    enterprise_id: str
    kind: str
    claimed_by: str  # host:pid of the delivering process, then a token of the delivery
    # when the claim was taken (UTC): its end less LEASE_SECONDS, the claim's length (the
    # table keeps the end only)
    since: datetime
    until: datetime  # when the claim ends (UTC)
    lapsed: bool
    attempts: int  # deliveries tried, this one included


@dataclass(frozen=True)
class OutboxStatus:
    waiting: int  # open messages not parked (those held behind a parked one included)
    parked: tuple[tuple[str, str], ...]  # (event id, refusal), in the order written
    held: tuple[HeldFirm, ...]  # in the order their holding messages were written
    sending: tuple[BeingSent, ...] = ()  # claimed, rules' answer not recorded; in order


@dataclass(frozen=True)
class Discarded:
    event_id: str
    enterprise_id: str
    kind: str
    freed: int  # the firm's later messages now free to go
    # its last try got no answer (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED): rules may
    # have applied it all the same; otherwise rules never applied it
    maybe_applied: bool = False


def backoff(attempts: int) -> float:
    """Seconds before the next try: 0.5, 1, 2, 4 … capped at 60, with ±20 % jitter."""
    base = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** max(0, attempts - 1))
    return float(base * random.uniform(0.8, 1.2))


def deliver_pending(
    uow: UnitOfWork,
    rules: RulesPort,
    *,
    limit: int = 200,
    stop: Callable[[], bool] = lambda: False,
) -> DeliveryReport:
    """Deliver what may go now, one message at a time, at most `limit` tries: the heads
    of the firms not held (by a parked message, a backoff or another delivery's claim),
    earliest first; a firm's next message joins them once its head was delivered. When
    the rules service is unreachable, all stop; once `stop()` says so, no further
    delivery starts (the one in flight has recorded its answer)."""
    report = DeliveryReport()
    with uow:
        queue = [(head, firm) for firm, head in uow.register.due_heads(now(), limit)]
    heapq.heapify(queue)
    claimant = _claimant()
    tries = 0
    while queue and tries < limit and not stop():
        _, firm = heapq.heappop(queue)
        tries += 1
        outcome, following = _deliver_head(uow, rules, firm, claimant)
        if outcome == DELIVERED:
            report.delivered += 1
        elif outcome == PARKED:
            report.failed += 1
        elif outcome == UNREACHABLE:
            report.waiting = True
            return report  # the rules service is down: nothing more now
        elif outcome in (RETRY, BUSY):
            report.waiting = True
        if following is not None:
            heapq.heappush(queue, (following, firm))
    return report


@dataclass(frozen=True)
class _Claim:
    """A firm's head, claimed for one delivery: what is sent, and the claim's token."""

    id: int
    event_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    token: str


def _claimant() -> str:
    """Who delivers, as `claimed_by` names it (with a token of each delivery after it):
    this host and process."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}"


def _deliver_head(
    uow: UnitOfWork, rules: RulesPort, firm: str, claimant: str
) -> tuple[str, int | None]:
    """Try the firm's earliest open message, looked up and claimed in a transaction of
    its own; rules is asked with no transaction open; the answer is recorded in another.
    With the id of the firm's next message when it may follow in this pass."""
    claimed = _claim(uow, firm, claimant)
    if not isinstance(claimed, _Claim):
        return claimed
    failure: RulesError | None = None
    try:
        with deadline_in(CALL_SECONDS):
            rules.report(claimed.payload)
    except RulesError as exc:
        failure = exc
    except DeadlineExceeded as exc:  # CALL_SECONDS ran out: as rules' own deadline
        failure = RulesUnavailable("DEADLINE_EXCEEDED", str(exc))
    except Exception as exc:  # not rules' answer (a bug): the firm waits, the others go on
        _log.exception("outbox: delivering an event failed", event_id=claimed.event_id)
        said = " ".join(str(exc).split())[:200]  # on one line, for the listing
        failure = RulesUnavailable("INTERNAL", f"{type(exc).__name__}: {said}")
    return _record(uow, firm, claimed, failure)


def _claim(uow: UnitOfWork, firm: str, claimant: str) -> _Claim | tuple[str, int | None]:
    """The firm's head claimed for LEASE_SECONDS (committed); or, when it may not be sent
    now, what holds it (with the firm's next message when the head is done already)."""
    with uow:
        head = uow.register.firm_head(firm)
        if head is None:
            return DONE, None
        message = uow.register.claim_message(head)
        if message is None:
            return BUSY, None  # another replica is claiming it: the firm's later ones wait
        if message.delivered_at is not None or message.discarded_at is not None:
            return DONE, uow.register.firm_head(firm)  # done meanwhile: try the next one
        if message.failed_at is not None:
            return HELD, None  # parked (by another replica): it holds the firm
        at = now()
        if message.next_attempt_at is not None and as_utc(message.next_attempt_at) > at:
            return HELD, None  # waiting out its backoff: so does the firm
        if message.claimed_until is not None and as_utc(message.claimed_until) > at:
            return BUSY, None  # another delivery waits on rules for it: so does the firm
        message.attempts += 1
        message.claimed_until = at + timedelta(seconds=LEASE_SECONDS)
        message.claimed_by = f"{claimant}:{uuid.uuid4().hex[:12]}"
        claim = _Claim(
            head,
            message.event_id,
            message.kind,
            dict(message.payload),
            message.attempts,
            message.claimed_by,
        )
        uow.commit()
        return claim


def _record(
    uow: UnitOfWork, firm: str, claim: _Claim, failure: RulesError | None
) -> tuple[str, int | None]:
    """What the delivery of `claim` came to (`failure` None: rules acknowledged it),
    recorded, the claim released; with the firm's next message when it may follow."""
    with uow:
        message = uow.register.locked_message(claim.id)
        if message is None or message.delivered_at is not None or message.discarded_at:
            # another delivery (this one's claim had run out) got there first
            return DONE, uow.register.firm_head(firm) if message is not None else None
        ours = message.claimed_by == claim.token
        if failure is None:  # acknowledged: true whoever claims it now
            message.delivered_at, message.last_error = now(), ""
            message.claimed_until, message.claimed_by = None, ""
            message.failing_since = None
            following = uow.register.firm_head(firm)
            uow.commit()
            if not ours:
                _log.warning(
                    "event delivered after its claim had run out; another delivery may "
                    "have sent it too (rules applies it once)",
                    event_id=claim.event_id,
                    enterprise_id=firm,
                )
            return DELIVERED, following
        if not ours:  # another delivery took it over: its answer, not this one, counts
            _log.warning(
                "event not accepted, and its claim had run out: left to the delivery that "
                "took it over",
                event_id=claim.event_id,
                enterprise_id=firm,
                error=str(failure)[:500],
            )
            return BUSY, None
        message.claimed_until, message.claimed_by = None, ""
        message.last_error = str(failure)[:500]
        if message.failing_since is None:
            message.failing_since = now()
        if not isinstance(failure, RulesRejected):  # refused for now
            message.next_attempt_at = now() + timedelta(seconds=backoff(claim.attempts))
            uow.commit()
            if failure.unreachable:
                return UNREACHABLE, None
            _log.warning(
                "event not accepted yet, will retry; the firm's later events wait",
                event_id=claim.event_id,
                enterprise_id=firm,
                error=message.last_error,
            )
            return RETRY, None
        message.failed_at = now()
        behind = uow.register.open_counts([firm]).get(firm, 1) - 1
        _log.error(
            (
                "event unreadable: booking cannot encode it for the rules service (written "
                "by another version of booking, or by hand), never sent"
                if isinstance(failure, EventUnreadable)
                else "event refused by the rules service"
            )
            + "; parked, holding the firm's later events until it is requeued (booking "
            "outbox --retry-failed) or discarded (--discard EVENT_ID --reason TEXT)",
            event_id=claim.event_id,
            enterprise_id=firm,
            kind=claim.kind,
            error=message.last_error,
            held_behind=behind,
        )
        uow.commit()
        return PARKED, None


def requeue_failed(uow: UnitOfWork) -> list[str]:
    """Give parked messages another go (after the cause was fixed), each in its firm's
    order again; audited. Returns their event ids."""
    with uow:
        parked = uow.register.failed_messages()
        for message in parked:
            before = uow.register.outbox_decision_values(message)
            message.failed_at, message.next_attempt_at = None, None
            message.failing_since = None  # failing again from its next failure on
            uow.register.record_outbox_decision(message, before)
        uow.commit()
        _log.info("parked events requeued", events=len(parked))
        return [m.event_id for m in parked]


def discard(uow: UnitOfWork, event_id: str, reason: str) -> Discarded:
    """An operator drops a message the rules service refused (parked, or refused for now
    and waiting to be tried again), so that its firm's later messages go on: it is not
    sent again, kept in the table with `reason`, and the decision is in the audit trail
    (on the firm's chain, by the caller bound to this call). Rules never applied it
    unless its last try got no answer (`Discarded.maybe_applied`: a call that timed out
    may have been applied; the operator is told to check). A message never refused
    cannot be dropped (it goes in its turn); nor one delivered, or dropped already; nor
    one a delivery is sending again right now (its claim: once rules answered, it is
    delivered, or refused again and may be dropped)."""
    why = trim(reason, multiline=True)
    if not why or len(why) > MAX_REASON or control_problem(why, multiline=True):
        problem = messages.OUTBOX_DISCARD_REASON.format(n=MAX_REASON)
        raise ValidationError([FieldViolation("reason", problem)])
    with uow:
        message = uow.register.outbox_message(event_id, for_update=True)
        if message is None:
            raise NotFound(messages.no_such("event", event_id))
        ref = messages.quoted(event_id)
        if message.delivered_at is not None:
            raise PreconditionFailed(messages.OUTBOX_ALREADY_DELIVERED.format(ref=ref))
        if message.discarded_at is not None:
            at = in_shanghai(message.discarded_at).strftime("%Y-%m-%d %H:%M")
            raise PreconditionFailed(messages.OUTBOX_ALREADY_DISCARDED.format(ref=ref, at=at))
        if message.failed_at is None and not message.last_error:
            raise PreconditionFailed(messages.OUTBOX_NOT_REFUSED.format(ref=ref))
        if message.claimed_until is not None and as_utc(message.claimed_until) > now():
            # sent again right now: rules' answer decides whether it was delivered
            raise PreconditionFailed(messages.OUTBOX_BEING_SENT.format(ref=ref))
        before = uow.register.outbox_decision_values(message)
        message.discarded_at, message.discard_reason = now(), why
        message.next_attempt_at = None
        uow.register.record_outbox_decision(message, before)
        firm = message.enterprise_id
        freed = uow.register.open_counts([firm]).get(firm, 0)
        maybe = message.last_error.split(":", 1)[0] in NO_ANSWER
        _log.warning(
            "event discarded by an operator: "
            + (
                "its last try got no answer, so the rules service may have applied it; "
                "it is not sent again"
                if maybe
                else "never applied by the rules service, and not sent again"
            )
            + " (the reason is in the audit trail)",
            event_id=message.event_id,
            enterprise_id=firm,
            kind=message.kind,
            refused=message.last_error,
            freed=freed,
        )
        uow.commit()
        return Discarded(message.event_id, firm, message.kind, freed, maybe)


def held_firms(uow: UnitOfWork) -> list[HeldFirm]:
    """The firms held behind their earliest open message: parked (refused for good, or
    unreadable), or refused for now at every try for HELD_AFTER_SECONDS or more (review
    60 F6: such a firm waited for ever, listed nowhere); each with why, since when, and
    how many of the firm's later messages wait behind it. In the order written."""
    at = now()
    with uow:
        heads = uow.register.held_heads(at - timedelta(seconds=HELD_AFTER_SECONDS))
        counts = uow.register.open_counts(m.enterprise_id for m in heads)
        return [
            HeldFirm(
                m.enterprise_id,
                m.event_id,
                m.kind,
                m.last_error,
                as_utc(m.failing_since or m.failed_at or at),
                m.failed_at is not None,
                m.attempts,
                None
                if m.failed_at is not None or m.next_attempt_at is None
                else as_utc(m.next_attempt_at),
                counts.get(m.enterprise_id, 1) - 1,
            )
            for m in heads
        ]


def being_sent(uow: UnitOfWork) -> list[BeingSent]:
    """The open messages a delivery has claimed and not yet recorded rules' answer for
    (at most one a firm: its head), in the order written; a claim that has run out (its
    process died or stalled) is among them, `lapsed`, until a delivery takes it again."""
    at = now()
    with uow:
        return [
            BeingSent(
                m.event_id,
                m.enterprise_id,
                m.kind,
                m.claimed_by,
                as_utc(m.claimed_until) - timedelta(seconds=LEASE_SECONDS),
                as_utc(m.claimed_until),
                as_utc(m.claimed_until) <= at,
                m.attempts,
            )
            for m in uow.register.claimed_messages()
            if m.claimed_until is not None
        ]


def outbox_status(uow: UnitOfWork) -> OutboxStatus:
    """What waits for delivery, what is being sent (by whom, since when), what was
    refused and why, and which firms it holds."""
    with uow:
        waiting = uow.register.undelivered_count()
        parked = tuple((m.event_id, m.last_error) for m in uow.register.failed_messages())
    return OutboxStatus(waiting, parked, tuple(held_firms(uow)), tuple(being_sent(uow)))


def resend_since(uow: UnitOfWork, day: date) -> list[str]:
    """Queue again every message delivered since `day` (Asia/Shanghai): after the rules
    service was restored from a backup it may have lost them. Its event ids make a
    message it still has a harmless duplicate. Returns their event ids, in order."""
    with uow:
        # the column binds it in UTC (columns.Instant), as SQLite compares wall times
        again = uow.register.delivered_since(start_of_day(day))
        for message in again:
            message.delivered_at, message.next_attempt_at, message.attempts = None, None, 0
            message.failing_since = None
        uow.commit()
        return [m.event_id for m in again]


class OutboxWorker:
    """A background thread that delivers the outbox; `wake()` after writing a message.
    Every REMIND_SECONDS (and at its first pass) it logs the firms held (`held_firms`),
    if any, so that a held firm is not forgotten."""

    def __init__(
        self, new_uow: Callable[[], UnitOfWork], rules: RulesPort, *, idle_seconds: float = 1.0
    ) -> None:
        self._new_uow = new_uow
        self._rules = rules
        self._idle = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._next_reminder = 0.0

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """No further delivery starts; the one in flight (its rules call cut at
        CALL_SECONDS) records its answer, waited for up to 10 s. Should the process end
        before that, its claim ends LEASE_SECONDS after it was taken and the message is
        sent again (rules applies it once)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    @property
    def stopping(self) -> bool:
        """Whether stop() was asked (for logs and tests)."""
        return self._stop.is_set()

    def _run(self) -> None:
        database_down = False  # said once an outage: not a traceback every pass
        while not self._stop.is_set():
            uow = self._new_uow()
            try:
                report = deliver_pending(uow, self._rules, stop=self._stop.is_set)
            except Exception as exc:
                if not uow.unavailable(exc):
                    _log.exception("outbox delivery failed")
                elif not database_down:
                    _log.warning(
                        "outbox: the database is unavailable; delivery waits for it",
                        error=" ".join(str(exc).split())[:200],
                    )
                database_down = database_down or uow.unavailable(exc)
                report = DeliveryReport(waiting=True)
            else:
                if database_down:
                    _log.info("outbox: the database answers again; delivery goes on")
                database_down = False
            if self._stop.is_set():
                return
            self.remind()
            if report.delivered and not report.waiting:
                continue  # there may be more
            self._wake.wait(self._idle)
            self._wake.clear()

    def remind(self) -> None:
        """Log the firms held (`held_firms`: behind a parked message, or one refused for
        now for HELD_AFTER_SECONDS), if any, unless done less than REMIND_SECONDS ago."""
        if time.monotonic() < self._next_reminder:
            return
        self._next_reminder = time.monotonic() + REMIND_SECONDS
        uow = self._new_uow()
        try:
            held = held_firms(uow)
        except Exception as exc:
            if uow.unavailable(exc):  # the delivery's warning said so: try next pass
                self._next_reminder = 0.0
            else:
                _log.exception("outbox: listing the held firms failed")
            return
        if held:
            log_held(held)


def log_held(held: list[HeldFirm]) -> None:
    """One warning naming the held firms (the first 20): the event holding each, its
    status code, whether it is parked, since when, and how many events wait behind it."""
    parked = sum(1 for h in held if h.parked)
    _log.warning(
        "firms held: their later events wait behind an event the rules service refused "
        "(parked: fix the cause and run booking outbox --retry-failed, or --discard "
        "EVENT_ID --reason TEXT) or keeps refusing for now (see booking outbox)",
        firms=len(held),
        parked=parked,
        failing=len(held) - parked,
        held=[
            {
                "enterprise_id": h.enterprise_id,
                "event_id": h.event_id,
                "refused": h.error.split(":", 1)[0],
                "parked": h.parked,
                "since": h.since.isoformat(timespec="seconds"),
                "behind": h.behind,
            }
            for h in held[:20]
        ],
    )
