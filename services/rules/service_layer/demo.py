"""The demo city in the rules register (services/common/demo_city.py), as `make run`
seeds it: its firms, then its year of booking events, each on its own day.

`seed_city` registers every firm through the same use case as UpsertEnterprise, with its
registration day as `as_of` (oldest first), so its first decision and any white-list
entry carry that day: about 300 firms, a few seconds on SQLite, before the server starts.

`replay_history` then applies the city's booking events (a hazard found, verified,
overdue) through the same use case as ReportEvent, in time order, each with a context
whose "today" is the event's day, so the decisions and the white list's grants and
revocations carry the days they would have had over the year. The events carry the ids,
the caller and the content booking's outbox records for them (`booking-<ticket>-found`
…, from `BOOKING_CALLER`); booking's seeder records them as delivered then, so nothing is
sent twice (and a resend would be answered as the duplicate it is). ~1,600 events take
about a minute (one transaction each): `make run` replays them in the background while
the server already serves. The replay pauses briefly after each event (`REPLAY_PAUSE`):
on SQLite every transaction takes the write lock and SQLite's busy wait is not fair, so
a replay committing back to back starved the server's own calls (booking's first
checklists answered UNAVAILABLE after a 5 s wait for "database is locked").

Both are idempotent: a firm already in the register is left as it is, and a history
whose last event is on record is not replayed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

from services.common.demo_city import City, DemoOrder, DemoTicket
from services.rules.service_layer import register_handlers
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.unit_of_work import UnitOfWork

BOOKING_CALLER = "booking-service"  # booking's caller in the dev tokens file (--dev)
REPLAY_PAUSE = 0.01  # seconds after each replayed event: the server's calls get their turn
Event = dict[str, Any]


def seed_city(new_uow: Callable[[], UnitOfWork], ctx: RulesContext, city: City) -> int:
    """Register the city's firms not yet in the register; how many were added."""
    with new_uow() as uow:
        known = {f.enterprise_id for f in city.firms if uow.register.firm(f.enterprise_id)}
    added = 0
    for firm in sorted(city.firms, key=lambda f: (f.registered_on, f.enterprise_id)):
        if firm.enterprise_id in known:
            continue
        register_handlers.upsert_enterprise(
            new_uow(), ctx, firm.profile, firm.registered_on.isoformat()
        )
        added += 1
    return added


def replay_history(
    new_uow: Callable[[], UnitOfWork],
    ctx: RulesContext,
    city: City,
    source: str = BOOKING_CALLER,
    pause: Callable[[], None] = lambda: time.sleep(REPLAY_PAUSE),
) -> int:
    """Apply the city's booking events on their days, oldest first; how many were new.
    `pause` runs after each event's commit, outside any transaction."""
    events = sorted(history(city), key=lambda e: (e[0], e[1]["event_id"]))
    if not events:
        return 0
    with new_uow() as uow:
        if uow.register.event(source, events[-1][1]["event_id"]) is not None:
            return 0  # replayed to the end before
    applied = 0
    for day, event in events:
        on_day = replace(ctx, today=_fixed(day))
        view = register_handlers.report_event(new_uow(), on_day, event, source)
        applied += 0 if view.duplicate else 1
        pause()
    return applied


def _fixed(day: date) -> Callable[[], date]:
    return lambda: day


def history(city: City) -> Iterator[tuple[date, Event]]:
    """(day, event) for every event booking reports about the city's tickets."""
    for order in city.orders:
        for ticket in order.tickets:
            yield from ticket_events(order, ticket, city.today)


def ticket_events(order: DemoOrder, t: DemoTicket, today: date) -> Iterator[tuple[date, Event]]:
    """A ticket's events as ReportEvent reads them (booking/domain/events.py makes the
    same): found; overdue the day after its deadline if no proof was in by then; then
    verified (late when its proof came after the deadline)."""
    firm = order.enterprise_id
    yield (
        t.found_on,
        {
            "event_id": f"booking-{t.id}-found",
            "enterprise_id": firm,
            "kind": f"{t.severity}_hazard_found",
            "occurred_on": t.found_on.isoformat(),
            "hazard": {
                "hazard_id": t.id,
                "clause_ref": t.clause_ref,
                "severity": t.severity,
                "due_on": t.due_on.isoformat(),
            },
        },
    )
    if (day := t.overdue_on(today)) is not None:
        yield (
            day,
            {
                "event_id": f"booking-{t.id}-overdue-{t.due_on.isoformat()}",
                "enterprise_id": firm,
                "kind": "rectification_overdue",
                "occurred_on": day.isoformat(),
                "overdue": {"hazard_id": t.id},
            },
        )
    if t.verified_on is not None:
        yield (
            t.verified_on,
            {
                "event_id": f"booking-{t.id}-verified",
                "enterprise_id": firm,
                "kind": "hazard_verified",
                "occurred_on": t.verified_on.isoformat(),
                "verification": {"hazard_id": t.id, "late": t.late},
            },
        )
