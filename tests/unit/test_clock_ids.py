"""new_id (and a batch's IdSource) gives what `uuid.uuid4().hex` gives: a version-4, RFC
4122 UUID's hex digits."""

from __future__ import annotations

import uuid

from services.common.clock import ID_LENGTH, IdSource, new_id


def test_new_ids_are_uuid4_hex() -> None:
    seen = set()
    for _ in range(2000):
        made = new_id()
        parsed = uuid.UUID(made)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, made)
        seen.add(made)
    assert len(seen) == 2000
    ticket = new_id("T")
    assert ticket.startswith("T") and len(ticket) == ID_LENGTH
    assert int(ticket[1:], 16) >= 0


def test_an_id_source_gives_new_ids_across_its_refills() -> None:
    take = IdSource(chunk=16)
    made = [take() for _ in range(100)]  # seven draws of the random bytes
    for one in made:
        parsed = uuid.UUID(one)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, one)
    assert len(set(made)) == 100
