"""The clock and new ids, for both services (shared kernel).

Dates of record are days in Asia/Shanghai (the authority's, the firms' and every date
field's zone), whatever zone the server runs in; instants are stored in UTC
(services/common/instants.py shows them). Handlers take `today` from their context so
tests can pin it; `now` and `new_id` are called where a record is made.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

from services.common.instants import SHANGHAI

ID_LENGTH = 32  # every generated id fits the String(32) id columns of both registers


def today_shanghai() -> date:
    """Today where the authority and the firms are, whatever the server's zone."""
    return datetime.now(SHANGHAI).date()


def now() -> datetime:
    """This instant, in UTC (as both registers store instants)."""
    return datetime.now(UTC)


def start_of_day(day: date) -> datetime:
    """Midnight of `day` in Asia/Shanghai, as an instant."""
    return datetime.combine(day, time.min, SHANGHAI)


def new_id(prefix: str = "") -> str:
    """A fresh random id of ID_LENGTH characters: `prefix` (e.g. "T" for a ticket), then
    hex digits."""
    return prefix + uuid.uuid4().hex[: ID_LENGTH - len(prefix)]
