"""The shared text rules (services/common/values.py): which characters no text field may
hold, which free text may, and what counts as blank."""

from __future__ import annotations

import pytest

from services.common.values import control_problem, invisible, trim

REFUSED_EVERYWHERE = [
    "\x00",  # C0
    "\x1b",
    "\x7f",
    "\x85",  # C1 (NEL), review 47b N3
    "\x9f",
    "\u061c",  # Arabic letter mark
    "\u200e",  # left-to-right mark
    "\u200f",
    "\u202a",  # embeddings and overrides: U+202E turned an expert's line around (47a F6)
    "\u202e",
    "\u2066",  # isolates
    "\u2069",
    "\ufeff",  # BOM
    "\ufffd",  # text damaged on its way: a form sent in another encoding (47a N3)
]
LINE_BREAKS = ["\n", "\r", "\u2028", "\u2029"]  # free text only
ALLOWED = ["张三", "a b", "é", "\u200b", "👨\u200d👩\u200d👧", "１２３", "(株)"]


@pytest.mark.parametrize("char", REFUSED_EVERYWHERE)
def test_controls_and_bidi_formatting_are_refused_in_every_text(char: str) -> None:
    for multiline in (False, True):
        problem = control_problem(f"张三{char}8765", multiline=multiline)
        assert problem is not None and f"U+{ord(char):04X} at 2" in problem


@pytest.mark.parametrize("char", LINE_BREAKS)
def test_line_breaks_only_in_free_text(char: str) -> None:
    assert control_problem(f"a{char}b") is not None
    assert control_problem(f"a{char}b", multiline=True) is None


@pytest.mark.parametrize("text", ALLOWED)
def test_ordinary_text_and_emoji_joiners_pass(text: str) -> None:
    assert control_problem(text) is None


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u3000", "\u200b\u200b", "\u2060", "\u3164"])
def test_nothing_visible_is_blank(text: str) -> None:
    assert invisible(text)


@pytest.mark.parametrize("text", ["a", " a ", "\u200bx", "·", "👍"])
def test_anything_visible_is_not_blank(text: str) -> None:
    assert not invisible(text)


@pytest.mark.parametrize("multiline", [False, True])
def test_trim_takes_away_exactly_the_whitespace_that_is_no_control_character(
    multiline: bool,
) -> None:
    """str.strip() takes U+001C–U+001F and U+0085 for whitespace: a value ending in one was
    trimmed and taken. trim leaves every control character for control_problem."""
    for char in map(chr, range(0x110000)):
        if char.isspace():
            allowed = control_problem(char, multiline=multiline) is None
            kept = trim(f"{char}张三{char}", multiline=multiline)
            assert kept == ("张三" if allowed else f"{char}张三{char}"), (hex(ord(char)), kept)


def test_trim_keeps_what_is_inside() -> None:
    assert trim(" \u3000张 三\u00a0") == "张 三"
    assert trim("\r\n二车间\n三车间\n", multiline=True) == "二车间\n三车间"
    assert trim("\n二车间") == "\n二车间"  # a line break is no space in a one-line field
