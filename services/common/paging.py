"""One paging scheme for every List… RPC of both services (shared kernel, pure).

A page is asked for with `page_size` (0: the default, 50; at most 500) and the
`page_token` of the page before. The token is opaque to callers: a check value, then the
listing and filters of the query it continues (`query_key`, the listing's name first)
and the last row's position (`cursor`), base64url. A token sent with other filters or
to another listing, a token changed on its way (the check value no longer fits: review
47b F3, where one changed character resumed at another firm), or a cursor no row could
have (a control character, which PostgreSQL could not even compare) is INVALID_ARGUMENT;
an empty `next_page_token` means there is nothing more.

The check value is a keyed hash under a key in this file, not a secret: it catches a
token altered or cut, not one built on purpose, and a built token can only name a
position in a listing its caller may read anyway. Both services and every replica share
it, so a token of one replica works on another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from services.common.errors import FieldViolation, ValidationError

DEFAULT_PAGE, MAX_PAGE = 50, 500
MAX_CURSOR = 256  # a row's position: ids and dates, far shorter
# control characters but the unit separator, which joins a composite cursor's parts
_FORGED = re.compile(r"[\x00-\x1e\x7f]")
_SEPARATOR = "\x1e"  # between the filters and the cursor: no text field may hold it
_CHECK_KEY = b"services.common.paging v2"  # not a secret (see above)
_CHECK_BYTES = 9  # 12 base64 characters
T = TypeVar("T")


def page_size(size: int) -> int:
    """The rows a page holds: `size`, or the default for 0; INVALID_ARGUMENT past the cap."""
    if size < 0 or size > MAX_PAGE:
        raise ValidationError([FieldViolation("page_size", f"must be 0..{MAX_PAGE}")])
    return size or DEFAULT_PAGE


def _check(raw: bytes) -> bytes:
    return hmac.new(_CHECK_KEY, raw, hashlib.sha256).digest()[:_CHECK_BYTES]


def encode_token(query: str, cursor: str) -> str:
    """A token for the page after `cursor` of the query whose filters are `query`."""
    raw = f"{query}{_SEPARATOR}{cursor}".encode()
    return base64.urlsafe_b64encode(_check(raw) + raw).decode()


def decode_token(token: str, query: str) -> str:
    """The cursor a token carries ("" for no token), checked against the query's filters."""
    if not token:
        return ""
    try:
        whole = base64.urlsafe_b64decode(token.encode())
        check, raw = whole[:_CHECK_BYTES], whole[_CHECK_BYTES:]
        if not hmac.compare_digest(check, _check(raw)):
            raise ValueError("check value")
        token_query, cursor = raw.decode().split(_SEPARATOR, 1)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationError(
            [FieldViolation("page_token", "not a token this server issued")]
        ) from exc
    if token_query != query:
        raise ValidationError(
            [FieldViolation("page_token", "was issued for other filters; start again without it")]
        )
    if len(cursor) > MAX_CURSOR or _FORGED.search(cursor):  # no row's position is like it
        raise ValidationError([FieldViolation("page_token", "not a token this server issued")])
    return cursor


def one_page(
    rows: Sequence[T], size: int, query: str, cursor: Callable[[T], str]
) -> tuple[list[T], str]:
    """The first `size` of `rows` (read with a limit of size + 1) and the next page's
    token, "" when there is no more."""
    page = list(rows[:size])
    more = len(rows) > size and bool(page)
    return page, (encode_token(query, cursor(page[-1])) if more else "")


def query_key(listing: str, *filters: object) -> str:
    """A listing's name and the filters of its query: the text a token is bound to (the
    name keeps a token of one listing from another with the same filters)."""
    return "\x1f".join(str(f) for f in (listing, *filters))
