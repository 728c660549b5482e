"""The batch re-evaluation's cheaper encoders give the texts of the ones they stand for:
the audit hash of `audit.entry_hash`, the JSON text of `json.dumps` (Core's JSON columns)."""

from __future__ import annotations

import json
from typing import Any

from services.common.audit import GENESIS, entry_hash, plain_entry_hash
from services.rules.adapters.bulk_reevaluation import _json_text

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


def test_json_text_is_json_dumps() -> None:
    for value in [*ENTRIES, None, TRICKY, [TRICKY, {"k": TRICKY}], 7]:
        assert _json_text(value) == json.dumps(value)
