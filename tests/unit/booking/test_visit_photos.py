"""A visit's photos (review 48 N1): checked by their size and first bytes, the visit's
together at most MAX_VISIT_PHOTO_BYTES whichever entrypoint sent them (a photo past it
named), and read only when written, one at a time (fake unit of work)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.findings import MAX_VISIT_PHOTO_BYTES, FindingInput, check_findings
from services.booking.domain.photos import MAX_PHOTO_BYTES, Upload
from services.booking.service_layer import visits
from services.common.errors import ValidationError
from tests.unit.booking.fakes import FakeUnitOfWork
from tests.unit.booking.test_use_cases import dispatched, finding

JPEG_HEAD = b"\xff\xd8\xff\xe0"


def unread(size: int) -> Upload:
    """A photo of `size` bytes that must not be read (the checks need only its size and
    first bytes)."""

    def read() -> bytes:
        raise AssertionError("read while checked")

    return Upload(size, JPEG_HEAD, read)


def test_photos_past_the_visits_total_are_named_and_a_smaller_later_one_fits() -> None:
    full = MAX_VISIT_PHOTO_BYTES // MAX_PHOTO_BYTES  # 20 photos of 5 MB fill it
    found = [
        FindingInput("GEN:ledger", "general", f"描述{i}", photos=(unread(MAX_PHOTO_BYTES),))
        for i in range(full + 1)
    ] + [
        FindingInput("GEN:ledger", "general", "过大", photos=(unread(MAX_PHOTO_BYTES + 1),)),
    ]
    with pytest.raises(ValidationError) as info:
        check_findings(found, date(2026, 6, 1), lambda ref: "general")
    over = messages.VISIT_PHOTO_OVER_TOTAL.format(total=MAX_VISIT_PHOTO_BYTES // (1024 * 1024))
    assert [(v.field, v.description) for v in info.value.violations] == [
        (f"findings[{full + 1}].photos[0]", messages.PHOTO_TOO_LARGE),
        (f"findings[{full}].photos[0]", over),
    ]
    fits = [*found[: full - 1], FindingInput("GEN:ledger", "general", "小", photos=(unread(10),))]
    assert len(check_findings(fits, date(2026, 6, 1), lambda ref: "general")) == full


def test_the_visit_reads_each_photo_only_to_write_it(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = dispatched(uow, ctx, token)
    reads: list[int] = []

    def photo(n: int) -> Upload:
        content = JPEG_HEAD + bytes([n]) * 100

        def read() -> bytes:
            reads.append(n)
            return content

        return Upload(len(content), content[:16], read)

    visits.record_visit(
        uow, ctx, order.id, [finding("major", photos=(photo(1), photo(2))), finding("general",
        photos=(photo(3),))], visited_on="", minutes=60, actor="E1",
    )  # fmt: skip
    assert reads == [1, 2, 3]  # each once, when written
    assert sorted(p.size for p in uow.register.photos.values()) == [104, 104, 104]
