"""Server interceptors shared by both services: one log line per RPC."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog

_log = structlog.get_logger("rpc")
QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


CURRENT_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="anonymous")


def current_caller() -> str:
    """The verified caller of the RPC being served ("anonymous" until auth binds a name)."""
    return CURRENT_CALLER.get()


def caller_of(context: grpc.ServicerContext) -> str:
    """Who called, for the log line: the bound caller name and the peer address."""
    return f"{current_caller()}@{context.peer()}"


class LoggingInterceptor(grpc.ServerInterceptor):
    """Logs method, caller, status code and duration once per call; health checks at debug."""

    def __init__(self, caller: Callable[[grpc.ServicerContext], str] = caller_of) -> None:
        self._caller = caller

    def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        level = "debug" if method.startswith(QUIET_PREFIXES) else "info"
        if handler.unary_unary:
            return handler._replace(
                unary_unary=self._wrap_unary(handler.unary_unary, method, level)
            )
        if handler.unary_stream:
            return handler._replace(
                unary_stream=self._wrap_stream(handler.unary_stream, method, level)
            )
        if handler.stream_unary:
            return handler._replace(
                stream_unary=self._wrap_unary(handler.stream_unary, method, level)
            )
        if handler.stream_stream:
            return handler._replace(
                stream_stream=self._wrap_stream(handler.stream_stream, method, level)
            )
        return handler

    def _done(
        self,
        context: grpc.ServicerContext,
        method: str,
        level: str,
        start: float,
        error: BaseException | None,
        **extra: Any,
    ) -> None:
        code = context.code() if hasattr(context, "code") else None
        if code is None:
            code = grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK
        getattr(_log, level)(
            "rpc",
            method=method,
            caller=self._caller(context),
            status=code.name,
            duration_ms=round((time.perf_counter() - start) * 1000, 2),
            **extra,
        )

    def _wrap_unary(
        self, behaviour: Callable[..., Any], method: str, level: str
    ) -> Callable[..., Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                return behaviour(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._done(context, method, level, start, error)

        return wrapped

    def _wrap_stream(
        self, behaviour: Callable[..., Any], method: str, level: str
    ) -> Callable[..., Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            error: BaseException | None = None
            sent = 0
            try:
                for item in behaviour(request, context):
                    sent += 1
                    yield item
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._done(context, method, level, start, error, messages_sent=sent)

        return wrapped
