"""What every value a caller sends must satisfy, for both services (shared kernel, pure).

- `preview`: how an error quotes a bad value: at most a short prefix, never the whole of
  it (a 1 MiB value must not come back as a 1 MiB grpc-message).
- `control_problem`: text fields refuse control characters: C0 and C1 (U+0000–U+001F,
  U+007F–U+009F), the bidirectional marks, embeddings, overrides and isolates (U+061C,
  U+200E, U+200F, U+202A–U+202E, U+2066–U+2069: a U+202E in a contact name shown to an
  expert turned the rest of the line around and could fake a phone number, review 47a
  F6), the line and paragraph separators (U+2028, U+2029), U+FEFF and U+FFFD (text
  damaged on its way: a browser's form in another encoding); free-text fields
  (`MULTILINE_FIELDS`: notes, descriptions, reasons) may break lines (LF, CR, U+2028,
  U+2029). Zero-width spaces and joiners stay allowed (emoji sequences need the joiner).
- `trim`: the spaces around a value, taken away. Every caller's text is trimmed with it,
  never with str.strip(), which counts U+001C–U+001F and U+0085 as whitespace: a key
  ending in U+001F was trimmed and taken instead of refused. Control characters are
  refused where they stand, first or last included.
- `invisible`: text with nothing a person can see (spaces, zero-width characters): a
  required name or reason made only of them counts as blank.
- `FIRST_YEAR`, `LAST_YEAR`: every date of record a caller sends (history, deadlines,
  visits, statistics periods, expert slots) lies between 1949 and 2199, on both services;
  `parse_iso_date` reads one, `parse_day` reads one into a named field. Narrower rules
  sit on top where the domain has them (booking's bookable slots: tomorrow to 14 days
  ahead; rules' inspection gate: a visit still to come).
"""

from __future__ import annotations

import functools
import re
from datetime import date

from services.common.errors import FieldViolation, ValidationError

PREVIEW_CHARS = 32
FIRST_YEAR, LAST_YEAR = 1949, 2199  # any real record; leaves room for +36 months arithmetic
FIRST_DAY, LAST_DAY = date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)

# free text a person writes in a text area: line breaks allowed there, nowhere else
MULTILINE_FIELDS = frozenset({"note", "description", "reason", "grounds", "basis", "text"})
# ASCII digits only: \d also matches full-width and other scripts' digits (review 72)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# the bidi controls, BOM, and U+FFFD: the mark of text damaged on its way (a form sent in
# another encoding: review 47a N3), never what a person meant to type
_FORMATTING = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffd"
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\u2028\u2029{_FORMATTING}]")
_CONTROL_BUT_LINE_BREAKS = re.compile(f"[\\x00-\\x09\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_FORMATTING}]")
# str.isspace()'s characters that are no control characters: what `trim` takes away
_SPACES = " \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
_SPACES_AND_LINE_BREAKS = _SPACES + "\n\r\u2028\u2029"
# nothing visible: whitespace, zero-width spaces and joiners, word joiner, BOM, Hangul filler
_INVISIBLE = re.compile(r"[\s\u200b-\u200f\u2060-\u2064\ufeff\u3164\u115f\u1160]*")


def preview(value: object, limit: int = PREVIEW_CHARS, *, cut: str = "…({size} characters)") -> str:
    """`value` quoted for an error message: repr() of at most `limit` characters, with the
    full length (`cut`, formatted with `size`) when it was cut (control characters come
    out escaped). Messages people read say it in Chinese (booking's `messages.quoted`)."""
    if isinstance(value, bytes):
        shown = repr(value[:limit])
        size = len(value)
    else:
        text = value if isinstance(value, str) else str(value)
        shown = repr(text[:limit])
        size = len(text)
    return shown if size <= limit else shown + cut.format(size=size)


def clip(text: str, limit: int) -> str:
    """A message or field path cut to `limit` characters (the last line of defence)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def control_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why `text` is refused for holding a control character, or None when it is clean.
    `multiline`: a free-text field, where line feed and carriage return are allowed."""
    found = (_CONTROL_BUT_LINE_BREAKS if multiline else _CONTROL).search(text)
    if found is None:
        return None
    return f"must not contain control characters (U+{ord(found.group()):04X} at {found.start()})"


def without_controls(text: str) -> str:
    """`text` with its control characters taken out: for showing back what was typed
    into a field that refuses them (a login name with a NUL: review 59 F11)."""
    return _CONTROL.sub("", text)


def trim(text: str, *, multiline: bool = False) -> str:
    """`text` without the spaces around it (space, no-break and ideographic spaces, the
    typographic ones); control characters stay, for `control_problem` to refuse.
    `multiline`: a free-text field, whose line breaks around the text go too."""
    return text.strip(_SPACES_AND_LINE_BREAKS if multiline else _SPACES)


def invisible(text: str) -> bool:
    """Whether `text` holds nothing a person can see (empty, spaces, zero-width characters)."""
    return _INVISIBLE.fullmatch(text) is not None


def date_problem(day: date) -> str | None:
    """Why `day` is outside the dates any record may carry, or None."""
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"must be between {FIRST_YEAR} and {LAST_YEAR}"


def parse_iso_date(text: str) -> date:
    """A strict YYYY-MM-DD calendar date between 1949 and 2199; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("must be a date written YYYY-MM-DD")
    return _iso_date(text)


@functools.lru_cache(maxsize=4096)
def _iso_date(text: str) -> date:
    """parse_iso_date of a text, remembered (every request of a batch repeats its as_of;
    a refused text raises each time: exceptions are never remembered)."""
    if not _ISO_DATE.fullmatch(text):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:  # 2026-02-30: Python's words ("day is out of range") are not ours
        raise ValueError("no such day in the calendar (YYYY-MM-DD)") from None
    if problem := date_problem(day):
        raise ValueError(problem)
    return day


def written_day(text: str) -> date | None:
    """`text` as a calendar day written YYYY-MM-DD, whether or not a record may carry it
    (1900-01-01, 9999-12-31: a day, refused for its range); None for what is no day
    (2026/12/20, 2026-12-20T10:00, 2026-02-30), whose refusal says how to write one."""
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_day(text: str, field: str) -> date:
    """`text` as a date of record (parse_iso_date), else INVALID_ARGUMENT naming `field`."""
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        raise ValidationError([FieldViolation(field, f"{preview(text)}: {exc}")]) from exc
