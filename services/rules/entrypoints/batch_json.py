"""The batch client's two conversions, built for speed (`evaluate FILE --server`).

- `request_fields`: a profile of a JSONL file (the short form: snake_case names, short
  enum names such as `machinery`) → the keyword arguments of `pb.EnterpriseProfile`, with
  enum numbers looked up in tables, so that protobuf's C code builds the whole batch in
  one call. Only exact, plain shapes are taken (text, whole numbers in range, yes/no,
  known short enum names, finite fact values, records of those); for anything else it
  returns None and the caller goes through `convert.profile_from_json`, which accepts the
  proto3 JSON mapping too and words the errors. Same message either way (tested).
- `decision_dict` / `decision_line`: a Decision → what `json_format.MessageToDict(d,
  preserving_proto_field_name=True)` gives (same keys in the same order, enum value
  names, defaults omitted), read field by field instead of through the descriptors, and
  printed by orjson as one compact JSONL line. A Decision carrying an `error` (rare) goes
  through MessageToDict itself, as does a fact value that is not a plain yes/no, finite
  number or text. A test checks both agree on many generated decisions and that the
  field lists here are the messages' whole field lists.
- `DecisionLines`: decision_line, remembering each decision's printed line apart from
  the firm's id (most firms of a register share their decision's content), bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format

from services.common._generated.rules.v1 import rules_pb2 as pb

# ------------------------------------------------------------------ profiles → requests


def _short_names(enum: Any, prefix: str, *, lower: bool = True) -> dict[str, int]:
    """{"machinery": INDUSTRY_MACHINERY's number, …}: the spellings a file holds; the
    UNSPECIFIED value is left out (it goes the slow way, as any other spelling)."""
    out = {}
    for name, number in enum.items():
        if number:
            short = name.removeprefix(prefix)
            out[short.lower() if lower else short] = number
    return out


_TEXT = "text"
_INT32 = "int32"
_BOOL = "bool"
_DOUBLE = "double"
_Kind = str | dict[str, int]  # a plain kind, or the short-name table of an enum

_PROFILE: dict[str, _Kind] = {
    "enterprise_id": _TEXT,
    "name": _TEXT,
    "region": _TEXT,
    "employees": _INT32,
    "standardization_grade": _INT32,
    "merchant_score": _INT32,
    "specialized_sme": _BOOL,
    "blacklisted": _BOOL,
    "industry": _short_names(pb.Industry, "INDUSTRY_"),
    "credit_rating": _short_names(pb.CreditRating, "CREDIT_RATING_", lower=False),
}
_ENUM_LISTS: dict[str, dict[str, int]] = {
    "high_risk_domains": _short_names(pb.HighRiskDomain, "HIGH_RISK_DOMAIN_"),
    "venues": _short_names(pb.Venue, "VENUE_"),
    "hazchem_roles": _short_names(pb.HazchemRole, "HAZCHEM_ROLE_"),
}
_RECORDS: dict[str, dict[str, _Kind]] = {
    "accidents": {
        "occurred_on": _TEXT,
        "level": _short_names(pb.AccidentLevel, "ACCIDENT_LEVEL_"),
        "deaths": _INT32,
    },
    "penalties": {"decided_on": _TEXT, "amount_yuan": _DOUBLE, "basis": _TEXT},
    "hazards": {
        "hazard_id": _TEXT,
        "clause_ref": _TEXT,
        "severity": _short_names(pb.Severity, "SEVERITY_"),
        "found_on": _TEXT,
        "due_on": _TEXT,
        "status": _short_names(pb.HazardStatus, "HAZARD_STATUS_"),
        "closed_on": _TEXT,
        "closed_late": _BOOL,
    },
}
_INT32_RANGE = range(-(2**31), 2**31)
_EXACT_DOUBLE = 2**53
_YES = {"bool_value": True}
_NO = {"bool_value": False}
_SLOW = object()  # a value request_fields does not take


def _number(value: Any) -> bool:
    """A JSON number a double holds exactly (as ParseDict would take it)."""
    t = type(value)
    return (t is int and -_EXACT_DOUBLE < value < _EXACT_DOUBLE) or (
        t is float and math.isfinite(value)
    )


def _plain(kind: _Kind, value: Any) -> Any:
    """`value` as protobuf's constructor takes it for a field of `kind`, or _SLOW."""
    t = type(value)
    if kind is _TEXT:
        return value if t is str else _SLOW
    if kind is _INT32:
        return value if t is int and value in _INT32_RANGE else _SLOW
    if kind is _BOOL:
        return value if t is bool else _SLOW
    if kind is _DOUBLE:
        return value if _number(value) else _SLOW
    assert isinstance(kind, dict)
    return kind.get(value, _SLOW) if t is str else _SLOW


def _record(fields: dict[str, _Kind], record: Any) -> dict[str, Any] | None:
    if type(record) is not dict:
        return None
    out = {}
    for key, value in record.items():
        kind = fields.get(key)
        if kind is None:
            return None
        plain = _plain(kind, value)
        if plain is _SLOW:
            return None
        out[key] = plain
    return out


def _facts(facts: Any) -> dict[str, Any] | None:
    if type(facts) is not dict:
        return None
    out: dict[str, Any] = {}
    for key, value in facts.items():
        t = type(value)
        if type(key) is not str:
            return None
        if t is bool:
            out[key] = _YES if value else _NO
        elif t is str:
            out[key] = {"string_value": value}
        elif _number(value):
            out[key] = {"number_value": value}
        else:
            return None
    return out


def _list(key: str, value: Any) -> list[Any] | None:
    """A list of enum short names → numbers, or of records → their arguments."""
    if type(value) is not list:
        return None
    if key in _ENUM_LISTS:
        table = _ENUM_LISTS[key]
        numbers = [table.get(v) if type(v) is str else None for v in value]
        return None if None in numbers else numbers
    fields = _RECORDS[key]
    records = [_record(fields, r) for r in value]
    return None if None in records else records


def request_fields(data: Any) -> dict[str, Any] | None:
    """The EnterpriseProfile's constructor arguments for a plain short-form profile, or
    None (then `convert.profile_from_json` builds it, or says what is wrong)."""
    if type(data) is not dict:
        return None
    out: dict[str, Any] = {}
    for key, value in data.items():
        kind = _PROFILE.get(key)
        if kind is not None:
            plain: Any = _plain(kind, value)
            if plain is _SLOW:
                return None
        elif key == "facts":
            plain = _facts(value)
        elif key in _ENUM_LISTS or key in _RECORDS:
            plain = _list(key, value)
        else:
            return None
        if plain is None:
            return None
        out[key] = plain
    return out


# ------------------------------------------------------------------ decisions → JSON


def _names(enum: Any) -> dict[int, str]:
    return {number: name for name, number in enum.items()}


def _enum(names: dict[int, str]) -> Callable[[int], Any]:
    return lambda number: names.get(number, number)  # an unknown number stays a number


def _fact_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "string_value":
        return value.string_value
    if kind == "number_value" and math.isfinite(value.number_value):
        return value.number_value
    return json_format.MessageToDict(value)  # null, a list, a struct, or its error


def _facts_dict(facts: Any) -> dict[str, Any]:
    return {key: _fact_value(facts[key]) for key in facts}


def _fields(message: Any, fields: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The message's fields that are not their default, each converted by its function
    (None: as it is: text, a number, true)."""
    out = {}
    for name, how in fields:
        value = getattr(message, name)
        if value:
            out[name] = value if how is None else how(value)
    return out


# (field, how it is printed), in field-number order (MessageToDict's order); a test checks
# these are the messages' whole field lists, so a field added to the proto is not lost
BLOCKER_FIELDS: tuple[tuple[str, Any], ...] = (
    ("code", None), ("reason", None), ("arose_on", None), ("ends_on", None),
)  # fmt: skip
FINDING_FIELDS: tuple[tuple[str, Any], ...] = (
    ("standard_id", None), ("clause", None), ("severity", _enum(_names(pb.Severity))),
    ("text", None), ("guidance", None), ("fact_keys", list), ("matched_facts", _facts_dict),
    ("clause_ref", None), ("hazard_id", None), ("services", list), ("verified", None),
    ("edition", None), ("superseded", None), ("successor", None),
)  # fmt: skip
DECISION_FIELDS: tuple[tuple[str, Any], ...] = (
    ("enterprise_id", None), ("status", _enum(_names(pb.Status))),
    ("risk_level", _enum(_names(pb.RiskLevel))),
    ("findings", lambda fs: [_fields(f, FINDING_FIELDS) for f in fs]),
    ("whitelist_blockers", lambda bs: [_fields(b, BLOCKER_FIELDS) for b in bs]),
    ("inspection_cap_per_year", None), ("recommended_services", list),
    ("ruleset_version", None), ("as_of", None), ("valid_until", None),
    ("risk_reasons", list), ("inspection_due_on", None), ("request_id", None),
    ("error", None),  # never read here: a decision with an error goes to MessageToDict
    ("decision_id", None),
)  # fmt: skip
_DECISION_READ = tuple(f for f in DECISION_FIELDS if f[0] != "error")


def decision_dict(d: pb.Decision) -> dict[str, Any]:
    """What MessageToDict(d, preserving_proto_field_name=True) gives, field by field."""
    if d.HasField("error"):
        return json_format.MessageToDict(d, preserving_proto_field_name=True)
    return _fields(d, _DECISION_READ)


def decision_line(d: pb.Decision, item: int | None = None) -> bytes:
    """One JSONL line (UTF-8, compact); a rejected item's starts with its line number."""
    data = decision_dict(d)
    if item is not None:
        data = {"item": item, **data}
    return orjson.dumps(data) + b"\n"


class DecisionLines:
    """`decision_line`, remembering the printed rest of each decision apart from its
    enterprise_id: firms of a register share most decisions (the same status, colour,
    blockers and findings), so most lines are the firm's id plus a line printed before.
    The key is the decision serialised without its id (protobuf bytes determine the
    message), so a remembered line is exactly the one `decision_line` prints; at most
    `limit` are held (then forgotten all at once), so memory stays bounded."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.known: dict[bytes, bytes] = {}  # the rest of the line after the id, or b""
        self.hits = 0

    def line(self, d: pb.Decision, item: int | None = None) -> bytes:
        if item is not None or d.HasField("error"):
            return decision_line(d, item)
        eid = d.enterprise_id
        d.enterprise_id = ""
        try:
            key = d.SerializeToString()
            rest = self.known.get(key)
            if rest is None:
                rest = self._rest(d, key)
            else:
                self.hits += 1
        finally:
            d.enterprise_id = eid
        if not eid:
            return b"{" + rest[1:] if rest else b"{}\n"
        return b'{"enterprise_id":' + orjson.dumps(eid) + (rest or b"}\n")

    def _rest(self, d: pb.Decision, key: bytes) -> bytes:
        """`,"status":…}\n` for a decision without an id, b"" when it has no other field."""
        printed = orjson.dumps(decision_dict(d))
        rest = b"," + printed[1:] + b"\n" if printed != b"{}" else b""
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known[key] = rest
        return rest
