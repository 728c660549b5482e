"""Group commit for ReportEvent: events that arrive together share one transaction;
and for UpsertEnterprise without an update mask (`UpsertGroups`, below), the same way.

Through the per-call path every event pays for a transaction of its own: a connection
checkout, BEGIN and COMMIT, the audit chain's heads locked and its entries inserted, the
change feed's rows inserted. Here the calls that are waiting at the same moment in one
server process form a group, applied by `register_handlers.apply_group` as a batch (a
query per kind of read, decided in memory, a few multi-row writes) in one transaction
and committed once; each caller is answered only after that commit, with its
own answer or error, exactly as one after another in arrival order (an event refused by
the rules fails alone; one that fails otherwise sends the group back to one transaction
an event: see `apply_group`).

The queue, the leaders and the deadlines are services/common/call_groups.py's (booking's
CreateOrder groups use it too): no thread of its own, the first caller to arrive while
no group is forming leads. It takes the callers queued (up to `max_size`, waiting at most
`max_wait` for more while fewer are queued), applies and commits them, answers each, and
hands the lead to the first caller still queued (who arrived while the group ran). A
leader is an ordinary call thread, so SIGTERM's drain (services/common/server.py) waits
for it like any call.

Deadlines. A group's database work is bounded by the latest deadline among its callers
(none when one has none: then by the database's own timeouts; the watchdog of
services/common/db.py cuts the connection then), so one caller's short deadline never
fails the others: a stalled database fails the whole group at once with UNAVAILABLE or
DEADLINE_EXCEEDED, without trying its events again one by one.
A caller still queued when its deadline passes leaves the queue unapplied
(DEADLINE_EXCEEDED); one whose group is running when it passes gets DEADLINE_EXCEEDED
too, and its event may still commit (a retry of the same event_id is then a replay; an
upsert has no such key: GetEnterpriseStatus tells whether it was stored, and sending it
again stores it again, a decision more in the firm's history).
Nothing is answered as applied before the commit that holds it.

Settings (`serve --event-group-size`, `--event-group-wait-ms`, `--event-groups`):
`max_size` 32 (1 turns grouping off: every event in its own transaction); `max_wait`
2 ms: while calls come together (another group is running, or the last group held more
than one event) a leader waits up to this long for more to queue, since the callers just
answered send their next events a moment later; a lone call is never delayed, and a
group of one is applied by the per-call path; `groups` 2 at once, each its own
transaction, so that one group's round trips to the database overlap the next one's CPU.
ReportEventStream's groups (`EventGroups.report_together`, one stream's events at a time)
do not queue here: each open stream applies its own beside these (at most as many streams
as services/common/stream_slots.py admits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.call_groups import (
    DEFAULT_GROUPS,
    DEFAULT_MAX_SIZE,
    DEFAULT_MAX_WAIT,
    CallGroups,
    GroupLimits,
    Run,
)
from services.common.errors import DomainError
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.register_handlers import (
    Reported,
    StatusView,
    Upserted,
    apply_group,
    apply_reported,
    apply_upsert_group,
    apply_upserted,
    mask_paths,
    parse_reported,
    parse_upserted,
    update_masked,
)
from services.rules.service_layer.unit_of_work import UnitOfWork

__all__ = [
    "DEFAULT_GROUPS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MAX_WAIT",
    "EventGroups",
    "GroupLimits",
    "UpsertGroups",
]

RESEND = "resend the same event_id to learn its result"
# an upsert has no idempotency key: sent again, it is stored again (a decision more)
RESEND_UPSERT = "read the firm's status (GetEnterpriseStatus) to learn whether it was stored"


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
        self.calls: CallGroups[Reported, StatusView] = CallGroups(
            self._one, self._group, limits, what="event", resend=RESEND
        )

    @property
    def limits(self) -> GroupLimits:
        return self.calls.limits

    def report(self, data: Mapping[str, Any], source: str) -> StatusView:
        """ReportEvent: validated here (a bad event never joins a group), then applied
        alone or with the events queued beside it; answered after their commit."""
        return self.calls.call(self.parsed(data, source))

    def parsed(self, data: Mapping[str, Any], source: str) -> Reported:
        """An event validated as `report` validates it (INVALID_ARGUMENT naming each bad
        field), ready for `report_together`."""
        event, fingerprint = parse_reported(self._ctx, data)
        return Reported(event, fingerprint, source)

    def report_together(self, items: Sequence[Reported]) -> list[StatusView | Exception]:
        """ReportEventStream: the events one stream had waiting, in one transaction (the
        group writer of `report`'s groups, `apply_group`; one event alone by the per-call
        path): each its answer or error, in order, as one after another would give. Runs
        in the stream's own thread, beside the unary calls' groups (its events are one
        caller's, already together: nothing to gain by queueing them with the others).
        Raises what failed the group as a whole (the database down or stalled, the
        deadline): then none of them is applied."""
        if len(items) == 1:
            try:
                return [self._one(items[0])]
            except DomainError as exc:  # refused: its answer alone
                return [exc]
        return self._group(items, lambda _n, work: work())

    def _one(self, item: Reported) -> StatusView:
        """One event by the per-call path, in its own transaction."""
        return apply_reported(self._new_uow(), self._ctx, item)

    def _group(
        self, items: Sequence[Reported], run: Run[StatusView]
    ) -> list[StatusView | Exception]:
        """Several events in one transaction (register_handlers.apply_group)."""
        return apply_group(self._new_uow, self._ctx, items, run)


class UpsertGroups:
    """One per server process: UpsertEnterprise's calls go through `upsert`, grouped as
    ReportEvent's are (the same limits)."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        ctx: RulesContext,
        limits: GroupLimits | None = None,
    ) -> None:
        self._new_uow = new_uow
        self._ctx = ctx
        self.calls: CallGroups[Upserted, StatusView] = CallGroups(
            self._one, self._group, limits, what="upsert", resend=RESEND_UPSERT
        )

    def upsert(
        self, data: Mapping[str, Any], as_of_text: str, update_mask: Sequence[str]
    ) -> StatusView:
        """UpsertEnterprise: one with an update mask by the per-call path (it merges the
        named fields into the stored profile); one without, validated here (a bad profile
        never joins a group), then applied alone or with the upserts queued beside it,
        answered after their commit."""
        paths = mask_paths(self._ctx, data, update_mask)
        if paths is not None:
            return update_masked(self._new_uow(), self._ctx, data, as_of_text, paths)
        return self.calls.call(parse_upserted(self._ctx, data, as_of_text))

    def _one(self, item: Upserted) -> StatusView:
        """One upsert by the per-call path, in its own transaction."""
        return apply_upserted(self._new_uow(), self._ctx, item)

    def _group(
        self, items: Sequence[Upserted], run: Run[StatusView]
    ) -> list[StatusView | Exception]:
        """Several upserts in one transaction (register_handlers.apply_upsert_group)."""
        return apply_upsert_group(self._new_uow, self._ctx, items, run)
