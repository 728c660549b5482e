"""Group commit for CreateOrder: orders that arrive together share one transaction.

Through the per-call path (orders.create_order) every order pays for a transaction of its
own: a connection checkout, BEGIN and COMMIT (on SQLite the one write lock taken and
released, and a sync to disk), its audit chains' heads read, locked and moved. Here the
CreateOrder calls waiting at the same moment in one server process form a group
(services/common/call_groups.py: no thread of its own, limits `GroupLimits`), taken and
dispatched one after another in one transaction by `orders.take_orders` and committed
once: one BEGIN/COMMIT, one seal of each audit chain touched, the orders and their
transitions written by one multi-row insert each.

Each caller is answered only after the commit that holds its order, with what the
per-call path would have answered: a call refused before its order was written (the
idempotency key is checked before it joins a group; a forged or revoked token, a bad
form, the token's order limit, charged only for an order about to be written, inside
it) fails alone; a key used before answers with that order (the same content; other
content: ALREADY_EXISTS); two orders competing for one expert's half-day behave as two sequential
orders (the second gets the next candidate). A group that fails otherwise, a deadlock
with another group included (a group holds the experts it booked while a later order
waits for another's; one by one an order never waits holding one), is rolled back and
its orders taken again one by one. A group whose transaction fails (the database down
or stalled) fails every caller of it with the error the per-call path gives
(UNAVAILABLE, DEADLINE_EXCEEDED), nothing of it written.

Settings (`serve --order-group-size`, `--order-group-wait-ms`, `--order-groups`; unset:
the database's defaults, `limits_for`). On SQLite (one writer at a time) groups
of up to 8, a leader waiting up to 2 ms for more while calls come together, one group at
a time: a second group could only wait for the write lock. On PostgreSQL grouping is off
by default (max_size 1: today's per-call path): a group takes its orders one after
another, each order's dispatch two round trips to the database (dispatch.py's usual
case), while separate transactions overlap theirs; measured at 8 in flight, grouped
orders cost less CPU in the server but came back fewer per second (issue 15's report,
2026-11-28; again with dispatch in two round trips, groups of 8: about 30 % fewer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.booking.domain.orders import Order
from services.booking.service_layer import orders
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.call_groups import CallGroups, GroupLimits, Run

SQLITE_LIMITS = GroupLimits(max_size=8, max_wait=0.002, groups=1)
POSTGRESQL_LIMITS = GroupLimits(max_size=1, max_wait=0.002, groups=2)


def limits_for(asked: GroupLimits | None, *, single_writer: bool) -> GroupLimits:
    """`asked` with each field not given (max_size, groups 0; max_wait negative; None:
    none given) replaced by the database's default: SQLITE_LIMITS for a database that lets
    one writer in at a time, else POSTGRESQL_LIMITS."""
    base = SQLITE_LIMITS if single_writer else POSTGRESQL_LIMITS
    if asked is None:
        return base
    return GroupLimits(
        asked.max_size or base.max_size,
        asked.max_wait if asked.max_wait >= 0 else base.max_wait,
        asked.groups or base.groups,
    )


class OrderGroups:
    """One per server process: CreateOrder's calls go through `create`."""

    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        ctx: BookingContext,
        limits: GroupLimits | None = None,
    ) -> None:
        self._new_uow = new_uow
        self._ctx = ctx
        self._groups: CallGroups[orders.NewOrder, Order | str] = CallGroups(
            self._one, self._group, limits or SQLITE_LIMITS, what="order"
        )

    @property
    def limits(self) -> GroupLimits:
        return self._groups.limits

    def create(
        self,
        token: str,
        form: Mapping[str, Any],
        idempotency_key: str,
        *,
        session_firm: str = "",
    ) -> Order:
        """orders.create_order, alone (grouping off: CallGroups applies it by `_one`) or
        with the orders queued beside it; the token's refused calls limited as there
        (`orders.refusals_limited`; `session_firm`: the firm the caller's checked
        session signs in, "" without one)."""

        def create() -> Order:
            item = orders.NewOrder(token, form, orders.admit(self._ctx, token, idempotency_key))
            taken = self._groups.call(item)
            return orders.answer(self._new_uow(), self._ctx, item, taken)

        sent = (token, form, idempotency_key)
        return orders.refusals_limited(self._ctx, sent, create, session_firm=session_firm)

    def _one(self, item: orders.NewOrder) -> Order | str:
        return orders.take_order(self._new_uow(), self._ctx, item)

    def _group(
        self, items: Sequence[orders.NewOrder], run: Run[Order | str]
    ) -> list[Order | str | Exception]:
        return orders.take_orders(self._new_uow, self._ctx, items, run)
