"""HTTP/JSON for the unary RPCs of a gRPC service, in the same process: one scheme,

    POST /v1/<prefix>/<Method>   body: the request message in the proto3 JSON mapping
    200                          body: the response message in the proto3 JSON mapping
    4xx/5xx                      body: a google.rpc.Status in the proto3 JSON mapping

calling the same servicer methods as the gRPC port, admitted by the same authenticator
(`authorization: Bearer <token>`, the same scopes and the same per-caller rate limit),
refusing what the gRPC port's interceptor refuses (control characters in a text field:
INVALID_ARGUMENT naming it, malformed.py), with gRPC status codes mapped to HTTP status
here, in one place (HTTP_STATUS). A body protobuf cannot read is INVALID_ARGUMENT with a
google.rpc.BadRequest naming the field (or `body`), quoting at most a short prefix of
the bad value (values.preview); a body past MAX_BODY_BYTES is the same status, naming
`body`, answered 413 (the one answer whose HTTP status is not HTTP_STATUS's).
Streaming RPCs are not served: they need gRPC.

A google.protobuf.FieldMask field of the request (UpsertEnterprise's `updateMask`) takes
the proto3 JSON string ("employees,facts.gen.trainingMissing": lowerCamelCase, no "_")
or a JSON list of paths written as over gRPC (["employees", "facts.gen.training_missing"]):
the string form cannot spell every path, and a string with "_" is refused with a pointer
to the list form (a fact key such as
metallurgy.co_alarm_not_monitored_24h has no camelCase form that maps back to it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import structlog
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2  # noqa: F401  (Any types for details)
from grpc_status import rpc_status
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from services.common.auth import AuthInterceptor
from services.common.context import Principal, bind, call_scope, current_caller
from services.common.errors import FieldViolation, ValidationError
from services.common.grpc_errors import retry_later, status_proto
from services.common.malformed import refuse_control_characters
from services.common.values import PREVIEW_CHARS, preview

MAX_BODY_BYTES = 8 * 1024 * 1024  # as the gRPC port's message limit
_FIELD_MASK = "google.protobuf.FieldMask"
_log = structlog.get_logger("http")

# gRPC status code → HTTP status, as Google's APIs map them (google.rpc.Code).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def route_prefix(service: ServiceDescriptor) -> str:
    """rules.v1.RulesService → /v1/rules/ (the package's version, then its name)."""
    name, version = service.file.package.split(".")
    return f"/{version}/{name}/"


def unary_methods(service: ServiceDescriptor) -> list[MethodDescriptor]:
    """The methods served over HTTP/JSON: every one that streams neither way."""
    return [m for m in service.methods if not (m.client_streaming or m.server_streaming)]


class Aborted(Exception):
    """What `context.abort*` raises here: the call's final status."""

    def __init__(self, status: status_pb2.Status, trailers: Sequence[tuple[str, Any]] = ()):
        super().__init__(status.message)
        self.status = status
        self.trailers = list(trailers)


class GatewayContext:
    """The part of grpc.ServicerContext the servicers and grpc_errors use."""

    def __init__(self, peer: str, metadata: Sequence[tuple[str, str]]) -> None:
        self._peer = peer
        self._metadata = tuple(metadata)
        self._code: grpc.StatusCode | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        raise Aborted(status_pb2.Status(code=code.value[0], message=details))

    def abort_with_status(self, status: grpc.Status) -> None:
        self._code = status.code
        trailers = list(status.trailing_metadata or ())
        found = status_pb2.Status(code=status.code.value[0], message=status.details or "")
        for key, value in trailers:
            if key == rpc_status.GRPC_DETAILS_METADATA_KEY:
                found = status_pb2.Status.FromString(value)
        raise Aborted(found, [(k, v) for k, v in trailers if not k.endswith("-bin")])

    def is_active(self) -> bool:
        return True

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        pass

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        pass

    def code(self) -> grpc.StatusCode | None:
        return self._code


@dataclass(frozen=True)
class Gateway:
    """The routes of one service: the servicer, its descriptor and the authenticator.
    Each request is checked for control characters as the gRPC port checks it
    (malformed.py), but for the methods of `items_checked`, whose servicer checks each
    item and answers a bad one alone."""

    servicer: Any
    service: ServiceDescriptor
    auth: AuthInterceptor | None
    items_checked: frozenset[str] = frozenset()

    def routes(self) -> list[Route]:
        prefix = route_prefix(self.service)
        return [
            Route(prefix + m.name, self._endpoint(m), methods=["POST"], name=m.name)
            for m in unary_methods(self.service)
        ]

    def _endpoint(self, method: MethodDescriptor) -> Callable[[Request], Any]:
        path = f"/{self.service.full_name}/{method.name}"
        request_class = message_factory.GetMessageClass(method.input_type)
        behaviour = getattr(self.servicer, method.name)

        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            body = await _body(request)
            kind = request.headers.get("content-type", "")
            peer = _peer(request)
            sent = request.headers.getlist("authorization")  # each one: two are refused
            response = await run_in_threadpool(
                self._call,
                path,
                method,
                request_class,
                behaviour,
                (body, kind),
                peer,
                sent,
                start,
            )
            return response

        return endpoint

    def _call(
        self,
        path: str,
        method: MethodDescriptor,
        request_class: type[Message],
        behaviour: Callable[[Message, GatewayContext], Message],
        sent: tuple[bytes | None, str],
        peer: str,
        authorization: Sequence[str],
        start: float,
    ) -> Response:
        context = GatewayContext(peer, [("authorization", v) for v in authorization])
        with call_scope():
            try:
                self._admit(path, authorization, peer)
                message = _parse(*sent, request_class)
                refuse_control_characters(message, path, self.items_checked)
                answer = behaviour(message, context)
                response: Response = JSONResponse(_to_json(answer))
                code = grpc.StatusCode.OK
            except Aborted as exc:
                response, code = _error(exc.status, exc.trailers)
            except ValidationError as exc:  # the body, before any servicer ran
                too_large = isinstance(exc, BodyTooLarge)
                response, code = _error(status_proto(exc), [], 413 if too_large else None)
            except Exception:  # the servicer's own mapping missed it: never a traceback
                _log.exception("unhandled error in HTTP gateway", method=path)
                status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
                response, code = _error(status, [])
            _log.info(
                "rpc",
                transport="http",
                method=path,
                caller=current_caller(),
                peer=peer,
                status=code.name,
                http_status=response.status_code,
                duration_ms=round((time.perf_counter() - start) * 1000, 2),
            )
            return response

    def _admit(self, path: str, authorization: Sequence[str], peer: str) -> None:
        if self.auth is None:
            return
        verdict = self.auth.admit(path, authorization)
        if isinstance(verdict, Principal):
            bind(verdict)
            wait = self.auth.admit_host(verdict, peer)
            if wait:
                _raise(retry_later(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded", wait))
            return
        code, message, retry_after, *who = verdict
        if who:
            bind(who[0])  # the log line names who was refused
        if retry_after:
            _raise(retry_later(code, message, retry_after))
        raise Aborted(status_pb2.Status(code=code.value[0], message=message))


def _raise(status: grpc.Status) -> None:
    GatewayContext("", ()).abort_with_status(status)


async def _body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY_BYTES."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _peer(request: Request) -> str:
    host = request.client.host if request.client else "unknown"
    return f"ipv6:[{host}]" if ":" in host else f"ipv4:{host}"


def _parse(body: bytes | None, content_type: str, request_class: type[Message]) -> Message:
    """The request message from its proto3 JSON mapping (an empty body: all defaults), or
    ValidationError naming what is wrong: the field where one can be named
    (`profile.employees`, `items[2].as_of`), else `body`. A body must come as
    `application/json` (UTF-8, the only charset JSON has; labelled us-ascii, it must hold
    ASCII only), and an object may not name a key twice (review 47b F2: text/plain, no
    type at all, and a key sent twice, the last one winning, were all taken)."""
    name = request_class.DESCRIPTOR.full_name
    if body is None:
        limit = f"larger than {MAX_BODY_BYTES // (1024 * 1024)} MB ({MAX_BODY_BYTES} bytes)"
        raise BodyTooLarge([FieldViolation("body", limit)])
    message = request_class()
    if not body or not body.strip():
        return message
    charset = _json_charset(content_type)
    if charset is None:
        _refuse(
            "content-type",
            f"must be application/json (UTF-8), not {_quoted(content_type or 'none')}",
        )
    if charset == "us-ascii" and (other := _NOT_ASCII.search(body)):
        _refuse(
            "content-type",
            f"says charset=us-ascii, but the body holds byte 0x{other.group()[0]:02X} at "
            f"{other.start()}, which is not ASCII: send UTF-8 as charset=utf-8",
        )
    try:
        data = json.loads(body, object_pairs_hook=_once_each)
    except _DuplicateKey as exc:
        _refuse("body", f"names the key {_quoted(str(exc))} twice")
    except RecursionError:  # thousands of nested arrays: Python's JSON reader gives up
        _refuse("body", f"nested too deeply: send a {name} in the proto3 JSON mapping")
    except ValueError:  # UnicodeDecodeError included
        _refuse("body", f"not JSON: send a {name} in the proto3 JSON mapping")
    if not isinstance(data, dict):
        _refuse("body", f"must be a JSON object: a {name} in the proto3 JSON mapping")
    if twice := _named_twice(data, request_class.DESCRIPTOR, ""):
        raise ValidationError([twice])
    data, masks = _mask_lists(data, request_class)
    try:
        json_format.ParseDict(data, message)
    except _PARSE_ERRORS:
        # protobuf's own text quotes the bad value at length and names no field
        found = _blame(data, request_class.DESCRIPTOR, "")
        raise ValidationError(
            [found or FieldViolation("body", f"not a {name} in the proto3 JSON mapping")]
        ) from None
    for field, paths in masks.items():
        getattr(message, field).paths.extend(paths)
    return message


class _DuplicateKey(ValueError):
    """A JSON object naming one key twice (the key is the message)."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: the object, unless it names a key twice."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return data


def _named_twice(data: dict[str, Any], descriptor: Any, prefix: str) -> FieldViolation | None:
    """A field `data` (the JSON object of a `descriptor` message at `prefix`) sends under
    both its JSON and its proto name (`asOf` and `as_of`), at any depth of messages and
    lists of them: protobuf takes both and keeps the last (review 48 F2). Maps and the
    well-known types (Struct, Value, …) hold no such names."""
    for field in descriptor.fields:
        if field.json_name != field.name and field.json_name in data and field.name in data:
            return FieldViolation(
                prefix + field.name, f"sent twice, as {field.json_name} and as {field.name}"
            )
        entry = field.message_type
        if entry is None or entry.GetOptions().map_entry:
            continue
        if entry.full_name.startswith("google.protobuf."):
            continue
        value = data.get(field.json_name, data.get(field.name))
        items = value if field.is_repeated and isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, dict):
                at = (
                    f"{prefix}{field.name}[{i}]." if field.is_repeated else f"{prefix}{field.name}."
                )
                if found := _named_twice(item, entry, at):
                    return found
    return None


_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "us-ascii", "ascii": "us-ascii"}
_NOT_ASCII = re.compile(rb"[\x80-\xff]")


def _json_charset(content_type: str) -> str | None:
    """The charset of a Content-Type header that says JSON: "utf-8" (named so, or none
    named) or "us-ascii" (a part of UTF-8 some older HTTP stacks name: the body must
    then hold ASCII only); None for another type or charset."""
    media, _, parameters = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return None
    charset = "utf-8"
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            found = _CHARSETS.get(value.strip().strip('"').lower())
            if found is None:
                return None
            charset = found
    return charset


def _mask_lists(
    data: dict[str, Any], request_class: type[Message]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The body without its FieldMask fields sent as a JSON list of paths, and those
    paths by field name, taken as written (the gRPC spelling; the service checks them)."""
    lists: dict[str, list[str]] = {}
    for field in request_class.DESCRIPTOR.fields:
        if field.message_type is None or field.message_type.full_name != _FIELD_MASK:
            continue
        for key in dict.fromkeys((field.json_name, field.name)):
            value = data.get(key)
            if isinstance(value, str) and "_" in value:
                _refuse(field.name, _SNAKE_MASK.format(preview(value)))
            if not isinstance(value, list):
                continue
            if not all(isinstance(path, str) for path in value):
                _refuse(field.name, "a list of paths holds strings only")
            lists[field.name] = value
            data = {k: v for k, v in data.items() if k != key}
    return data, lists


_PARSE_ERRORS = (json_format.ParseError, ValueError, TypeError, RecursionError)
_SNAKE_MASK = (
    "{}: the string form takes lowerCamelCase paths, without '_'; to write paths as over "
    'gRPC, send a JSON list of paths (["facts.gen.training_missing"])'
)


class BodyTooLarge(ValidationError):
    """A body past MAX_BODY_BYTES: INVALID_ARGUMENT naming `body`, answered 413."""


def _refuse(field: str, description: str) -> NoReturn:
    raise ValidationError([FieldViolation(field, description)])


def _parses(message_class: type[Message], data: dict[str, Any]) -> bool:
    try:
        json_format.ParseDict(data, message_class())
    except _PARSE_ERRORS:
        return False
    return True


def _blame(data: dict[str, Any], descriptor: Any, prefix: str) -> FieldViolation | None:
    """The first field of `data` (the JSON object of a `descriptor` message at `prefix`)
    that protobuf refuses, parsed alone, named by its path in the request as gRPC's errors
    name it, its value quoted by `preview`; None when every field parses alone (two
    fields of one oneof, say). Runs only for a body protobuf refused."""
    message_class = message_factory.GetMessageClass(descriptor)
    by_json_name = {f.json_name: f for f in descriptor.fields}
    for key, value in data.items():
        field = by_json_name.get(key) or descriptor.fields_by_name.get(key)
        if field is None:
            shown = key if key.isidentifier() and len(key) <= PREVIEW_CHARS else preview(key)
            return FieldViolation(prefix + shown, f"no such field in {descriptor.full_name}")
        if not _parses(message_class, {key: value}):
            path = prefix + field.name
            return _blame_inside(message_class, field, key, value, path) or FieldViolation(
                path, _wrong(field, value)
            )
    return None


def _blame_inside(
    message_class: type[Message], field: FieldDescriptor, key: str, value: Any, path: str
) -> FieldViolation | None:
    """The bad part of a refused map, list or message field, or None when it is the
    field's value as a whole that is wrong."""
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        if not isinstance(value, dict):
            return None
        value_field = entry.fields_by_name["value"]
        for name, item in value.items():
            if not _parses(message_class, {key: {name: item}}):
                return _blame_one(value_field, item, f"{path}[{preview(name)}]")
        return None
    if field.is_repeated:
        if not isinstance(value, list):
            return None
        for index, item in enumerate(value):
            if not _parses(message_class, {key: [item]}):
                return _blame_one(field, item, f"{path}[{index}]")
        return None
    if _plain_message(field) and isinstance(value, dict):
        return _blame(value, field.message_type, path + ".")
    return None


def _blame_one(field: FieldDescriptor, value: Any, path: str) -> FieldViolation:
    """One refused value of a map or list at `path`."""
    if _plain_message(field) and isinstance(value, dict):
        found = _blame(value, field.message_type, path + ".")
        if found is not None:
            return found
    return FieldViolation(path, _wrong(field, value, one=True))


def _plain_message(field: FieldDescriptor) -> bool:
    """A field of one of the services' own message types (the well-known types have
    JSON forms of their own: a FieldMask is a string, a Value any JSON)."""
    kind = field.message_type
    return kind is not None and not kind.full_name.startswith("google.protobuf.")


_SCALARS = {
    FieldDescriptor.TYPE_BOOL: "true or false",
    FieldDescriptor.TYPE_STRING: "a string",
    FieldDescriptor.TYPE_BYTES: "bytes in base64",
    FieldDescriptor.TYPE_DOUBLE: "a number",
    FieldDescriptor.TYPE_FLOAT: "a number",
    FieldDescriptor.TYPE_INT32: "a whole number from -2147483648 to 2147483647",
    FieldDescriptor.TYPE_SINT32: "a whole number from -2147483648 to 2147483647",
    FieldDescriptor.TYPE_UINT32: "a whole number from 0 to 4294967295",
}


def _quoted(value: Any) -> str:
    """A JSON value as an error quotes it: a string by `preview`, anything else as JSON
    text (`5`, `null`, `["x"]`), by `preview` too when longer than it shows."""
    if isinstance(value, str):
        return preview(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # nested deeper than the writer goes
        text = "[" if isinstance(value, list) else "{"
    return text if len(text) <= PREVIEW_CHARS else preview(text)


def _wrong(field: FieldDescriptor, value: Any, *, one: bool = False) -> str:
    """Why protobuf refused `value` for `field` (`one`: an item of it), quoting at most
    a short prefix of the value."""
    shown = _quoted(value)
    kind = field.message_type
    if not one and kind is not None and kind.GetOptions().map_entry:
        return f"{shown} is not a JSON object"
    if not one and field.is_repeated:
        return f"{shown} is not a JSON array"
    if kind is not None:
        if _plain_message(field) and isinstance(value, dict):
            return f"not a {kind.full_name} in the proto3 JSON mapping"
        if _plain_message(field):
            return f"{shown} is not a JSON object"
        return f"{shown} is not a {kind.full_name} in the proto3 JSON mapping"
    if field.enum_type is not None:
        return f"{shown} is not a value of {field.enum_type.full_name}"
    return f"{shown} is not {_SCALARS.get(field.type, 'a whole number')}"


def _to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping, with every field present (false, 0 and "" included), so a
    client never has to know proto3's defaults."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _error(
    status: status_pb2.Status, trailers: Sequence[tuple[str, Any]], http_status: int | None = None
) -> tuple[Response, grpc.StatusCode]:
    """The Status body, with HTTP_STATUS's status for its code unless `http_status`."""
    code = _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    response = JSONResponse(
        json_format.MessageToDict(status), status_code=http_status or HTTP_STATUS[code]
    )
    for key, value in trailers:
        if key == "retry-after":
            response.headers["Retry-After"] = str(value)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="rules"'
    return response, code


def not_found_status(path: str) -> dict[str, Any]:
    return json_format.MessageToDict(
        status_pb2.Status(
            code=code_pb2.NOT_FOUND,
            message=f"no route {path[:64]!r}: POST /v1/<service>/<Method>, see /v1/openapi.json",
        )
    )


def create_app(gateways: Sequence[Gateway], extra: Sequence[Route] = ()) -> Starlette:
    """A Starlette app serving every gateway's routes plus `extra` (health, the OpenAPI
    document); unknown paths and methods answer a google.rpc.Status too."""
    routes = [r for g in gateways for r in g.routes()] + list(extra)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(not_found_status(request.url.path), status_code=404)

    async def wrong_method(request: Request, exc: Exception) -> Response:
        body = json_format.MessageToDict(
            status_pb2.Status(
                code=code_pb2.UNIMPLEMENTED,
                message=f"{request.method[:8]} is not served here: every RPC is POST",
            )
        )
        return JSONResponse(body, status_code=405, headers={"Allow": "POST"})

    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: wrong_method},
        middleware=[Middleware(NoStore)],
    )


class NoStore:
    """Every answer `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`
    (review 64 F5): answers carry the register's firms, contact mobiles and inspection
    verdicts, which no proxy or browser cache in between may keep, and JSON is never to
    be sniffed as a page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-store"
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, with_headers)
