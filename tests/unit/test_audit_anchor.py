"""An anchor file is read whole or refused with AnchorError (the CLI's exit 2), never a
traceback: whatever was written to it (review 22 F3, F5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common import audit_anchor
from services.common.audit_anchor import Anchor, AnchorError

GOOD = Anchor("rules", datetime(2026, 6, 30, tzinfo=UTC), {"": (3, "a" * 64), "X": (7, "b" * 64)})


def _body(**changes: object) -> str:
    body: dict[str, object] = {
        "format": "audit-anchor/1",
        "service": "rules",
        "taken_at": "2026-06-30T00:00:00+00:00",
        "digest": GOOD.digest,
        "heads": [["", 3, "a" * 64], ["X", 7, "b" * 64]],
    }
    body.update(changes)
    return json.dumps(body)


def test_an_anchor_written_reads_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    audit_anchor.write(GOOD, path)
    assert audit_anchor.read(path, "rules", GOOD.digest) == GOOD
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(AnchorError, match="anchors the rules service"):
        audit_anchor.read(path, "booking")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "not json",
        "[]",
        _body(heads=[["X", 1e300, "b" * 64]]).replace("1e+300", "1e400"),
        _body(heads=[["\ud800", 1, "b" * 64]]),
        _body(heads=[["X", 2**70, "b" * 64]]),
        _body(heads=[["X", 0, "b" * 64]]),
        _body(heads=[["X", "7", "b" * 64]]),
        _body(heads=[["X", 7, "not-a-hash"]]),
        _body(heads=[["X", 7]]),
        _body(heads={"X": 7}),
        _body(taken_at="yesterday"),
        _body(digest="0" * 64),
        _body(heads=[["X", 8, "b" * 64]]),  # edited: no longer its digest
        json.dumps({k: v for k, v in json.loads(_body()).items() if k != "digest"}),
    ],
    ids=[
        "deep", "not-json", "list", "inf-id", "surrogate", "huge-id", "zero-id", "text-id",
        "bad-hash", "short-head", "heads-object", "bad-time", "wrong-digest", "edited",
        "no-digest",
    ],
)  # fmt: skip
def test_a_damaged_anchor_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text, errors="surrogatepass")
    with pytest.raises(AnchorError):
        audit_anchor.read(path, "rules")


def test_writing_into_a_folder_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        audit_anchor.write(GOOD, tmp_path)
    assert not list(tmp_path.parent.glob(f"{tmp_path.name}.partial"))
