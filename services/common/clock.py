"""The clock and new ids, for both services (shared kernel).

Dates of record are days in Asia/Shanghai (the authority's, the firms' and every date
field's zone), whatever zone the server runs in; instants are stored in UTC
(services/common/instants.py shows them). Handlers take `today` from their context so
tests can pin it; `now` and `new_id` are called where a record is made.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time
from time import time_ns

from services.common.instants import SHANGHAI

ID_LENGTH = 32  # every generated id fits the String(32) id columns of both registers


def today_shanghai() -> date:
    """Today where the authority and the firms are, whatever the server's zone."""
    return datetime.now(SHANGHAI).date()


def now() -> datetime:
    """This instant, in UTC (as both registers store instants)."""
    return datetime.now(UTC)


def start_of_day(day: date) -> datetime:
    """Midnight of `day` in Asia/Shanghai, as an instant: a day's bound, for comparing
    with stored instants (an instant column binds it in UTC: columns.Instant)."""
    return datetime.combine(day, time.min, SHANGHAI)


# The layout of a version-7 UUID (RFC 9562): 48 bits of Unix milliseconds, the version
# nibble 7, 12 random bits, the variant 10, 62 random bits.
_MS_MASK = (1 << 48) - 1
_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = 0xFFF << 64
_RAND_B = (1 << 62) - 1
SHORT_ID = 8  # characters of an id shown in a message (`short_id`)


def new_id(prefix: str = "") -> str:
    """A fresh id of ID_LENGTH characters: `prefix` (e.g. "T" for a ticket), then the hex
    digits of a version-7 UUID (RFC 9562): the millisecond it was made, then 74 random
    bits (70 after a one-letter prefix). Ids made in a later millisecond sort after those
    of an earlier one (within one millisecond, or after the clock is set back, in no
    particular order: nothing relies on it), so the rows a batch makes land together in
    an index instead of on a page each: with random (version-4) ids every batch of
    re-evaluated firms dirtied a page of the decisions' and changes' id indexes per firm,
    which SQLite then wrote twice (its log, then the file: docs/benchmarks.md, "Stop
    28"). The random bits keep an id unguessable in practice; nothing uses an id as a
    secret (sign-in secrets are `secrets` tokens of their own, QR tokens are signed)."""
    return _id_of(os.urandom(16), prefix)


def _id_of(random16: bytes, prefix: str = "", ms: int | None = None) -> str:
    """`new_id`'s id made of 16 random bytes (74 bits used) and the millisecond `ms`
    (None: now)."""
    bits = int.from_bytes(random16)
    stamp = (time_ns() // 1_000_000 if ms is None else ms) & _MS_MASK
    bits = stamp << 80 | _VERSION_7 | (bits >> 52) & _RAND_A | _VARIANT | bits & _RAND_B
    return prefix + f"{bits:032x}"[: ID_LENGTH - len(prefix)]


def short_id(record_id: str) -> str:
    """How a message names a record by a few characters: the last SHORT_ID of its id,
    which are random (its first ones are the time it was made: runs started the same
    minute would share them)."""
    return record_id[-SHORT_ID:]


class IdSource:
    """`new_id`'s ids (no prefix), their random bits drawn `chunk` ids at a time from one
    os.urandom call (a system call costs more than building a few ids), each stamped
    with the millisecond it is handed out: for a batch that makes thousands. Each is
    `_id_of` of its 16 bytes made from their hex digits by slicing (`_hex_id`), about a
    fifth cheaper (0.9 against 1.1 µs an id, measured). Made for one batch, in the
    process that uses it (a forked child holding a copy would hand out the parent's
    ids)."""

    def __init__(self, chunk: int = 256) -> None:
        self._chunk = chunk
        self._ready: list[str] = []

    def __call__(self) -> str:
        if not self._ready:
            raw = os.urandom(16 * self._chunk).hex()
            self._ready = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        return _hex_id(self._ready.pop(), time_ns() // 1_000_000)


# the variant's hex digit: its two high bits 10, its two low bits those of a random digit
_VARIANT_DIGIT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _hex_id(random32: str, ms: int) -> str:
    """`_id_of(bytes.fromhex(random32), ms=ms)` without the integer arithmetic: the same
    random bits kept (hex digits 0–2, the low two bits of 16, then 17–31)."""
    variant = _VARIANT_DIGIT[random32[16]]
    return f"{ms & _MS_MASK:012x}7{random32[:3]}{variant}{random32[17:]}"
