"""Domain errors → gRPC status codes with google.rpc details, in one place for both services.

Domain errors carry a `code` name ("invalid_argument", "not_found", …) and, for
validation, `violations` with `field`/`description`; nothing here imports a domain.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.context import time_left
from services.common.db import database_unavailable
from services.common.values import clip

CODES: dict[str, grpc.StatusCode] = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "aborted": grpc.StatusCode.ABORTED,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
}
# Every value quoted in an error goes through values.preview; these caps are the last line
# of defence, so a status always fits the 8 KB metadata a client accepts by default.
MAX_MESSAGE, MAX_FIELD, MAX_DESCRIPTION, MAX_VIOLATIONS = 1000, 120, 240, 20
_log = structlog.get_logger("grpc")
F = TypeVar("F", bound=Callable[..., Any])


def is_domain_error(exc: BaseException) -> bool:
    return isinstance(getattr(exc, "code", None), str) and exc.code in CODES  # type: ignore[attr-defined]


def status_proto(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status for a domain error, with a BadRequest for validation errors
    and an ErrorInfo for an error that names its `reason` (errors.DomainError)."""
    code = CODES[exc.code]  # type: ignore[attr-defined]
    message = clip(getattr(exc, "message", str(exc)), MAX_MESSAGE)
    status = status_pb2.Status(code=code.value[0], message=message)
    reason = getattr(exc, "reason", "")
    if reason:
        metadata = getattr(exc, "metadata", None) or {}
        info = error_details_pb2.ErrorInfo(
            reason=clip(reason, MAX_FIELD),
            domain=clip(getattr(exc, "domain", ""), MAX_FIELD),
            metadata={
                clip(k, MAX_FIELD): clip(v, MAX_DESCRIPTION)
                for k, v in list(metadata.items())[:MAX_VIOLATIONS]
            },
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status.details.append(detail)
    violations = getattr(exc, "violations", None)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=clip(v.field, MAX_FIELD), description=clip(v.description, MAX_DESCRIPTION)
                )
                for v in violations[:MAX_VIOLATIONS]
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad)
        status.details.append(detail)
    return status


_PASSED, _DB_DOWN = "the deadline passed", "the database is unavailable; try again"


def classify(exc: BaseException) -> tuple[status_pb2.Status, float | None]:
    """The one classification of an error that ends a call or fails an item: its
    google.rpc.Status (no RetryInfo yet) and, when the client should try again later,
    after how many seconds. A domain error its own code, details and retry hint; a
    database that cannot take the work UNAVAILABLE, to retry after a second, or, once
    the caller's deadline has passed, DEADLINE_EXCEEDED; anything else INTERNAL (the
    caller logs it, with what it knows of where it happened)."""
    if is_domain_error(exc):
        return status_proto(exc), getattr(exc, "retry_after", None) or None
    if database_unavailable(exc):
        left = time_left()
        if left is not None and left <= 0:  # the watchdog cut it at the caller's deadline
            return status_pb2.Status(code=code_pb2.DEADLINE_EXCEEDED, message=_PASSED), None
        return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=_DB_DOWN), 1
    return internal_status(), None


def item_status(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status one item of a stream or batch answers with when it failed
    (the stream goes on): `classify`, the same status `abort_for` would end a unary call
    with, its retry hint as a RetryInfo detail; INTERNAL is logged here."""
    status, retry_after = classify(exc)
    if status.code == code_pb2.INTERNAL:
        _log.error("unhandled error in an item of a stream or batch", exc_info=exc)
    if retry_after:
        _add_retry_info(status, retry_after)
    return status


def _add_retry_info(status: status_pb2.Status, seconds: float) -> None:
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromSeconds(retry_seconds(seconds))
    detail = any_pb2.Any()
    detail.Pack(info)
    status.details.append(detail)


def retry_seconds(seconds: float) -> int:
    """A wait as the whole seconds a client is told (at least 1, never early)."""
    return max(1, math.ceil(seconds))


def with_retry_info(status: status_pb2.Status, seconds: float) -> grpc.Status:
    """`status` as a call's final status telling the client when to try again, in the two
    forms clients read: a google.rpc.RetryInfo detail and a `retry-after` trailer, both
    in whole seconds."""
    wait = retry_seconds(seconds)
    _add_retry_info(status, wait)
    out = rpc_status.to_status(status)
    # abort_with_status sends the status's own trailers: the hint goes there
    return out._replace(trailing_metadata=(*out.trailing_metadata, ("retry-after", str(wait))))


def retry_later(code: grpc.StatusCode, message: str, seconds: float) -> grpc.Status:
    return with_retry_info(status_pb2.Status(code=code.value[0], message=message), seconds)


def internal_status() -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; it has been logged")


def map_errors(method: F) -> F:
    """Wrap a unary servicer method: domain errors become their status, anything else INTERNAL."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            abort_for(exc, context)
            raise  # unreachable: abort raises

    return wrapper  # type: ignore[return-value]


S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def unary(method: Callable[[S, Req], Resp]) -> Callable[[S, Req, grpc.ServicerContext], Resp]:
    """A unary servicer method that needs only its request (translate, call a use case,
    translate back), as gRPC calls it (with the call's context), errors mapped as by
    `map_errors`. Methods that read the context (metadata, the peer) use `map_errors`."""

    @functools.wraps(method)
    def with_context(self: S, request: Req, context: grpc.ServicerContext) -> Resp:
        return method(self, request)

    return map_errors(with_context)


def abort_for(exc: Exception, context: grpc.ServicerContext) -> None:
    """Abort the call with the status that `exc` maps to (`classify`; never returns): a
    retry hint as a RetryInfo detail and a `retry-after` trailer, a passed deadline as a
    bare DEADLINE_EXCEEDED, INTERNAL logged here."""
    if _is_abort(exc):
        raise exc
    if database_unavailable(exc) and not is_domain_error(exc):
        # the per-RPC log line says UNAVAILABLE and why; nothing else is logged per call
        structlog.contextvars.bind_contextvars(error=clip(str(exc).splitlines()[0], 200))
    status, retry_after = classify(exc)
    if status.code == code_pb2.DEADLINE_EXCEEDED and not is_domain_error(exc):
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, status.message)
    if status.code == code_pb2.INTERNAL:
        _log.exception("unhandled error in RPC handler")
    context.abort_with_status(
        with_retry_info(status, retry_after) if retry_after else rpc_status.to_status(status)
    )


def _is_abort(exc: Exception) -> bool:
    """grpc's context.abort raises a bare Exception; let it through untouched."""
    return type(exc) is Exception and not exc.args
