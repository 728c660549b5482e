"""一图一码: signed QR tokens, key rotation, and everything a forger could try."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.booking.domain.qr import Keyring, QrToken, TokenRejected, issue, verify
from tests.support import uscc

K1 = b"k1" * 16  # 32 bytes, the minimum
K2 = b"second-key-" * 4
K3 = b"third-key-third-key-third-key-33"
FIRM = uscc(1)
OTHER_FIRM = uscc(2)
RING = Keyring({"k1": K1}, active="k1")


def parts(text: str) -> list[str]:
    return text.split(".")


def rejected(keyring: Keyring, text: str) -> str:
    with pytest.raises(TokenRejected) as info:
        verify(keyring, text)
    return info.value.reason


def test_round_trip() -> None:
    token, text = issue(RING, FIRM)
    assert token == QrToken("k1", FIRM, token.serial)
    assert text.startswith(f"k1.{FIRM}.{token.serial}.")
    assert len(token.serial) == 16
    assert verify(RING, text) == token


def test_two_issues_for_the_same_firm_differ() -> None:
    (first, text1), (second, text2) = issue(RING, FIRM), issue(RING, FIRM)
    assert first.serial != second.serial
    assert text1 != text2
    assert verify(RING, text1) == first
    assert verify(RING, text2) == second


def test_many_issues_all_have_fresh_serials() -> None:
    assert len({issue(RING, FIRM)[0].serial for _ in range(200)}) == 200


def test_edited_enterprise_id_is_rejected() -> None:
    _, text = issue(RING, FIRM)
    kid, _, serial, sig = parts(text)
    assert rejected(RING, f"{kid}.{OTHER_FIRM}.{serial}.{sig}") == "bad signature"


def test_token_of_one_firm_cannot_be_grafted_onto_another() -> None:
    _, mine = issue(RING, FIRM)
    _, theirs = issue(RING, OTHER_FIRM)
    sig = parts(theirs)[3]
    kid, firm, serial, _ = parts(mine)
    assert rejected(RING, f"{kid}.{firm}.{serial}.{sig}") == "bad signature"


def test_edited_serial_is_rejected() -> None:
    _, text = issue(RING, FIRM)
    kid, firm, serial, sig = parts(text)
    edited = ("0" if serial[0] != "0" else "1") + serial[1:]
    assert rejected(RING, f"{kid}.{firm}.{edited}.{sig}") == "bad signature"


def test_edited_key_id_is_rejected() -> None:
    ring = Keyring({"k1": K1, "k2": K2}, active="k1")
    _, text = issue(ring, FIRM)
    _, firm, serial, sig = parts(text)
    assert rejected(ring, f"k2.{firm}.{serial}.{sig}") == "bad signature"
    assert rejected(ring, f"k9.{firm}.{serial}.{sig}") == "unknown key"


@pytest.mark.parametrize("position", [0, 1, 20, 41, 42])
def test_edited_signature_is_rejected(position: int) -> None:
    _, text = issue(RING, FIRM)
    kid, firm, serial, sig = parts(text)
    for replacement in "AaZz09-_":
        if sig[position] == replacement:
            continue
        forged = sig[:position] + replacement + sig[position + 1 :]
        assert rejected(RING, f"{kid}.{firm}.{serial}.{forged}") == "bad signature"


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    _, text = issue(Keyring({"k1": K2}, active="k1"), FIRM)
    assert rejected(RING, text) == "bad signature"


def test_unknown_key_id_is_rejected() -> None:
    _, text = issue(Keyring({"k7": K1}, active="k7"), FIRM)
    assert rejected(RING, text) == "unknown key"


def test_rotation_old_key_in_ring_verifies_removed_key_does_not() -> None:
    before = Keyring({"k1": K1, "k2": K2}, active="k1")
    old_token, old_text = issue(before, FIRM)
    oldest_token, oldest_text = issue(Keyring({"k3": K3}, active="k3"), FIRM)

    # the active key changes to k2; k1 stays in the ring, k3 has been rotated out
    after = Keyring({"k1": K1, "k2": K2}, active="k2")
    new_token, new_text = issue(after, FIRM)
    assert new_token.key_id == "k2"
    assert verify(after, new_text) == new_token
    assert verify(after, old_text) == old_token
    assert oldest_token.key_id == "k3"
    assert rejected(after, oldest_text) == "unknown key"

    # finally k1 is removed as well
    final = Keyring({"k2": K2}, active="k2")
    assert rejected(final, old_text) == "unknown key"
    assert verify(final, new_text) == new_token


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "...",
        "k1",
        "k1.91330782MA20000013",
        "k1.91330782MA20000013.0123456789abcdef",
        "k1.91330782MA20000013.0123456789abcdef." + "A" * 42,  # signature too short
        "k1.91330782MA20000013.0123456789abcdef." + "A" * 44,  # too long
        "k1.91330782MA20000013.0123456789abcdef." + "A" * 42 + "=",  # padding
        "k1.91330782MA2000001.0123456789abcdef." + "A" * 43,  # 17-char firm id
        "k1.91330782ma20000013.0123456789abcdef." + "A" * 43,  # lower-case firm id
        "k1.91330782MA20000013.0123456789ABCDEF." + "A" * 43,  # upper-case serial
        "k1.91330782MA20000013.0123456789abcde." + "A" * 43,  # short serial
        ".91330782MA20000013.0123456789abcdef." + "A" * 43,  # empty key id
        "k" * 17 + ".91330782MA20000013.0123456789abcdef." + "A" * 43,
        "k1.91330782MA20000013.0123456789abcdef." + "A" * 43 + ".",
        "k1..91330782MA20000013.0123456789abcdef." + "A" * 43,
        "k1.91330782MA20000013.0123456789abcdef.." + "A" * 43,
        "k１.91330782MA20000013.0123456789abcdef." + "A" * 43,  # full-width digit
        "k1.９1330782MA20000013.0123456789abcdef." + "A" * 43,
        "k1.91330782MA20000013.0123456789abcdef." + "é" * 43,
        "企业.码",
        "\x00" * 80,
        "A" * 100_000,
        ("k1." * 10_000),
    ],
)
def test_malformed_strings_are_rejected(text: str) -> None:
    assert rejected(RING, text) == "malformed"


@pytest.mark.parametrize("wrap", [" {}", "{} ", "{}\t", "https://example.org/q/{}", "{}?x=1"])
def test_valid_token_inside_other_text_is_malformed(wrap: str) -> None:
    _, text = issue(RING, FIRM)
    assert rejected(RING, wrap.format(text)) == "malformed"


def test_valid_token_with_trailing_newline_is_malformed() -> None:
    _, text = issue(RING, FIRM)
    assert rejected(RING, text + "\n") == "malformed"


def test_none_is_rejected_not_crashing() -> None:
    assert rejected(RING, None) == "malformed"  # type: ignore[arg-type]


# ---- the keyring ------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_keyring_rejects_short_keys(length: int) -> None:
    with pytest.raises(ValueError):
        Keyring({"k1": b"x" * length}, active="k1")
    with pytest.raises(ValueError):  # a short inactive key is refused too
        Keyring({"k1": K1, "k2": b"x" * length}, active="k1")


def test_keyring_accepts_32_byte_keys() -> None:
    assert Keyring({"k1": b"x" * 32}, active="k1").active == "k1"


@pytest.mark.parametrize(("keys", "active"), [({"k1": K1}, "k2"), ({}, "k1"), ({"k1": K1}, "")])
def test_keyring_rejects_an_active_key_not_in_the_ring(keys: dict[str, bytes], active: str) -> None:
    with pytest.raises(ValueError):
        Keyring(keys, active=active)


@pytest.mark.parametrize("kid", ["", "k.1", "k-1", "k" * 17, "密钥"])
def test_keyring_rejects_bad_key_ids(kid: str) -> None:
    with pytest.raises(ValueError):
        Keyring({kid: K1}, active=kid)


# ---- properties -------------------------------------------------------------------------


@settings(max_examples=500)
@given(st.text())
def test_verify_never_raises_anything_but_token_rejected(text: str) -> None:
    with contextlib.suppress(TokenRejected):
        verify(RING, text)


@settings(max_examples=300)
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef.-_", max_size=120))
def test_verify_rejects_near_token_alphabet_text(text: str) -> None:
    # only issue() can make an accepted token; random text in the right alphabet cannot
    with pytest.raises(TokenRejected):
        verify(RING, text)


@settings(max_examples=200)
@given(st.from_regex(r"[0-9A-Z]{18}", fullmatch=True), st.data())
def test_round_trip_and_any_single_character_edit_is_rejected(
    firm: str, data: st.DataObject
) -> None:
    token, text = issue(RING, firm)
    assert verify(RING, text) == token
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from("0123456789ABCDEFabcdef.-_k"))
    edited = text[:position] + replacement + text[position + 1 :]
    if edited != text:
        with pytest.raises(TokenRejected):
            verify(RING, edited)
