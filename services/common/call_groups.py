"""Group commit for unary calls: calls that arrive together share one transaction.

Through the per-call path every call pays for a transaction of its own: a connection
checkout, BEGIN and COMMIT, the audit chains' heads locked and their entries sealed. Here
the calls waiting at the same moment in one server process form a group, which
`apply_group` applies in one transaction and commits once; each caller is answered only
after that commit, with its own answer or error. The rules service's ReportEvent and
UpsertEnterprise (services/rules/service_layer/event_groups.py) and booking's CreateOrder
(services/booking/service_layer/order_groups.py) go through it.

No thread of its own: the first caller to arrive while no group is forming leads. It
takes the callers queued (up to `max_size`, waiting at most `max_wait` for more while
fewer are queued), applies and commits them, answers each, and hands the lead to the
first caller still queued (who arrived while the group ran). A leader is an ordinary call
thread, so SIGTERM's drain (services/common/server.py) waits for it like any call.

Deadlines. A group's database work is bounded by the latest deadline among its callers
(none when one has none: then by the database's own timeouts; the watchdog of
services/common/db.py cuts the connection then), so one caller's short deadline never
fails the others: a stalled database fails the whole group at once (`apply_group`
raises: every caller of the group gets that error). A caller still queued when its
deadline passes leaves the queue unapplied (DEADLINE_EXCEEDED); one whose group is
running when it passes gets DEADLINE_EXCEEDED too, and its work may still commit (a retry
with the same idempotency key then finds it). Nothing is answered as done before the
commit that holds it.

Settings (`GroupLimits`): `max_size` (1 turns grouping off: every call by `apply_one`, in
its own transaction); `max_wait`: while calls come together (another group is running,
or the last group held more than one call) a leader waits up to this long for more to
queue; a lone call is never delayed, and a group of one is applied by `apply_one`;
`groups` at once, each its own transaction, so that one group's round trips to the
database overlap the next one's CPU.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from services.common.context import deadline_in, time_left
from services.common.errors import DeadlineExceeded

I = TypeVar("I")  # noqa: E741 - one call's input
A = TypeVar("A")  # one call's answer

DEFAULT_MAX_SIZE = 32
DEFAULT_MAX_WAIT = 0.002  # seconds
DEFAULT_GROUPS = 2

# run(n, work): the n-th call's work, in that caller's context (who called: the audit
# trail reads it)
Run = Callable[[int, Callable[[], A]], A]


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
class _Caller(Generic[I, A]):
    """One waiting call: its input, its context, its deadline (time.monotonic(), None:
    none), and, once known, its answer."""

    item: I
    context: contextvars.Context
    deadline: float | None
    wake: threading.Event = field(default_factory=threading.Event)
    answer: A | BaseException | _Shared | None = None
    lead: bool = False  # woken to lead the next group


@dataclass(frozen=True)
class _Shared:
    """What failed a whole group, given to each of its callers: each raises a copy of
    its own (`_own`), since one exception object raised in several threads at once
    gathers all their frames in its one traceback."""

    error: BaseException


def _own(error: BaseException) -> BaseException:
    """A copy of `error` (same type and values) for one caller to raise; `error` itself,
    with the frames where the group failed, becomes its cause. `error` when it cannot be
    copied."""
    kind = type(error)
    try:  # not copy.copy: it calls kind(*args), which some errors' __init__ does not take
        mine = kind.__new__(kind, *error.args)
        mine.args = error.args
        mine.__dict__.update(vars(error))
    except Exception:
        return error
    mine.__cause__, mine.__traceback__ = error, None
    return mine


class CallGroups(Generic[I, A]):
    """One per server process and kind of call: the calls go through `call`.

    `apply_one(item)` applies one call in a transaction of its own (the per-call path);
    `apply_group(items, run)` applies several in one transaction and returns each one's
    answer or error in order, or raises what failed the group as a whole (then no item of
    it stands, and every caller of the group gets that error)."""

    def __init__(
        self,
        apply_one: Callable[[I], A],
        apply_group: Callable[[Sequence[I], Run[A]], list[A | Exception]],
        limits: GroupLimits | None = None,
        *,
        what: str = "call",
        resend: str = "send it again with the same idempotency key to learn its result",
    ) -> None:
        self._apply_one = apply_one
        self._apply_group = apply_group
        self.limits = limits or GroupLimits()
        self._what = what  # what its deadline messages call a call ("event", "order")
        self._resend = resend  # how a caller whose deadline passed mid-group learns more
        self._cond = threading.Condition()
        self._queue: deque[_Caller[I, A]] = deque()
        self._leaders = 0  # callers forming or running a group
        self._last_size = 0  # of the group taken last: were calls arriving together?

    def call(self, item: I) -> A:
        """Apply `item` alone or with the calls queued beside it; answered after their
        commit."""
        if not self.limits.grouping:
            return self._apply_one(item)
        left = time_left()
        me: _Caller[I, A] = _Caller(
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
        if isinstance(answer, _Shared):
            raise _own(answer.error)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def waiting(self) -> int:
        """How many calls are queued for a group (not yet taken by a leader)."""
        with self._cond:
            return len(self._queue)

    def _give_up(self, me: _Caller[I, A]) -> None:
        """The caller's deadline passed while it waited: unapplied if still queued."""
        with self._cond:
            if me.answer is not None or me.lead:
                return  # answered (or handed the lead) just now: take that instead
            queued = me in self._queue
            if queued:
                self._queue.remove(me)
        raise DeadlineExceeded(
            f"the {self._what} was not applied before the caller's deadline"
            if queued
            else f"the caller's deadline passed while its {self._what} was being applied; "
            f"{self._resend}"
        )

    def _lead(self) -> None:
        """Take a group from the queue (this caller first), apply it, answer every caller
        in it, and hand the lead on."""
        group: list[_Caller[I, A]] = []
        try:
            group = self._take()
            self._apply(group)
        except BaseException as exc:  # the group's own machinery: nobody is left waiting
            for caller in group:
                if caller.answer is None:
                    caller.answer = _Shared(exc)
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

    def _take(self) -> list[_Caller[I, A]]:
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

    def _apply(self, group: list[_Caller[I, A]]) -> None:
        now = time.monotonic()
        live = []
        for caller in group:
            if caller.deadline is not None and caller.deadline <= now:
                caller.answer = DeadlineExceeded(
                    f"the {self._what} was not applied before the deadline"
                )
            else:
                live.append(caller)
        if not live:
            return
        if len(live) == 1:  # alone: its own transaction, as without grouping
            live[0].answer = self._alone(live[0])
            return
        # bounded by the most patient caller (none: the database's own timeouts): a short
        # deadline must not fail the others; its own caller stops waiting at it
        deadlines = [c.deadline - now for c in live if c.deadline is not None]
        bound = max(deadlines) if len(deadlines) == len(live) else None
        try:
            with deadline_in(bound):
                results = self._apply_group(
                    [c.item for c in live], lambda n, work: live[n].context.run(work)
                )
        except Exception as exc:  # the transaction failed: no call of the group stands
            for caller in live:
                caller.answer = _Shared(exc)
            return
        for caller, result in zip(live, results, strict=True):
            caller.answer = result

    def _alone(self, caller: _Caller[I, A]) -> A | Exception:
        """One call by the per-call path, in its caller's context (deadline included)."""
        try:
            return caller.context.run(self._apply_one, caller.item)
        except Exception as exc:
            return exc


def one_by_one(items: Sequence[I], run: Run[A], apply_one: Callable[[I], A]) -> list[A | Exception]:
    """Each item by the per-call path (`apply_one`, a transaction of its own), in its
    caller's context (`run`): what a group that cannot be applied together falls back to.
    A failure is that item's answer alone."""
    answers: list[A | Exception] = []
    for n, item in enumerate(items):
        try:
            answers.append(run(n, partial(apply_one, item)))
        except Exception as exc:
            answers.append(exc)
    return answers
