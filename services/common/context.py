"""Who is calling, for the duration of one call: set by the auth interceptor, read by the
log line, the audit trail and the role checks. Per call, never leaking between calls."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name, scopes, (for experts) which expert it is and (for
    inspectors) which region it serves."""

    caller: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    expert_id: str = ""
    rate: tuple[float, float] | None = None  # its own (per second, burst), from the tokens file
    region: str = ""  # an inspector's 镇街 or county: only that region's tickets ("" = any)

    def has(self, *scopes: str) -> bool:
        return bool(self.scopes & set(scopes))


ANONYMOUS = Principal("anonymous")
_CALL: contextvars.ContextVar[dict[str, Principal]] = contextvars.ContextVar("call")


@contextmanager
def call_scope() -> Iterator[dict[str, Principal]]:
    """A fresh holder for one call (the logging interceptor opens it)."""
    holder: dict[str, Principal] = {"principal": ANONYMOUS}
    token = _CALL.set(holder)
    try:
        yield holder
    finally:
        _CALL.reset(token)
        structlog.contextvars.unbind_contextvars("caller", "error")


def bind(principal: Principal) -> None:
    """Record the verified caller of the current call."""
    holder = _CALL.get(None)
    if holder is None:
        holder = {}
        _CALL.set(holder)
    holder["principal"] = principal
    structlog.contextvars.bind_contextvars(caller=principal.caller)  # on every log line


def current_principal() -> Principal:
    holder = _CALL.get(None)
    return holder.get("principal", ANONYMOUS) if holder else ANONYMOUS


def current_caller() -> str:
    return current_principal().caller


def require_scope(scope: str, what: str) -> None:
    """Inside a call the method's rule admitted: refuse a part of it that needs `scope`.
    A server running without tokens (tests, --dev off) has no principal to check."""
    from services.common.errors import PermissionDenied

    principal = current_principal()
    if principal is not ANONYMOUS and not principal.has(scope):
        raise PermissionDenied(f"{what} needs the {scope} scope")


# The caller's deadline (time.monotonic()), for the database path: set per call by the
# server (from the gRPC deadline) and by the health probe (its own); None: no deadline.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Within this block the current call must be done in `seconds` (None: no deadline)."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds until the current call's deadline (may be <= 0), or None without one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


# A long-lived stream's end (a cancel, its deadline), for the waits its thread makes on the
# database path (the SQLite write lock): set per stream by its handler, while it runs.
_ENDED: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "ended", default=None
)


@contextmanager
def ending_with(ended: threading.Event) -> Iterator[None]:
    """Within this block the current call has ended once `ended` is set (the handler sets
    it from gRPC's done-callback): a wait for the database's write lock gives up soon
    after (`call_ended`), so the stream's thread, and the slot it holds, end at once
    instead of when the lock frees (review 61 R61-2)."""
    _ENDED.set(ended)
    try:
        yield
    finally:
        # not a token's reset: a generator's block may be closed from another context
        _ENDED.set(None)


def no_call_ended() -> None:
    """A call starts on a pool thread: no end of an earlier stream on it applies."""
    _ENDED.set(None)


def call_ended() -> threading.Event | None:
    """The current stream's end (set once it has ended), or None outside such a stream."""
    return _ENDED.get()
