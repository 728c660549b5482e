"""The firm's own sign-in (docs/booking.md "The firm's own page"): one-time codes and
session credentials, as pure functions. Only digests are ever stored.

A code is 6 digits, valid CODE_TTL, MAX_TRIES tries (one, once its number had
WRONG_CODES_PER_NUMBER_PER_DAY wrong codes in a day). A session credential is
`<session id>.<secret>.<signature>`: 256 random bits whose SHA-256 is stored, signed with
the QR keyring (HMAC-SHA256, any key verifies), valid SESSION_TTL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from .qr import Keyring

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5
SESSION_TTL = timedelta(days=30)
# Codes asked for one firm and one number: a stranger's made-up numbers never use up the
# owner's. There is deliberately no cap shared by all numbers: one would let strangers
# lock the owner out, or (refusing unknown numbers only) tell which number is on record.
CODES_PER_NUMBER_PER_HOUR = 5
CODES_PER_CLIENT_PER_HOUR = 10  # per address, whatever the firm and number
# Wrong codes typed for one firm and one number in a day (24 hours) before each code
# takes only one: past it, a wrong code voids the code it was typed for, and the number
# needs a new SMS code (itself CODES_PER_NUMBER_PER_HOUR). Without it, 5 codes an hour of
# 5 tries each let a stranger who knows the number try 600 guesses a day; past it, 5 an
# hour. Not a lock: the owner's new code, typed right, still signs in (a lock would let
# strangers keep the firm out), and a stranger could already spend a code's 5 tries.
WRONG_CODES_PER_NUMBER_PER_DAY = 10
DAY = timedelta(days=1)
CODE = re.compile(r"[0-9]{6}")
_CREDENTIAL = re.compile(r"([0-9a-f]{32})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})")


def wrong_code_voids(wrong_today: int) -> bool:
    """Whether a wrong code, the `wrong_today`th for its firm and number in a day (it
    counted), voids the code it was typed for (WRONG_CODES_PER_NUMBER_PER_DAY)."""
    return wrong_today >= WRONG_CODES_PER_NUMBER_PER_DAY


def mobile_after_visit(current: str, on_site: str, order_contact: str, confirmed: bool) -> str:
    """The firm's sign-in mobile once an expert has recorded the visit of one of its
    orders. The spec's "registered mobile: the register's contact, or the phone of its
    first confirmed order" (docs/booking.md): the expert confirms it in person (an order
    alone could come from anyone who scanned the public poster, with their own mobile).
    So: the mobile of the person the expert met (`on_site`), when the expert gave one;
    else, while the firm has none (`current`), the visited order's contact mobile, only
    when the expert `confirmed` that the person met is that contact; else the mobile on
    record (or none) stays."""
    if on_site:
        return on_site
    return current or (order_contact if confirmed else "")


# What a code's digest is keyed for (`keyed_digest`'s purpose): a code sent to the firm's
# sign-in mobile, or one sent to the register's contact mobile while the firm had none.
# Signing in with the latter makes that number the firm's sign-in mobile.
CODE_PURPOSE = "code"
CONTACT_CODE_PURPOSE = "contact-code"
# The digest a request's row gets when no code is sent: keyed for a purpose no sign-in
# tries, so it matches no code, while every request does the same work (review 56 D4).
UNSENT_PURPOSE = "unsent"


def code_purpose(sign_in_phone: str, register_contact: str, phone: str) -> str:
    """Why a code goes to `phone` ("" when none goes): it is the firm's sign-in mobile
    (CODE_PURPOSE), or the firm has none and `phone` is the rules register's contact
    mobile (CONTACT_CODE_PURPOSE). A firm that has a sign-in mobile keeps it, whatever the
    register says: booking.admin chose it, or an expert met its holder at the firm; the
    register's contact is what some system sent the rules service, checked by nobody of
    booking, so a change there must neither take the firm's account over nor lock out the
    person the authority confirmed. The register only stands in while booking knows no
    one (the spec's "registered mobile: the register's contact, or the phone of its first
    confirmed order")."""
    if sign_in_phone:
        return CODE_PURPOSE if sign_in_phone == phone else ""
    return CONTACT_CODE_PURPOSE if register_contact and register_contact == phone else ""


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def new_id() -> str:
    return secrets.token_hex(16)


def keyed_digest(keyring: Keyring, purpose: str, *parts: str, key_id: str = "") -> str:
    """HMAC-SHA256 under the active key (or `key_id`'s): for low-entropy values (codes,
    phones)."""
    message = "\x1f".join((purpose, *parts)).encode()
    key = keyring.keys[key_id or keyring.active]
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def keyed_digests(keyring: Keyring, purpose: str, *parts: str) -> list[str]:
    """The digest under every key of the ring, the active one first: a code asked for
    just before a key rotation still matches after it."""
    others = [k for k in keyring.keys if k != keyring.active]
    return [keyed_digest(keyring, purpose, *parts, key_id=k) for k in [keyring.active, *others]]


def secret_digest(secret: str) -> str:
    """SHA-256 of a 256-bit random secret (a session's)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, b"firm-session\x1f" + payload.encode(), hashlib.sha256).digest())


@dataclass(frozen=True)
class Credential:
    session_id: str
    secret: str


def new_credential(keyring: Keyring) -> tuple[Credential, str]:
    """A fresh session credential and its signed text."""
    cred = Credential(new_id(), _b64(secrets.token_bytes(32)))
    payload = f"{cred.session_id}.{cred.secret}"
    return cred, f"{payload}.{_signature(keyring.keys[keyring.active], payload)}"


def read_credential(keyring: Keyring, text: str) -> Credential | None:
    """The credential if its shape and signature (under any key) hold, else None."""
    match = _CREDENTIAL.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return None
    payload = f"{match.group(1)}.{match.group(2)}"
    if not any(
        hmac.compare_digest(_signature(key, payload), match.group(3))
        for key in keyring.keys.values()
    ):
        return None
    return Credential(match.group(1), match.group(2))
