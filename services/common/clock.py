"""The clock and new ids, for both services (shared kernel).

Dates of record are days in Asia/Shanghai (the authority's, the firms' and every date
field's zone), whatever zone the server runs in; instants are stored in UTC
(services/common/instants.py shows them). Handlers take `today` from their context so
tests can pin it; `now` and `new_id` are called where a record is made.
"""

from __future__ import annotations

import os
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


# A version-4 UUID's fixed bits: the version nibble 4 and the RFC 4122 variant 10.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_id(prefix: str = "") -> str:
    """A fresh random id of ID_LENGTH characters: `prefix` (e.g. "T" for a ticket), then
    hex digits (those of `uuid.uuid4().hex`, built without the UUID object)."""
    return _id_of(os.urandom(16), prefix)


def _id_of(random16: bytes, prefix: str = "") -> str:
    """`new_id`'s id made of 16 random bytes."""
    bits = int.from_bytes(random16) & _UUID4_CLEAR | _UUID4_SET
    return prefix + f"{bits:032x}"[: ID_LENGTH - len(prefix)]


class IdSource:
    """`new_id`'s ids (no prefix), drawn `chunk` at a time from one os.urandom call (a
    system call costs more than building a few ids): for a batch that makes thousands.
    Made for one batch, in the process that uses it (a forked child holding a copy would
    hand out the parent's ids)."""

    def __init__(self, chunk: int = 256) -> None:
        self._chunk = chunk
        self._ready: list[str] = []

    def __call__(self) -> str:
        if not self._ready:
            raw = os.urandom(16 * self._chunk)
            self._ready = [_id_of(raw[i : i + 16]) for i in range(0, len(raw), 16)]
        return self._ready.pop()
