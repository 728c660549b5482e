"""Random and malformed messages at every RPC of both services (hypothesis).

Whatever arrives, the answer is a proper status (never UNKNOWN or INTERNAL), nothing
crashes, and both servers are still healthy afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common._generated.booking.v1 import booking_pb2
from services.common._generated.rules.v1 import rules_pb2
from tests.booking_env import Pair, running_pair
from tests.support import uscc

BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
SHAPES = [
    "2026-06-30",
    "2026-06-03 AM",
    "2026-13-45",
    "GEN:ledger",
    "GM2023:11(3)",
    uscc(1),
    uscc(2),
    "13812345678",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "\x00",
    "📱" * 50,
    "a" * 5000,
]
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"

_text = st.one_of(st.text(max_size=60), st.sampled_from(SHAPES))
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: _text,
    FieldDescriptor.TYPE_BYTES: st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=200).map(lambda b: PNG + b),
        st.binary(max_size=200).map(lambda b: JPEG + b),
    ),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.one_of(st.integers(-3, 30), st.integers(-(2**31), 2**31 - 1)),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_ENUM: st.integers(-2, 20),  # includes numbers no enum defines
}


def _value() -> st.SearchStrategy[struct_pb2.Value]:
    def build(kind_and_raw: tuple[str, Any]) -> struct_pb2.Value:
        kind, raw = kind_and_raw
        value = struct_pb2.Value()
        if kind == "null":
            value.null_value = struct_pb2.NULL_VALUE
        elif kind == "list":
            value.list_value.values.add().string_value = str(raw)
        else:
            setattr(value, kind, raw)
        return value

    return st.one_of(
        st.tuples(st.just("bool_value"), st.booleans()),
        st.tuples(st.just("number_value"), st.floats(allow_nan=False)),
        st.tuples(st.just("string_value"), _text),
        st.tuples(st.just("null"), st.none()),
        st.tuples(st.just("list"), _text),
    ).map(build)


def message(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A random message of `descriptor`: every field optional, nested up to depth 2."""
    if descriptor.full_name == "google.protobuf.Value":
        return _value()
    fields = {
        f.name: strategy for f in descriptor.fields if (strategy := _field(f, depth)) is not None
    }
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(descriptor, values))


def _field(f: Any, depth: int) -> st.SearchStrategy[Any] | None:
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        keys = st.one_of(
            _text,
            st.sampled_from(
                ["gm.special_ops_uncertified", "gen.no_hazard_ledger", "fire.exit_width_ratio"]
            ),
        )
        return st.dictionaries(keys, _value(), max_size=4)
    if f.message_type is not None:
        if depth >= 2:
            return None
        inner = message(f.message_type, depth + 1)
        return st.lists(inner, max_size=3) if _repeated(f) else inner
    scalar = _SCALARS.get(f.type, st.none())
    return st.lists(scalar, max_size=4) if _repeated(f) else scalar


def _build(descriptor: Any, values: dict[str, Any]) -> Any:
    out = GetMessageClass(descriptor)()
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(out, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                target[key].CopyFrom(item)
        elif _repeated(field) and field.message_type is not None:
            for item in value:
                target.add().CopyFrom(item)
        elif _repeated(field):
            target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(out, name, value)
    return out


def _repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _methods(module: Any, service: str) -> list[tuple[str, Any]]:
    described = module.DESCRIPTOR.services_by_name[service]
    return [(m.name, m) for m in described.methods]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with running_pair(Path(tmp_path_factory.mktemp("fuzz"))) as running:
        firm = running.register_firm(1)
        running.expert("E1", ["fire_crowded"], ["稠城街道"])
        running.issue(firm)
        yield running


def _call(channel: grpc.Channel, service: str, method: Any, request: Any) -> list[Any]:
    path = f"/{service}/{method.name}"
    out = GetMessageClass(method.output_type)
    if method.client_streaming:
        call = channel.stream_stream(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=out.FromString,
        )
        return list(call(iter(request), timeout=30))
    if method.server_streaming:
        call = channel.unary_stream(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=out.FromString,
        )
        return list(call(request, timeout=30))
    unary = channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=out.FromString,
    )
    return [unary(request, timeout=30)]


def _check(channel: grpc.Channel, service: str, method: Any, request: Any) -> None:
    try:
        replies = _call(channel, service, method, request)
    except grpc.RpcError as exc:
        assert exc.code() not in BAD, f"{method.name}: {exc.code()} {exc.details()}"
        return
    for reply in replies:  # EvaluateStream carries per-item errors
        error = getattr(reply, "error", None)
        if error is not None and reply.HasField("error"):
            assert error.code not in (2, 13), f"{method.name}: item error {error}"


CASES = [("rules.v1.RulesService", name, m) for name, m in _methods(rules_pb2, "RulesService")] + [
    ("booking.v1.BookingService", name, m) for name, m in _methods(booking_pb2, "BookingService")
]


@pytest.mark.parametrize(("service", "name", "method"), CASES, ids=[c[1] for c in CASES])
def test_random_messages_never_yield_unknown_or_internal(
    pair: Pair, service: str, name: str, method: Any
) -> None:
    port = pair.rules_port if service.startswith("rules") else pair.booking_port
    strategy = message(method.input_type)
    if method.client_streaming:
        strategy = st.lists(strategy, max_size=4)  # type: ignore[assignment]

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=strategy)
    def run(request: Any) -> None:
        _check(channel, service, method, request)

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        run()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(payload=st.binary(max_size=400), index=st.integers(0, len(CASES) - 1))
def test_undecodable_bytes_are_invalid_argument(pair: Pair, payload: bytes, index: int) -> None:
    service, _, method = CASES[index]
    port = pair.rules_port if service.startswith("rules") else pair.booking_port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        path = f"/{service}/{method.name}"
        try:
            if method.client_streaming:
                list(channel.stream_stream(path)(iter([payload]), timeout=30))
            elif method.server_streaming:
                list(channel.unary_stream(path)(payload, timeout=30))
            else:
                channel.unary_unary(path)(payload, timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() not in BAD, f"{method.name}: {exc.code()} {exc.details()}"


def test_servers_are_still_healthy_after_the_fuzzing(pair: Pair) -> None:
    for port in (pair.rules_port, pair.booking_port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
