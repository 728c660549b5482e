"""Requests that are not text a person could have typed → INVALID_ARGUMENT, before any
handler runs: undecodable bytes (gRPC Python would answer INTERNAL), and control
characters in any string field (U+0000–U+001F, U+007F; free-text fields may break lines).

The interceptor swaps each method's request deserializer for one that returns a marker
instead of raising; the handler wrapper then aborts with INVALID_ARGUMENT. A streamed
request is checked for bytes only: its handler checks each message's text with
`text_violations` and answers that message alone (EvaluateStream goes on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import FieldViolation, ValidationError
from services.common.grpc_errors import abort_for
from services.common.interceptors import HandlerInterceptor
from services.common.values import control_problem, preview

# free text a person writes in a text area: line breaks allowed there, nowhere else
MULTILINE_FIELDS = frozenset({"note", "description", "reason", "grounds", "basis", "text"})
MAX_VIOLATIONS = 20


class Malformed:
    def __init__(self, error: Exception) -> None:
        self.error = error


def text_violations(message: Message) -> list[FieldViolation]:
    """One violation per string field (at any depth, map keys included) that holds a
    control character; at most MAX_VIOLATIONS."""
    found: list[FieldViolation] = []
    _walk(message, "", found)
    return found


def _walk(message: Message, prefix: str, found: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        if len(found) >= MAX_VIOLATIONS:
            return
        path = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                where = f"{path}[{preview(key)}]"
                _check(key, where, False, found)
                _one(value_field, item, where, found)
        elif field.is_repeated:
            for i, item in enumerate(value):
                _one(field, item, f"{path}[{i}]", found)
        else:
            _one(field, value, path, found)


def _one(field: FieldDescriptor, value: Any, path: str, found: list[FieldViolation]) -> None:
    if field.type == FieldDescriptor.TYPE_STRING:
        _check(value, path, field.name in MULTILINE_FIELDS, found)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        _walk(value, path + ".", found)


def _check(value: Any, path: str, multiline: bool, found: list[FieldViolation]) -> None:
    if isinstance(value, str) and (problem := control_problem(value, multiline=multiline)):
        found.append(FieldViolation(path.removesuffix(".string_value"), problem))


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


class MalformedRequestInterceptor(HandlerInterceptor):
    def intercept(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        safe = _safe(handler.request_deserializer)
        if handler.unary_unary or handler.unary_stream:
            kind = "unary_unary" if handler.unary_unary else "unary_stream"
            behaviour = getattr(handler, kind)

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, Malformed):
                    _abort(context)
                if isinstance(request, Message) and (bad := text_violations(request)):
                    abort_for(ValidationError(bad), context)
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
