"""Requests that are not text a person could have typed → INVALID_ARGUMENT, before any
handler runs: undecodable bytes (gRPC Python would answer INTERNAL), and control
characters in any string field (`values.control_problem`: C0, C1, the bidirectional
controls; free-text fields may break lines).

The interceptor swaps each method's request deserializer for one that returns a marker
instead of raising; the handler wrapper then aborts with INVALID_ARGUMENT. The HTTP/JSON
gateway (http_gateway.py) makes the same check, `refuse_control_characters`, on the
message it parsed. Two kinds of method check each item's text themselves, with
`text_violations`, and answer that item alone: a streamed one (its requests are checked
for bytes only here; EvaluateStream goes on) and a unary one named in `items_checked`
(EvaluateBatch: one bad item must not cost the batch's other decisions).
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator, Set
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import FieldViolation, ValidationError
from services.common.grpc_errors import abort_for
from services.common.interceptors import HandlerInterceptor
from services.common.values import MULTILINE_FIELDS, control_problem, preview

MAX_VIOLATIONS = 20


class Malformed:
    def __init__(self, error: Exception) -> None:
        self.error = error


class Oversized:
    """A request past its method's limit (`MalformedRequestInterceptor.max_request`),
    never decoded: its bytes are let go at once."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit


def text_violations(message: Message) -> list[FieldViolation]:
    """One violation per string field (at any depth, map keys included) that holds a
    control character; at most MAX_VIOLATIONS.

    Almost every request is clean: its strings are first gathered by a walker compiled
    once per message type (`_Plan`) and searched in two joined runs (a control character
    is in the joined text exactly when it is in one of the strings); only a request that
    holds one is walked field by field to name each violation."""
    strict: list[str] = []
    multiline: list[str] = []
    _plan(message.DESCRIPTOR).gather(message, strict, multiline)
    if control_problem("".join(strict)) is None and (
        not multiline or control_problem("".join(multiline), multiline=True) is None
    ):
        return []
    found: list[FieldViolation] = []
    _walk(message, "", found)
    return found


def refuse_control_characters(message: Message, method: str, items_checked: Set[str]) -> None:
    """Raise ValidationError naming each string field of a unary request that holds a
    control character, unless `method` (a full path, /pkg.Service/Method) is one of
    `items_checked`, whose handler checks each item itself. The gRPC interceptor and the
    HTTP/JSON gateway both call this, so both transports refuse alike."""
    if method not in items_checked and (bad := text_violations(message)):
        raise ValidationError(bad)


# what a field holds, for the compiled walker
_TEXT, _TEXTS, _MESSAGE, _MESSAGES, _MAP = range(5)


class _Plan:
    """The string-holding fields of one message type, read by name (no per-call look-up
    of descriptors or options): its singular text fields read at once (`strict`,
    `multiline`: attrgetters), then the other steps (kind, field name, free text, inner)."""

    def __init__(self) -> None:
        self.strict: Callable[[Any], Any] | None = None
        self.multiline: Callable[[Any], Any] | None = None
        self.steps: list[tuple[int, str, bool, Any]] = []

    def gather(self, message: Any, strict: list[str], multiline: list[str]) -> None:
        if self.strict is not None:
            strict.extend(self.strict(message))
        if self.multiline is not None:
            multiline.extend(self.multiline(message))
        for kind, name, free_text, inner in self.steps:
            if kind == _TEXTS:
                (multiline if free_text else strict).extend(getattr(message, name))
            elif kind == _MESSAGE:
                if message.HasField(name):
                    inner.gather(getattr(message, name), strict, multiline)
            elif kind == _MESSAGES:
                for item in getattr(message, name):
                    inner.gather(item, strict, multiline)
            else:
                _gather_map(getattr(message, name), inner, strict, multiline)


def _gather_map(entries: Any, inner: Any, strict: list[str], multiline: list[str]) -> None:
    """A map's strings: keys are never free text; values by the value field's kind."""
    key_text, value_kind, value_free, value_plan = inner
    keys = list(entries)  # (.keys()/.values() of a proto map are slower, pure-Python views)
    if key_text:
        strict.extend(keys)
    if value_kind == _TEXT:
        (multiline if value_free else strict).extend([entries[k] for k in keys])
    elif value_kind == _MESSAGE:
        for key in keys:
            value_plan.gather(entries[key], strict, multiline)


def _getter(names: list[str]) -> Callable[[Any], Any] | None:
    """An attrgetter that always returns a tuple (None for no names)."""
    if not names:
        return None
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda message: (one(message),)
    return operator.attrgetter(*names)


class _ValuePlan(_Plan):
    """google.protobuf.Value (a fact's value): one oneof, read by its case."""

    def gather(self, message: Any, strict: list[str], multiline: list[str]) -> None:
        kind = message.WhichOneof("kind")
        if kind == "string_value":
            strict.append(message.string_value)
        elif kind == "struct_value" or kind == "list_value":
            super().gather(message, strict, multiline)


_PLANS: dict[str, _Plan] = {}  # only whole plans: a check on another thread uses them
_BUILDING = threading.Lock()


def _plan(descriptor: Any) -> _Plan:
    """The compiled walker of a message type, built on first use. Plans are built aside
    (recursive types, such as google.protobuf.Value, refer to their own plan while it is
    being built) and published only when whole, so a concurrent first request of the
    same type never meets a half-built plan that would gather no strings."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    with _BUILDING:
        building: dict[str, _Plan] = {}
        plan = _build(descriptor, building)
        _PLANS.update(building)
    return plan


def _build(descriptor: Any, building: dict[str, _Plan]) -> _Plan:
    """The plan of one type, its parts built into `building` first."""
    plan = _PLANS.get(descriptor.full_name) or building.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = building[descriptor.full_name] = (
        _ValuePlan() if descriptor.full_name == "google.protobuf.Value" else _Plan()
    )
    strict: list[str] = []
    multiline: list[str] = []
    for field in descriptor.fields:
        free = field.name in MULTILINE_FIELDS
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            key = message_type.fields_by_name["key"]
            value = message_type.fields_by_name["value"]
            value_kind, value_plan = -1, None
            if value.type == FieldDescriptor.TYPE_STRING:
                value_kind = _TEXT
            elif value.type == FieldDescriptor.TYPE_MESSAGE:
                value_kind, value_plan = _MESSAGE, _build(value.message_type, building)
            inner = (
                key.type == FieldDescriptor.TYPE_STRING,
                value_kind,
                "value" in MULTILINE_FIELDS,
                value_plan,
            )
            plan.steps.append((_MAP, field.name, False, inner))
        elif field.type == FieldDescriptor.TYPE_STRING:
            if _repeated(field):
                plan.steps.append((_TEXTS, field.name, free, None))
            else:
                (multiline if free else strict).append(field.name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            kind = _MESSAGES if _repeated(field) else _MESSAGE
            plan.steps.append((kind, field.name, free, _build(message_type, building)))
    plan.strict, plan.multiline = _getter(strict), _getter(multiline)
    return plan


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


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


def _safe(
    deserialize: Callable[[bytes], Any] | None, limit: int | None = None
) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def run(data: bytes) -> Any:
        if limit is not None and len(data) > limit:
            return Oversized(len(data), limit)
        try:
            return deserialize(data)
        except Exception as exc:  # any decoding failure: the caller sent bad bytes
            return Malformed(exc)

    return run


def _abort(context: grpc.ServicerContext, position: int = 0) -> None:
    """INVALID_ARGUMENT for bytes that do not decode; in a stream, which message (from
    1): those before it were answered, so the sender knows where to look and resume."""
    where = f"message {position} of the stream" if position else "the request"
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{where} is not a valid message")


def _refuse_oversized(request: Any, context: grpc.ServicerContext, large: Set[str]) -> None:
    """RESOURCE_EXHAUSTED, as gRPC's own limit words it, for a request past its method's."""
    if isinstance(request, Oversized):
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"Received message larger than max for this method ({request.size} vs. "
            f"{request.limit}); only {', '.join(sorted(large))} take(s) more",
        )


class MalformedRequestInterceptor(HandlerInterceptor):
    """`items_checked`: the unary methods (full paths) whose handler checks the text of
    each item of its request itself (`refuse_control_characters`). `max_request`: the
    largest request of every method but those of `large` (which take what the server's
    message limit lets in), refused RESOURCE_EXHAUSTED before it is decoded (review 73:
    booking's limit is 104 MB for RecordVisit, gRPC's limit being the server's)."""

    def __init__(
        self,
        items_checked: Set[str] = frozenset(),
        max_request: int | None = None,
        large: Set[str] = frozenset(),
    ) -> None:
        self.items_checked = frozenset(items_checked)
        self.max_request = max_request
        self.large = frozenset(large)

    def intercept(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        limit = None if details.method in self.large else self.max_request
        large = self.large
        safe = _safe(handler.request_deserializer, limit)
        if handler.unary_unary or handler.unary_stream:
            kind = "unary_unary" if handler.unary_unary else "unary_stream"
            behaviour = getattr(handler, kind)
            method, items_checked = details.method, self.items_checked

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                _refuse_oversized(request, context, large)
                if isinstance(request, Malformed):
                    _abort(context)
                if isinstance(request, Message):
                    try:
                        refuse_control_characters(request, method, items_checked)
                    except ValidationError as exc:
                        abort_for(exc, context)
                return behaviour(request, context)

            return handler._replace(request_deserializer=safe, **{kind: unary})
        kind = "stream_unary" if handler.stream_unary else "stream_stream"
        behaviour = getattr(handler, kind)

        def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for position, request in enumerate(requests, 1):
                _refuse_oversized(request, context, large)
                if isinstance(request, Malformed):
                    _abort(context, position)
                yield request

        def streaming(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behaviour(checked(requests, context), context)

        return handler._replace(request_deserializer=safe, **{kind: streaming})
