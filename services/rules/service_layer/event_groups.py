"""Group commit for ReportEvent: events that arrive together share one transaction.

Through the per-call path every event pays for a transaction of its own: a connection
checkout, BEGIN and COMMIT, the audit chain's heads locked and its entries inserted, the
change feed's rows inserted. Here the calls that are waiting at the same moment in one
server process form a group, applied by `register_handlers.apply_group` as a batch (a
query per kind of read, decided in memory, a few multi-row writes) in one transaction
and committed once; each caller is answered only after that commit, with its
own answer or error, exactly as one after another in arrival order (an event refused by
the rules fails alone; one that fails otherwise sends the group back to one transaction
an event: see `apply_group`).

No thread of its own: the first caller to arrive while no group is forming leads. It
takes the callers queued (up to `max_size`, waiting at most `max_wait` for more while
fewer are queued), applies and commits them, answers each, and hands the lead to the
first caller still queued (who arrived while the group ran). A leader is an ordinary call
thread, so SIGTERM's drain (services/common/server.py) waits for it like any call.

Deadlines. A group's database work is bounded by the latest deadline among its callers
(none when one has none: then by the database's own timeouts; the watchdog of
services/common/db.py cuts the connection then), so one caller's short deadline never
fails the others: a stalled database fails the whole group at once with UNAVAILABLE or
DEADLINE_EXCEEDED, without trying its events again one by one.
A caller still queued when its deadline passes leaves the queue unapplied
(DEADLINE_EXCEEDED); one whose group is running when it passes gets DEADLINE_EXCEEDED
too, and its event may still commit (a retry of the same event_id is then a replay).
Nothing is answered as applied before the commit that holds it.

Settings (`serve --event-group-size`, `--event-group-wait-ms`, `--event-groups`):
`max_size` 32 (1 turns grouping off: every event in its own transaction); `max_wait`
2 ms: while calls come together (another group is running, or the last group held more
than one event) a leader waits up to this long for more to queue, since the callers just
answered send their next events a moment later; a lone call is never delayed, and a
group of one is applied by the per-call path; `groups` 2 at once, each its own
transaction, so that one group's round trips to the database overlap the next one's CPU.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.context import deadline_in, time_left
from services.common.errors import DeadlineExceeded
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.register_handlers import (
    Reported,
    StatusView,
    apply_group,
    apply_reported,
    parse_reported,
)
from services.rules.service_layer.unit_of_work import UnitOfWork

DEFAULT_MAX_SIZE = 32
DEFAULT_MAX_WAIT = 0.002  # seconds
DEFAULT_GROUPS = 2


@dataclass(frozen=True)
class GroupLimits:
    """How large a group may grow and how long its leader waits for more (seconds)."""

    max_size: int = DEFAULT_MAX_SIZE
    max_wait: float = DEFAULT_MAX_WAIT
    groups: int = DEFAULT_GROUPS  # groups applied at once (each its own transaction)

    @property
    def grouping(self) -> bool:
        return self.max_size > 1


@dataclass(eq=False)
class _Caller:
    """One waiting call: its event, its context (who called: the audit trail reads it),
    its deadline (time.monotonic(), None: none), and, once known, its answer."""

    item: Reported
    context: contextvars.Context
    deadline: float | None
    wake: threading.Event = field(default_factory=threading.Event)
    answer: StatusView | BaseException | None = None
    lead: bool = False  # woken to lead the next group


class EventGroups:
    """One per server process: ReportEvent's calls go through `report`."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        ctx: RulesContext,
        limits: GroupLimits | None = None,
    ) -> None:
        self._new_uow = new_uow
        self._ctx = ctx
        self.limits = limits or GroupLimits()
        self._cond = threading.Condition()
        self._queue: deque[_Caller] = deque()
        self._leaders = 0  # callers forming or running a group
        self._last_size = 0  # of the group taken last: were calls arriving together?

    def report(self, data: Mapping[str, Any], source: str) -> StatusView:
        """ReportEvent: validated here (a bad event never joins a group), then applied
        alone or with the events queued beside it; answered after their commit."""
        event, fingerprint = parse_reported(self._ctx, data)
        item = Reported(event, fingerprint, source)
        if not self.limits.grouping:
            return apply_reported(self._new_uow(), self._ctx, item)
        left = time_left()
        me = _Caller(
            item, contextvars.copy_context(), None if left is None else time.monotonic() + left
        )
        with self._cond:
            self._queue.append(me)
            lead = self._leaders < self.limits.groups
            self._leaders += lead
            self._cond.notify_all()  # a leader waiting for more sees this one
        while True:
            if lead:
                self._lead()
            left = None if me.deadline is None else me.deadline - time.monotonic()
            if me.answer is None and not me.lead and not me.wake.wait(left):
                self._give_up(me)
            with self._cond:
                me.wake.clear()
                lead, me.lead = me.lead, False
                answer = me.answer
            if answer is not None and not lead:  # a lead handed over is taken up first
                break
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _give_up(self, me: _Caller) -> None:
        """The caller's deadline passed while it waited: unapplied if still queued."""
        with self._cond:
            if me.answer is not None or me.lead:
                return  # answered (or handed the lead) just now: take that instead
            queued = me in self._queue
            if queued:
                self._queue.remove(me)
        raise DeadlineExceeded(
            "the event was not applied before the caller's deadline"
            if queued
            else "the caller's deadline passed while its event was being applied; "
            "resend the same event_id to learn its result"
        )

    def _lead(self) -> None:
        """Take a group from the queue (this caller first), apply it, answer every caller
        in it, and hand the lead on."""
        group: list[_Caller] = []
        try:
            group = self._take()
            self._apply(group)
        except BaseException as exc:  # the group's own machinery: nobody is left waiting
            for caller in group:
                if caller.answer is None:
                    caller.answer = exc
            raise
        finally:
            with self._cond:
                for caller in group:
                    caller.wake.set()
                # the first caller queued while this group ran (and not leading yet) leads
                following = next((c for c in self._queue if not c.lead), None)
                if following is not None:
                    following.lead = True
                    following.wake.set()
                else:
                    self._leaders -= 1

    def _take(self) -> list[_Caller]:
        """The next group off the queue (this leader's own call first)."""
        limits = self.limits
        with self._cond:
            # wait for more only while calls come together (another group runs, or the
            # last one held more than one): a lone call is not delayed
            busy = self._leaders > 1 or self._last_size > 1
            if limits.max_wait > 0 and busy and len(self._queue) < limits.max_size:
                self._cond.wait_for(
                    lambda: len(self._queue) >= limits.max_size, timeout=limits.max_wait
                )
            size = min(limits.max_size, len(self._queue))
            group = [self._queue.popleft() for _ in range(size)]
            if group:
                self._last_size = size
        return group

    def _apply(self, group: list[_Caller]) -> None:
        now = time.monotonic()
        live = []
        for caller in group:
            if caller.deadline is not None and caller.deadline <= now:
                caller.answer = DeadlineExceeded("the event was not applied before the deadline")
            else:
                live.append(caller)
        if not live:
            return
        if len(live) == 1:  # alone: its own transaction, as without grouping
            live[0].answer = _alone(self._new_uow, self._ctx, live[0])
            return
        # bounded by the most patient caller (none: the database's own timeouts): a short
        # deadline must not fail the others; its own caller stops waiting at it
        deadlines = [c.deadline - now for c in live if c.deadline is not None]
        bound = max(deadlines) if len(deadlines) == len(live) else None
        try:
            with deadline_in(bound):
                results = apply_group(
                    self._new_uow,
                    self._ctx,
                    [c.item for c in live],
                    lambda n, work: live[n].context.run(work),
                )
        except Exception as exc:  # the transaction failed: no event of the group stands
            for caller in live:
                caller.answer = exc
            return
        for caller, result in zip(live, results, strict=True):
            caller.answer = result


def _alone(
    new_uow: Callable[[], UnitOfWork], ctx: RulesContext, caller: _Caller
) -> StatusView | Exception:
    """One event by the per-call path, in its caller's context (deadline included)."""
    try:
        return caller.context.run(apply_reported, new_uow(), ctx, caller.item)
    except Exception as exc:
        return exc
