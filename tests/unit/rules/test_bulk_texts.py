"""The batch re-evaluation's cheaper encoders give the texts of the ones they stand for:
the audit hash of `audit.entry_hash`; and the JSON text every engine's JSON columns
store (`db.json_text`, which the batch writer uses too) reads back as the value written,
or is `json.dumps`' own text where orjson refuses the value."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from services.common.audit import GENESIS, entry_hash, plain_entry_hash
from services.common.db import json_text

TRICKY = "".join(chr(i) for i in range(0x30)) + '中文\u2028\u2029\x7f😀"\\/ \ud7ff\ue000'
ENTRIES: list[Any] = [
    {
        "caller": "ops",
        "action": "update",
        "entity": "firm",
        "entity_id": "91330782MA2000001X",
        "before": {"status": "whitelist", "name": TRICKY, "decision_id": None},
        "after": {"status": "blocked", "list": [1, -2, True, False, None, {"b": 1, "a": ""}]},
        "chain": "91330782MA2000001X",
        "at": "2026-07-01T00:00:00.000001+00:00",
    },
    {"z": "", "a": None, "m": {"y": [], "x": {}}, "n": 2**62},
    {},
]


def test_plain_entry_hash_is_entry_hash() -> None:
    for entry in ENTRIES:
        for prev in (GENESIS, "ab" * 32):
            assert plain_entry_hash(prev, entry) == entry_hash(prev, entry)


def test_json_text_reads_back_as_json_dumps_does() -> None:
    for value in [*ENTRIES, None, TRICKY, [TRICKY, {"k": TRICKY}], 7, 0.1, 1e300, 1.5e-7, -0.0]:
        assert json.loads(json_text(value)) == json.loads(json.dumps(value))
        assert entry_hash(GENESIS, json.loads(json_text(value)) or {}) == entry_hash(
            GENESIS, json.loads(json.dumps(value)) or {}
        )


def test_what_orjson_refuses_is_json_dumps_text_or_its_error() -> None:
    for value in [2**64, {1: "a"}, {"k": "\ud800"}]:
        assert json_text(value) == json.dumps(value)

    @dataclass
    class Point:
        x: int

    for refused in [date(2026, 7, 1), Point(1), {"a": [date(2026, 7, 1)]}]:
        with pytest.raises(TypeError):
            json.dumps(refused)
        with pytest.raises(TypeError):
            json_text(refused)
    assert "中文" in json_text(TRICKY)  # UTF-8, not escaped
    assert json_text(math.nan) == "null"  # json.dumps: NaN, which PostgreSQL refuses
