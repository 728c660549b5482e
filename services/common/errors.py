"""The shared kernel of both domains: the errors a caller can cause.

Pure Python, no I/O. Each error names its kind in `code`; services/common/grpc_errors.py
and the HTTP routes map those names to status codes in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. `profile.hazards[0].due_on`) and why."""

    field: str
    description: str

    @property
    def list_field(self) -> str:
        """The field a violation of one list item belongs to, for a form that shows its
        errors beside whole fields: `preferred_slots[1]` → `preferred_slots` (both
        services name a list's item by its index as sent: review 72)."""
        return self.field.split("[", 1)[0] if self.field.endswith("]") else self.field


class DomainError(Exception):
    """Base of every error a caller can cause; `code` selects the status code. An error a
    client must tell apart from others of its code names a `reason` (UPPER_SNAKE_CASE,
    stable: part of the contract, unlike the message, which is for people) in its
    `domain` (the service's proto package), with `metadata` (short strings) saying what
    it concerns: a google.rpc.ErrorInfo over gRPC (grpc_errors.py). "" = none."""

    code = "failed_precondition"
    reason = ""
    domain = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = {}


class ValidationError(DomainError):
    """The input is malformed; carries one violation per bad field."""

    code = "invalid_argument"

    def __init__(self, violations: list[FieldViolation]) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        super().__init__(f"invalid request: {summary}")
        self.violations = violations


class NotFound(DomainError):
    code = "not_found"


class PreconditionFailed(DomainError):
    code = "failed_precondition"


class AlreadyExists(DomainError):
    code = "already_exists"


class PermissionDenied(DomainError):
    code = "permission_denied"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Unavailable(DomainError):
    """Something the call needs (the database, the rules service) cannot answer now; the
    caller may retry (UNAVAILABLE), after `retry_after` seconds when given."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the work could be done (nothing committed)."""

    code = "deadline_exceeded"


class RateLimited(DomainError):
    code = "resource_exhausted"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(DomainError):
    """A concurrent write got there first (a unique key another connection committed a
    moment before); the unit of work raises it for the database's integrity error. Retry
    the work: it will see the other write (ABORTED if it escapes)."""

    code = "aborted"


def retry_on_conflict(work: Callable[[], T], attempts: int = 2) -> T:
    """`work()`, run again (in a fresh transaction) when it lost a race to a concurrent
    write; the last attempt's Conflict propagates."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Conflict:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")
