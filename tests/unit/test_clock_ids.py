"""new_id (and a batch's IdSource) gives the hex digits of a version-7, RFC 9562 UUID:
the millisecond it was made first (ids made later sort after earlier ones), then random
bits; a message names a record by the random end of its id (`short_id`)."""

from __future__ import annotations

import os
import time
import uuid

from services.common.clock import ID_LENGTH, IdSource, _hex_id, _id_of, new_id, short_id


def _is_version_7(made: str) -> bool:
    parsed = uuid.UUID(made)
    return (parsed.version, parsed.variant, parsed.hex) == (7, uuid.RFC_4122, made)


def test_new_ids_are_uuid7_hex_of_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert all(_is_version_7(m) for m in made)
    assert len(set(made)) == 2000
    stamps = [int(m[:12], 16) for m in made]
    assert before <= min(stamps) and max(stamps) <= after
    assert stamps == sorted(stamps)  # made one after another: never earlier than the last
    ticket = new_id("T")
    assert ticket.startswith("T") and len(ticket) == ID_LENGTH
    assert int(ticket[1:], 16) >= 0


def test_ids_of_a_later_millisecond_sort_after_any_of_an_earlier_one() -> None:
    lowest, highest = bytes(16), b"\xff" * 16  # the random bits at their extremes
    earlier = _id_of(highest, ms=1_790_000_000_000)
    later = _id_of(lowest, ms=1_790_000_000_001)
    assert earlier < later
    assert _is_version_7(earlier) and _is_version_7(later)


def test_the_random_bits_fill_every_other_position() -> None:
    """74 bits of the 16 random bytes are kept: all-zero and all-one bytes give ids that
    differ everywhere but in the time, version and variant."""
    low, high = _id_of(bytes(16), ms=0), _id_of(b"\xff" * 16, ms=0)
    assert low == "00000000000070008000000000000000"
    assert high == "0000000000007fffbfffffffffffffff"


def test_an_id_source_gives_new_ids_across_its_refills() -> None:
    take = IdSource(chunk=16)
    made = [take() for _ in range(100)]  # seven draws of the random bytes
    assert all(_is_version_7(m) for m in made)
    assert len(set(made)) == 100
    assert [m[:12] for m in made] == sorted(m[:12] for m in made)


def test_an_id_source_builds_the_same_id_as_id_of_from_the_same_bytes() -> None:
    """IdSource slices the hex digits of its random bytes (`_hex_id`) instead of
    `_id_of`'s arithmetic: the same id for the same bytes and millisecond."""
    cases = [bytes(16), b"\xff" * 16, bytes(range(16)), *(os.urandom(16) for _ in range(2000))]
    for raw in cases:
        for ms in (0, 1_790_000_000_123, (1 << 48) + 5):
            assert _hex_id(raw.hex(), ms) == _id_of(raw, ms=ms), (raw.hex(), ms)


def test_a_short_id_is_the_random_end() -> None:
    one, two = _id_of(bytes(16), ms=5), _id_of(b"\x01" * 16, ms=5)
    assert one[:12] == two[:12] and short_id(one) != short_id(two)
    assert short_id(two) == two[-8:]
