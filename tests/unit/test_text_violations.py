"""The malformed-request check's quick look (strings gathered by a walker compiled per
message type, searched joined) finds a control character exactly when the field-by-field
walk does, and then names the same violations: over every message type of both services,
filled at random, with and without control characters, map keys and free-text fields
included."""

from __future__ import annotations

import random
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common import malformed
from services.common._generated.booking.v1 import booking_pb2
from services.common._generated.rules.v1 import rules_pb2
from services.common.errors import FieldViolation
from services.common.workload import profiles
from services.rules.entrypoints import convert

PIECES = ["稠城街道", "abc", "GM2023:11(1)", " ", "　", "é", "\u200b", "👨\u200d👩", "", "x" * 40]
# C0, C1, the line separators, the bidirectional controls and BOM (review 47a F6, 47b N3)
CONTROL = ["\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\x0b", "\x85", "\u2028", "\u202e", "\u2067"]
CONTROL += ["\ufeff", "\u200f"]


def _text(rng: random.Random, dirty: float) -> str:
    parts = [rng.choice(PIECES) for _ in range(rng.randint(0, 3))]
    if rng.random() < dirty:
        parts.insert(rng.randint(0, len(parts)), rng.choice(CONTROL))
    return "".join(parts)


def _fill(message: Message, rng: random.Random, dirty: float, depth: int = 0) -> None:
    """Set some fields of `message` (any type) at random, strings sometimes dirty."""
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        value = getattr(message, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            if depth < 3:
                for _ in range(rng.randint(0, 3)):
                    _map_item(value, entry, rng, dirty, depth)
        elif field.is_repeated:
            _repeated(field, value, rng, dirty, depth)
        elif field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, _text(rng, dirty))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < 3:
            _fill(value, rng, dirty, depth + 1)
            if not value.ListFields() and rng.random() < 0.5:
                value.SetInParent()  # an empty but present sub-message


def _repeated(field: Any, value: Any, rng: random.Random, dirty: float, depth: int) -> None:
    for _ in range(rng.randint(0, 3) if depth < 3 else 0):
        if field.type == FieldDescriptor.TYPE_STRING:
            value.append(_text(rng, dirty))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _fill(value.add(), rng, dirty, depth + 1)


def _map_item(value: Any, entry: Any, rng: random.Random, dirty: float, depth: int) -> None:
    key = (
        _text(rng, dirty) if entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING else 1
    )
    kind = entry.fields_by_name["value"]
    if kind.type == FieldDescriptor.TYPE_MESSAGE:
        _fill(value[key], rng, dirty, depth + 1)
    elif kind.type == FieldDescriptor.TYPE_STRING:
        value[key] = _text(rng, dirty)


def _field_by_field(message: Message) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    malformed._walk(message, "", found)
    return found


def _message_types() -> list[Any]:
    return [
        m
        for module in (rules_pb2, booking_pb2)
        for m in vars(module).values()
        if isinstance(m, type) and issubclass(m, Message)
    ]


def test_random_messages_of_every_type() -> None:
    rng = random.Random(11)
    clean = dirty = 0
    for cls in _message_types():
        for _ in range(25):
            message = cls()
            _fill(message, rng, dirty=rng.choice([0.0, 0.05, 0.3]))
            expected = _field_by_field(message)
            assert malformed.text_violations(message) == expected, (cls.__name__, message)
            clean += not expected
            dirty += bool(expected)
    assert clean > 500 and dirty > 300  # both answers were asked for, often


def test_generated_requests_with_one_control_character_anywhere() -> None:
    """Evaluate and EvaluateBatch requests as a client sends them, each string (facts'
    keys and text values, records' texts) in turn given one control character."""
    rng = random.Random(3)
    for data in profiles(150, seed=9):
        request = rules_pb2.EvaluateRequest(
            profile=convert.profile_from_json(data), as_of="2026-06-30", request_id="r1"
        )
        assert malformed.text_violations(request) == []
        paths = _string_paths(request)
        for setter in rng.sample(paths, min(4, len(paths))):
            dirty = rules_pb2.EvaluateRequest()
            dirty.CopyFrom(request)
            setter(dirty, rng.choice(CONTROL))
            expected = _field_by_field(dirty)
            assert malformed.text_violations(dirty) == expected
            batch = rules_pb2.EvaluateBatchRequest(items=[request, dirty])
            assert malformed.text_violations(batch) == _field_by_field(batch)


def _string_paths(request: rules_pb2.EvaluateRequest) -> list[Any]:
    """Setters that append a character to one string of the request."""
    out: list[Any] = []
    for name in ("request_id", "as_of"):
        out.append(lambda r, c, n=name: setattr(r, n, getattr(r, n) + c))
    for name in ("enterprise_id", "name", "region"):
        out.append(lambda r, c, n=name: setattr(r.profile, n, getattr(r.profile, n) + c))
    for key in request.profile.facts:

        def rename(r: Any, c: str, k: str = key) -> None:
            r.profile.facts[k + c].CopyFrom(r.profile.facts[k])
            del r.profile.facts[k]

        def text_value(r: Any, c: str, k: str = key) -> None:
            r.profile.facts[k].string_value = "是" + c

        out += [rename, text_value]
    out.append(lambda r, c: r.profile.penalties.add(decided_on="2025-01-01", basis="依据" + c))
    out.append(lambda r, c: r.profile.hazards.add(hazard_id="H" + c, clause_ref="GM2023:11(1)"))
    return out


def test_a_check_during_the_first_build_of_a_plan_still_finds_the_character(
    monkeypatch: Any,
) -> None:
    """Plans are published only when whole: a request checked on another thread while the
    first request of its type is still building the plan used to gather no strings."""
    import threading
    import time

    monkeypatch.setattr(malformed, "_PLANS", {})
    original = malformed._getter

    def slow(names: list[str]) -> Any:
        time.sleep(0.2)  # widens the window in which the first plan is being built
        return original(names)

    bad = rules_pb2.EvaluateRequest(
        profile=rules_pb2.EnterpriseProfile(enterprise_id="X", name="bad\x01name")
    )
    found: dict[str, list[Any]] = {}
    monkeypatch.setattr(malformed, "_getter", slow)
    builder = threading.Thread(target=lambda: found.setdefault("A", malformed.text_violations(bad)))
    builder.start()
    time.sleep(0.05)
    monkeypatch.setattr(malformed, "_getter", original)
    found["B"] = malformed.text_violations(bad)
    builder.join()
    assert [v.field for v in found["A"]] == ["profile.name"]
    assert [v.field for v in found["B"]] == ["profile.name"]
