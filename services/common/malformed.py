"""Undecodable request bytes → INVALID_ARGUMENT (gRPC Python would answer INTERNAL).

The interceptor swaps each method's request deserializer for one that returns a marker
instead of raising; the handler wrapper then aborts with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc


class Malformed:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _safe(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # any decoding failure: the caller sent bad bytes
            return Malformed(exc)

    return run


def _abort(context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid message")


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        safe = _safe(handler.request_deserializer)
        if handler.unary_unary or handler.unary_stream:
            kind = "unary_unary" if handler.unary_unary else "unary_stream"
            behaviour = getattr(handler, kind)

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, Malformed):
                    _abort(context)
                return behaviour(request, context)

            return handler._replace(request_deserializer=safe, **{kind: unary})
        kind = "stream_unary" if handler.stream_unary else "stream_stream"
        behaviour = getattr(handler, kind)

        def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for request in requests:
                if isinstance(request, Malformed):
                    _abort(context)
                yield request

        def streaming(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behaviour(checked(requests, context), context)

        return handler._replace(request_deserializer=safe, **{kind: streaming})
