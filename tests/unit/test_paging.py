"""The one paging scheme (services/common/paging.py) both services' List… RPCs use."""

from __future__ import annotations

import pytest

from services.common.errors import ValidationError
from services.common.paging import decode_token, encode_token, one_page, page_size, query_key


def test_page_size_defaults_and_caps() -> None:
    assert page_size(0) == 50
    assert page_size(7) == 7
    for bad in (-1, 501):
        with pytest.raises(ValidationError) as info:
            page_size(bad)
        assert info.value.violations[0].field == "page_size"


def test_a_token_carries_its_cursor_and_is_bound_to_its_filters() -> None:
    query = query_key("ListTickets", "91330782MA2000001K", "open", True)
    token = encode_token(query, "T123")
    assert decode_token(token, query) == "T123"
    assert decode_token("", query) == ""
    with pytest.raises(ValidationError):
        decode_token(token, query_key("ListTickets", "91330782MA2000001K", "open", False))
    with pytest.raises(ValidationError):
        decode_token("not-a-token!", query)


def test_a_token_is_bound_to_its_listing() -> None:
    """Review 47b F3: a ListWhitelist token sent to ListEnterprises (same region) was
    taken, and answered an empty last page."""
    token = encode_token(query_key("ListWhitelist", "稠城街道"), "91330782MA2000001K")
    with pytest.raises(ValidationError) as info:
        decode_token(token, query_key("ListEnterprises", "稠城街道"))
    assert info.value.violations[0].field == "page_token"


def test_a_changed_token_is_refused() -> None:
    """Review 47b F3: one base64 character changed resumed the listing at another firm.
    Every single-character change of a token is refused (or decodes to the same bytes)."""
    query = query_key("ListWhitelist", "稠城街道")
    token = encode_token(query, "91330782MA2000509Q")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, original in enumerate(token.rstrip("=")):
        for other in alphabet.replace(original, "")[::7]:
            changed = token[:i] + other + token[i + 1 :]
            try:
                assert decode_token(changed, query) == "91330782MA2000509Q"
            except ValidationError as exc:
                assert exc.violations[0].field == "page_token"


def test_one_page_cuts_at_size_and_says_whether_there_is_more() -> None:
    rows, token = one_page(["a", "b", "c"], 2, "q", lambda r: r)
    assert rows == ["a", "b"] and decode_token(token, "q") == "b"
    assert one_page(["a", "b"], 2, "q", lambda r: r) == (["a", "b"], "")
    assert one_page([], 2, "q", lambda r: r) == ([], "")


@pytest.mark.parametrize("cursor", ["9133\x00782", "T\x1b[31m", "x" * 257])
def test_a_forged_cursor_is_refused(cursor: str) -> None:
    """Review hunt 4: a forged token's NUL reached PostgreSQL's WHERE id > :after and
    answered INTERNAL."""
    query = query_key("ListEnterprises", "")
    with pytest.raises(ValidationError) as info:
        decode_token(encode_token(query, cursor), query)
    assert info.value.violations[0].field == "page_token"


def test_a_composite_cursor_keeps_its_separator() -> None:
    """A cursor of two parts joined by the unit separator comes back whole."""
    query = query_key("ListWhitelist", "")
    cursor = "稠城街道\x1f91330782MA2000001K"
    assert decode_token(encode_token(query, cursor), query) == cursor
