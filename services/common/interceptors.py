"""The outermost server interceptor: one log line per RPC (method, caller, status, time;
a stream's also how many messages it sent and, for a stream whose messages can answer an
item with its error, how many did).

It opens the per-call context (services/common/context.py) that the auth interceptor
fills in, so the line names the verified caller, or "anonymous" when none was bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog

from services.common.context import call_scope, current_caller

_log = structlog.get_logger("rpc")
# health checks and reflection: open to all (auth.py) and logged at debug level here
INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def wrap_handler(handler: Any, unary: Callable[[Any], Any], stream: Callable[[Any], Any]) -> Any:
    """The handler with its behaviour wrapped: `unary` wraps a method that returns one
    response, `stream` one that yields responses (a generator)."""
    if handler.unary_unary:
        return handler._replace(unary_unary=unary(handler.unary_unary))
    if handler.stream_unary:
        return handler._replace(stream_unary=unary(handler.stream_unary))
    if handler.unary_stream:
        return handler._replace(unary_stream=stream(handler.unary_stream))
    return handler._replace(stream_stream=stream(handler.stream_stream))


def _failed(message: Any) -> int | None:
    """1 when a streamed message answers its item with an error, 0 when it does not;
    None for a message that has no `error` field (only EvaluateStream's and
    ReportEventStream's results can carry one), so that the log line of a stream that
    cannot fail an item says nothing of failed items."""
    has_error = _HAS_ERROR.get(type(message))
    if has_error is None:
        fields = getattr(getattr(message, "DESCRIPTOR", None), "fields_by_name", {})
        has_error = _HAS_ERROR[type(message)] = "error" in fields
    return int(message.HasField("error")) if has_error else None


_HAS_ERROR: dict[type, bool] = {}


class HandlerInterceptor(grpc.ServerInterceptor):
    """An interceptor that works on the method handler the server found for a call (an
    unknown method, None, is left to the server)."""

    def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        return None if handler is None else self.intercept(handler, details)

    def intercept(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        raise NotImplementedError


class LoggingInterceptor(HandlerInterceptor):
    def intercept(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        return self.wrap(handler, details.method)

    def wrap(self, handler: Any, method: str) -> Any:
        """`handler` with its one log line (the admission interceptor logs its refusals
        through this too)."""
        level = "debug" if method.startswith(INFRASTRUCTURE_PREFIXES) else "info"
        return wrap_handler(
            handler,
            lambda b: self._unary(b, method, level),
            lambda b: self._stream(b, method, level),
        )

    @staticmethod
    def _done(
        context: grpc.ServicerContext,
        method: str,
        level: str,
        start: float,
        error: BaseException | None,
        **extra: Any,
    ) -> None:
        code = context.code()
        if code is None and isinstance(error, GeneratorExit):
            code = grpc.StatusCode.CANCELLED  # the caller stopped reading a stream
        if code is None:
            code = grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK
        getattr(_log, level)(
            "rpc",
            method=method,
            caller=current_caller(),
            peer=context.peer(),
            status=code.name,
            duration_ms=round((time.perf_counter() - start) * 1000, 2),
            **extra,
        )

    def _unary(self, behaviour: Callable[..., Any], method: str, level: str) -> Callable[..., Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            start, error = time.perf_counter(), None
            with call_scope():
                try:
                    return behaviour(request, context)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._done(context, method, level, start, error)

        return wrapped

    def _stream(self, behaviour: Callable[..., Any], method: str, level: str) -> Callable[..., Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start, error, sent, failed = time.perf_counter(), None, 0, None
            with call_scope():
                try:
                    for item in behaviour(request, context):
                        sent += 1
                        if (one := _failed(item)) is not None:
                            failed = (failed or 0) + one
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    counts = {"messages_sent": sent}
                    if failed is not None:
                        counts["items_failed"] = failed
                    self._done(context, method, level, start, error, **counts)

        return wrapped
