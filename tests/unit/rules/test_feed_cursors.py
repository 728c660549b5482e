"""Feed cursors (domain/changes.py, review 58 F1): a cursor names the feed's epoch and the
position, stays a decimal number below 2**53, and a bare position of before epochs is
still read as one; `admitted` judges a cursor by the feed head."""

from __future__ import annotations

import pytest

from services.rules.adapters.feed import FeedHead
from services.rules.domain.changes import (
    EPOCH_HIGH,
    EPOCH_LOW,
    POSITIONS,
    Cursor,
    format_cursor,
    new_epoch,
    parse_cursor,
)
from services.rules.domain.errors import PreconditionFailed, ValidationError
from services.rules.service_layer.feed import admitted


def test_a_cursor_names_the_epoch_and_the_position_and_reads_back() -> None:
    for epoch in (EPOCH_LOW, 476_240, EPOCH_HIGH - 1):
        for position in (0, 1, 12, POSITIONS - 1):
            text = format_cursor(epoch, position)
            assert text.isdigit() and len(text) == 16 and int(text) < 2**53
            assert parse_cursor(text) == Cursor(position, epoch)
    assert int(format_cursor(476_240, 13)) > int(format_cursor(476_240, 12))  # it grows
    with pytest.raises(ValueError):
        format_cursor(476_240, POSITIONS)  # beyond an epoch's positions: no cursor


def test_bare_positions_and_bad_text() -> None:
    assert parse_cursor("") == Cursor(0, None)
    assert parse_cursor("0") == Cursor(0, None)
    assert parse_cursor("12") == Cursor(12, None)
    assert parse_cursor("999999999999999999").epoch == 99_999_999  # no feed's epoch
    for bad in ("-1", "1e3", " 1", "１２", "0x10", "1" * 19):
        with pytest.raises(ValidationError) as info:
            parse_cursor(bad)
        assert info.value.violations[0].field == "after_cursor"


def test_a_new_epoch_is_never_the_one_it_replaces() -> None:
    for _ in range(200):
        assert EPOCH_LOW <= new_epoch() < EPOCH_HIGH
    assert all(new_epoch(EPOCH_LOW) != EPOCH_LOW for _ in range(200))


HEAD = FeedHead(epoch=476_240, last=20, pruned=5, bare_through=12)


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("", 5),  # from the oldest kept
        (format_cursor(476_240, 20), 20),
        (format_cursor(476_240, 5), 5),
        ("12", 12),  # a bare cursor the restored feed shares with the one that gave it
    ],
)
def test_admitted(text: str, after: int) -> None:
    assert admitted(text, parse_cursor(text), HEAD) == after


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (format_cursor(123_456, 10), "of another feed"),
        (format_cursor(476_240, 21), "ahead of the feed"),
        (format_cursor(476_240, 4), "older than the feed's retention"),
        ("13", "beyond position 12"),
        ("21", "ahead of the feed"),
        ("4", "older than the feed's retention"),
    ],
)
def test_refused(text: str, says: str) -> None:
    with pytest.raises(PreconditionFailed, match=says):
        admitted(text, parse_cursor(text), HEAD)


def test_a_feed_never_restored_takes_bare_cursors_up_to_its_last() -> None:
    head = FeedHead(epoch=476_240, last=20, pruned=0, bare_through=None)
    assert admitted("20", parse_cursor("20"), head) == 20
    with pytest.raises(PreconditionFailed, match="ahead of the feed"):
        admitted("21", parse_cursor("21"), head)
