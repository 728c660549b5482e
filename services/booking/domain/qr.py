"""一图一码: the firm's QR token, signed with HMAC-SHA256 under a key id.

Token: `<kid>.<enterprise_id>.<serial>.<signature>`; the signature covers the first three
parts, so neither the firm nor the serial can be edited. Keys rotate by id: new tokens are
signed with the active key, older keys still verify until removed. Reissuing a code gives
the firm a new serial; the register keeps only the current serial, which revokes the old.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"([A-Za-z0-9]{1,16})\.([0-9A-Z]{18})\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


class TokenRejected(Exception):
    """The token is malformed, forged, edited, under an unknown key, or revoked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class QrToken:
    key_id: str
    enterprise_id: str
    serial: str

    def payload(self) -> str:
        return f"{self.key_id}.{self.enterprise_id}.{self.serial}"


@dataclass(frozen=True)
class Keyring:
    """Signing keys by id; `active` signs, every key verifies."""

    keys: Mapping[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not in the keyring")
        for kid, key in self.keys.items():
            if not re.fullmatch(r"[A-Za-z0-9]{1,16}", kid) or len(key) < 32:
                raise ValueError(f"key {kid!r}: ids are 1-16 letters/digits, keys >= 32 bytes")


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(keyring: Keyring, enterprise_id: str) -> tuple[QrToken, str]:
    """A new token for the firm (fresh serial) and its signed text."""
    token = QrToken(keyring.active, enterprise_id, secrets.token_hex(8))
    return token, f"{token.payload()}.{_sign(keyring.keys[keyring.active], token.payload())}"


def verify(keyring: Keyring, text: str) -> QrToken:
    """Check shape, key and signature (constant time); raise TokenRejected otherwise.

    Whether the serial is still the firm's current one is the caller's check (it needs
    the register).
    """
    match = _TOKEN.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise TokenRejected("malformed")
    token = QrToken(match.group(1), match.group(2), match.group(3))
    key = keyring.keys.get(token.key_id)
    if key is None:
        raise TokenRejected("unknown key")
    if not hmac.compare_digest(_sign(key, token.payload()), match.group(4)):
        raise TokenRejected("bad signature")
    return token


def sign(keyring: Keyring, token: QrToken) -> str:
    """The signed text of an existing token (its key must still be in the keyring): what
    a reprinted poster encodes without revoking the one on the wall."""
    return f"{token.payload()}.{_sign(keyring.keys[token.key_id], token.payload())}"
