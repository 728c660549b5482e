"""Staff sign-in, sessions and CSRF state, kept in the database (so they hold across
processes and replicas).

A browser holds a random session secret in a cookie; the database keeps only its SHA-256
digest and the digest of the CSRF token derived from it (domain/staff.py). Before
sign-in the login form gets an anonymous session (its CSRF token protects the form);
signing in replaces it with a new one (no session fixation). Five wrong passwords in a
row lock the account for 15 minutes (domain/staff.py LOCKOUT). An unknown name, a
disabled or locked account and a wrong password get one answer after the same work
(argon2 against a dummy hash when there is no usable account). Twenty failed sign-ins
from one client address in 15 minutes refuse that address for the rest of the window
(ADDRESS_THROTTLE), so one address cannot keep many accounts locked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.booking.adapters.passwords import verify_password
from services.booking.domain.staff import (
    ADDRESS_THROTTLE,
    LOCKOUT,
    SESSIONS,
    AddressThrottle,
    LockoutPolicy,
    SessionPolicy,
    StaffAccount,
    StaffSession,
    csrf_matches,
    csrf_token,
    digest,
    is_locked,
    needs_touch,
    record_failure,
    record_success,
    session_expired,
)
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.context import Principal
from services.common.values import control_problem


class Outcome(StrEnum):
    SIGNED_IN = "signed_in"
    WRONG = "wrong"  # unknown user, wrong password or disabled account: one answer
    LOCKED = "locked"  # the account is locked (the person is told the same as WRONG)
    THROTTLED = "throttled"  # too many failures from the client's address


@dataclass(frozen=True)
class SignIn:
    outcome: Outcome
    secret: str = ""  # the new session's cookie value (SIGNED_IN)
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Visitor:
    """Who sent a request: their session, and their account once signed in."""

    secret: str
    session: StaffSession
    account: StaffAccount | None

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)

    def csrf_ok(self, sent: str) -> bool:
        return csrf_matches(self.session, sent)


def principal_of(account: StaffAccount) -> Principal:
    """The person as the role checks and the audit trail see them (services/common/context)."""
    return Principal(
        f"staff:{account.username} {account.display_name}"[:100],
        account.scopes,
        account.expert_id,
        None,
        account.region,
    )


def _new_session(uow: UnitOfWork, username: str, at: datetime) -> str:
    secret = secrets.token_urlsafe(32)
    uow.register.add(StaffSession(digest(secret), digest(csrf_token(secret)), username, at, at))
    return secret


def start_anonymous(uow: UnitOfWork) -> Visitor:
    """A session for the login form (its CSRF token), not signed in; sessions past
    their limits are cleared on the way (each login form would otherwise leave a row)."""
    at = now()
    with uow:
        uow.register.end_stale_sessions(at - SESSIONS.idle, at - SESSIONS.absolute)
        secret = _new_session(uow, "", at)
        uow.commit()
    return visitor(uow, secret) or _never()


def _never() -> Visitor:
    raise RuntimeError("a session just created was not found")


def visitor(uow: UnitOfWork, secret: str, policy: SessionPolicy = SESSIONS) -> Visitor | None:
    """The live session a cookie names (touched at most once a minute), with its active
    account; None when unknown, expired (then removed) or its account was disabled."""
    if not secret or len(secret) > 100:
        return None
    at = now()
    with uow:
        session = uow.register.staff_session(digest(secret))
        if session is None:
            return None
        account = uow.register.staff_account(session.username) if session.username else None
        if session_expired(session, at, policy) or (
            session.username and (account is None or not account.active)
        ):
            uow.register.end_staff_session(session.id_digest)
            uow.commit()
            return None
        if needs_touch(session, at, policy):
            session.last_seen_at = at
            uow.commit()
        return Visitor(secret, session, account)


def sign_in(
    uow: UnitOfWork,
    username: str,
    password: str,
    old_secret: str = "",
    lockout: LockoutPolicy = LOCKOUT,
    policy: SessionPolicy = SESSIONS,
    address: str = "",
    throttle: AddressThrottle = ADDRESS_THROTTLE,
) -> SignIn:
    """Check the password (argon2id); count a wrong one against the account (locking it
    after `lockout`) and the client `address` (throttled after `throttle`); on success
    end the old (anonymous) session and start a new signed-in one."""
    at = now()
    name, where = username[:40], digest(f"address:{address}")
    with uow:
        if address and uow.register.sign_in_failures(where, at - throttle.window) >= (
            throttle.max_failures
        ):
            verify_password("", password[:256])  # the same work as any other answer
            return SignIn(Outcome.THROTTLED)
        account = (
            None if control_problem(name) else uow.register.staff_account(name, for_update=True)
        )
        usable = account is not None and account.active and not is_locked(account, at)
        stored = account.password_hash if account is not None and usable else ""
        matches = verify_password(stored, password[:256])
        if account is None or not usable or not matches:
            return _refused(uow, account, usable, at, lockout, where if address else "")
        record_success(account)
        if old_secret:
            uow.register.end_staff_session(digest(old_secret))
        uow.register.end_stale_sessions(at - policy.idle, at - policy.absolute)
        secret = _new_session(uow, account.username, at)
        uow.commit()
        return SignIn(Outcome.SIGNED_IN, secret)


def _refused(
    uow: UnitOfWork,
    account: StaffAccount | None,
    usable: bool,
    at: datetime,
    lockout: LockoutPolicy,
    address_digest: str,
    throttle: AddressThrottle = ADDRESS_THROTTLE,
) -> SignIn:
    """A failed sign-in counted against the account (when it could sign in) and the
    client's address."""
    if account is not None and usable:
        record_failure(account, at, lockout)
    if address_digest:
        uow.register.add_sign_in_failure(address_digest, at, at - throttle.window)
    uow.commit()
    if account is not None and account.active and is_locked(account, at):
        return SignIn(Outcome.LOCKED, locked_until=account.locked_until)
    return SignIn(Outcome.WRONG)


def sign_out(uow: UnitOfWork, secret: str) -> None:
    with uow:
        uow.register.end_staff_session(digest(secret))
        uow.commit()
