"""`profile_from_json` builds plain profiles field by field (the batch CLI's hot path):
the message must be exactly what ParseDict builds, and anything unusual goes to ParseDict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.workload import profiles
from services.rules.entrypoints import convert

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "profiles.jsonl"


def _parse_dict(data: Any) -> pb.EnterpriseProfile:
    out = pb.EnterpriseProfile()
    json_format.ParseDict(convert.proto_json(data), out)
    return out


def _examples() -> list[dict[str, Any]]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines() if EXAMPLES.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def test_the_direct_build_is_what_parse_dict_builds() -> None:
    firms = [*profiles(400, seed=5), *_examples()]
    direct = 0
    for firm in firms:
        assert convert.profile_from_json(firm) == _parse_dict(firm)
        direct += convert._direct_profile(convert.proto_json(firm)) is not None
    assert direct >= 300  # most of a register takes the direct path


@pytest.mark.parametrize(
    "change",
    [
        {"employees": 2**31},  # out of int32: ParseDict's error
        {"employees": 3.0},  # a float ParseDict accepts
        {"employees": "12"},
        {"industry": "no_such_industry"},
        {"facts": {"gen.no_hazard_ledger": None}},
        {"facts": {"gen.no_hazard_ledger": [1]}},
        {"facts": {"gen.no_hazard_ledger": float("nan")}},
        {"unknown_field": 1},
        {"venues": ["nope"]},
        {"specialized_sme": 1},
    ],
    ids=str,
)
def test_unusual_shapes_go_to_parse_dict(change: dict[str, Any]) -> None:
    firm = {**next(profiles(1)), **change}
    given = convert.proto_json(firm)
    assert convert._direct_profile(given) is None
    try:
        expected: Any = _parse_dict(firm)
    except (json_format.ParseError, ValueError) as exc:
        expected = type(exc)
    try:
        actual: Any = convert.profile_from_json(firm)
    except (json_format.ParseError, ValueError) as exc:
        actual = type(exc)
    assert actual == expected


def test_every_enum_a_request_carries_is_listed_in_its_proto_names() -> None:
    """Review 72: an error listing an enum's values lists them as a gRPC caller writes
    them; each member of each enum a request carries has its proto name (no short name is
    left in the list because a table entry or a proto value is missing)."""
    for enum, (proto, prefix) in convert._PROTO_ENUMS.items():
        for member in enum:
            spelled = convert.proto_spelling(enum, member.value)
            assert spelled.startswith(prefix) and spelled in proto.DESCRIPTOR.values_by_name, (
                enum,
                member,
            )
