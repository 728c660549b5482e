"""Staff password hashing: argon2id (argon2-cffi's PasswordHasher, its default
parameters: RFC 9106's low-memory profile), the only module that imports argon2."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
# verified against when the username is unknown, so that a wrong name takes as long as a
# wrong password (the answer does not tell which)
_DUMMY = _HASHER.hash("not-a-password-of-anyone")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when `password` matches the stored hash ("" stored: spend the time, False)."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and bool(stored)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return False
