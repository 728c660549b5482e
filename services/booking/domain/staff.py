"""Staff accounts (inspector, expert, supervisor, admin), their sessions and lockouts (pure).

A person signs in on the staff pages with a password; what they may do is the gRPC
scopes of their role (`ROLE_SCOPES`, the one mapping: docs/api.md "Auth"), plus two
narrowings the scopes cannot say: an expert sees only their own visits (`expert_id`), an
inspector only the orders and tickets of their region (`region`; an admin sees every
region). `Reach` is those two narrowings as a value; the same holds for a tokens-file
entry with `expert_id` or `region` over gRPC.

Only digests of session secrets are kept (`secret_digest`); the CSRF token of a session
is derived from its secret (`csrf_token`), so a form can carry it and the server can
check it against the stored digest without keeping the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    INSPECTOR = "inspector"
    EXPERT = "expert"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


# The gRPC scopes (docs/api.md) each role holds: the same names as in a tokens file.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.INSPECTOR: frozenset({"booking.inspector", "booking.read"}),
    Role.EXPERT: frozenset({"booking.expert", "booking.read"}),
    Role.SUPERVISOR: frozenset({"booking.read"}),
    Role.ADMIN: frozenset({"booking.admin", "booking.inspector", "booking.read"}),
}
ROLE_LABELS = {
    Role.INSPECTOR: "检查员",
    Role.EXPERT: "专家",
    Role.SUPERVISOR: "监管人员",
    Role.ADMIN: "管理员",
}


@dataclass(frozen=True)
class Reach:
    """The orders and tickets a staff caller may see within its scopes: only those of its
    own visits (`expert_id`), only those of firms in its area (`regions`, the 镇街 of a
    region-limited inspector); both empty (`EVERY`): all of them."""

    expert_id: str = ""
    regions: tuple[str, ...] = ()

    def admits(self, expert_id: str | None, region: str) -> bool:
        """Whether a record dispatched to `expert_id`, of a firm in `region`, is in reach."""
        if self.expert_id and expert_id != self.expert_id:
            return False
        return not self.regions or region in self.regions


EVERY = Reach()

USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{2,39}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256


@dataclass(frozen=True)
class LockoutPolicy:
    """`max_failures` wrong passwords in a row lock the account for `lock_for`."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SessionPolicy:
    """A session ends after `idle` without a request, and `absolute` after sign-in."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    touch_every: timedelta = timedelta(minutes=1)  # how stale last_seen may get before a write


@dataclass(frozen=True)
class AddressThrottle:
    """`max_failures` failed sign-ins from one client address within `window` refuse
    that address's sign-ins until the oldest of them is `window` old; meanwhile no
    account is counted, so one address locks at most max_failures // 5 accounts a window
    (an office behind one address still has room for its typos)."""

    max_failures: int = 20
    window: timedelta = timedelta(minutes=15)


LOCKOUT = LockoutPolicy()
SESSIONS = SessionPolicy()
ADDRESS_THROTTLE = AddressThrottle()


@dataclass
class StaffAccount:
    username: str
    display_name: str
    role: str
    password_hash: str
    region: str = ""  # an inspector's 镇街 (canonical name); "" for the other roles
    expert_id: str = ""  # an expert's id in the expert pool
    active: bool = True
    failed_attempts: int = 0
    locked_until: datetime | None = None
    password_changed_at: datetime | None = None
    created_at: datetime | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return scopes_of(self.role)


@dataclass
class StaffSession:
    """A signed-in (or, before sign-in, anonymous: username "") browser session."""

    id_digest: str  # SHA-256 of the cookie's secret: the secret itself is never stored
    csrf_digest: str  # SHA-256 of the CSRF token derived from the secret
    username: str
    created_at: datetime
    last_seen_at: datetime


def scopes_of(role: str) -> frozenset[str]:
    try:
        return ROLE_SCOPES[Role(role)]
    except ValueError:
        return frozenset()


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


CSRF_LENGTH = 64  # csrf_token: a SHA-256 HMAC in hex


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds `secret`."""
    return hmac.new(secret.encode(), b"staff-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session: StaffSession, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf_digest, digest(sent))


def is_locked(account: StaffAccount, now: datetime) -> bool:
    return account.locked_until is not None and now < _aware(account.locked_until, now)


def record_failure(account: StaffAccount, now: datetime, policy: LockoutPolicy = LOCKOUT) -> bool:
    """Count a wrong password; True when this one locks the account (the count restarts)."""
    if account.locked_until is not None and now >= _aware(account.locked_until, now):
        account.locked_until, account.failed_attempts = None, 0  # an old lock has run out
    account.failed_attempts += 1
    if account.failed_attempts >= policy.max_failures:
        account.locked_until = now + policy.lock_for
        account.failed_attempts = 0
        return True
    return False


def record_success(account: StaffAccount) -> None:
    account.failed_attempts, account.locked_until = 0, None


def session_expired(session: StaffSession, now: datetime, policy: SessionPolicy = SESSIONS) -> bool:
    return (
        now - _aware(session.last_seen_at, now) > policy.idle
        or now - _aware(session.created_at, now) > policy.absolute
    )


def needs_touch(session: StaffSession, now: datetime, policy: SessionPolicy = SESSIONS) -> bool:
    return now - _aware(session.last_seen_at, now) >= policy.touch_every


def _aware(value: datetime, like: datetime) -> datetime:
    """SQLite hands back naive UTC instants: compare them as UTC."""
    if value.tzinfo is None and like.tzinfo is not None:
        return value.replace(tzinfo=like.tzinfo)
    return value
