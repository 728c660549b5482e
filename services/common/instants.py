"""Instants (points in time) as both services store and show them (shared kernel, pure).

Stored instants are UTC: every instant column (`columns.instant`) binds its values in
UTC, whatever zone they are on, so an instant and a day's bound (`clock.start_of_day`)
mean the same on SQLite, which keeps no zone, as on PostgreSQL. SQLite hands them back
naive (as written, in UTC), PostgreSQL aware. Every instant a caller sees is RFC 3339
with its zone offset, on the Asia/Shanghai clock (+08:00), the zone of the authority,
the firms and every date field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def as_utc(instant: datetime) -> datetime:
    """A stored instant made aware: a naive one was written in UTC."""
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def in_shanghai(instant: datetime) -> datetime:
    """A stored instant on the Asia/Shanghai clock, whatever zone the database returned."""
    return as_utc(instant).astimezone(SHANGHAI)


def rfc3339(instant: datetime | None) -> str:
    """`2026-11-27T16:07:02.904612+08:00`; "" for no instant."""
    return in_shanghai(instant).isoformat() if instant is not None else ""
