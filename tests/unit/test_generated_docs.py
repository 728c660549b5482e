"""The repository documents itself (issue 14.9): docs/api.md and docs/openapi.json are what
scripts/gen_docs.py makes of the protos, every field, RPC and enum value of both protos
has a comment, and nothing points outside the repository."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType

from tests.support import ROOT


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def test_the_checked_in_api_reference_and_openapi_document_are_up_to_date(
    tmp_path: Path,
) -> None:
    for path in GEN.generate(tmp_path):
        checked_in = ROOT / "docs" / path.name
        assert checked_in.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"docs/{path.name} is out of date: run `make docs` and commit it"
        )


def test_every_rpc_field_and_enum_value_has_a_comment() -> None:
    missing = []
    for file in GEN.descriptor_set().file:
        if file.name not in GEN.PROTOS:
            continue
        notes = GEN.Comments.of(file)
        for s, service in enumerate(file.service):
            missing += [m.name for i, m in enumerate(service.method) if not notes.get(6, s, 2, i)]
        for m, message in enumerate(file.message_type):
            missing += [
                f"{message.name}.{f.name}"
                for i, f in enumerate(message.field)
                if not notes.get(4, m, 2, i)
            ]
        for e, enum in enumerate(file.enum_type):
            missing += [v.name for i, v in enumerate(enum.value) if not notes.get(5, e, 2, i)]
    assert missing == [], f"document these in the .proto files: {missing}"


OUTSIDE = re.compile(r"\.\./shared|shared/spec")
TEXT = {".py", ".proto", ".md", ".yaml", ".toml", ".html", ".json", ".jsonl", ".txt", ""}


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if (
            rel.parts[0].startswith(".")
            or "_generated" in rel.parts
            or rel.parts[0]
            in (
                "var",
                "anquan_services.egg-info",
            )
        ):
            continue
        if (
            not path.is_file()
            or path.suffix not in TEXT
            or rel.parts[:2] == ("rulesets", "sources")
        ):
            continue
        if path == Path(__file__):  # the pattern itself
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [
            f"{rel}:{n}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)
        ]
    assert found == [], f"references to ../shared/spec (not in the repository): {found}"


def test_no_trailing_comment_runs_on_to_the_next_line() -> None:
    """Review 72: protoc gives a comment line under a field's trailing comment to the NEXT
    field (as its leading comment), so docs/api.md showed Decision.error's second half
    as the meaning of decision_id. A field's comment of several lines goes above it."""
    found = []
    for proto in sorted((ROOT / "proto").rglob("*.proto")):
        lines = proto.read_text(encoding="utf-8").splitlines()
        for number, (line, after) in enumerate(itertools.pairwise(lines), start=2):
            code, _, _ = line.partition("//")
            column = line.find("//")
            continued = after.find("//") == column and not after[:column].strip()
            if code.strip() and column >= 0 and continued:
                found.append(f"{proto.relative_to(ROOT)}:{number}: {after.strip()}")
    assert found == [], "move these comments above their field:\n" + "\n".join(found)
