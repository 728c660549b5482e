"""Partial profile updates: UpsertEnterprise's `update_mask` (Google AIP-134 style).

Paths are relative to the profile: a field name of PROFILE_FIELDS, or `facts.<key>` for
one fact (fact keys hold dots themselves; everything after `facts.` is the key). A named
field the request leaves empty is cleared; a named fact the request does not send is
removed. `*` alone means the whole profile (replacement). Pure: it works on the JSON
shape that `parse_profile` validates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import FieldViolation, ValidationError
from .profile import PROFILE_FIELDS

KEY = "enterprise_id"  # names the firm: in a mask it changes nothing
RECORDS = ("accidents", "penalties", "hazards")  # only grow: merged, never replaced
FACT = "facts."
MAX_PATHS = 200


def check_paths(paths: Sequence[str]) -> list[str] | None:
    """The validated paths; None when they mean replacement (none at all, or `*`)."""
    if not paths or list(paths) == ["*"]:
        return None
    if len(paths) > MAX_PATHS:
        raise ValidationError(
            [FieldViolation("update_mask.paths", f"at most {MAX_PATHS} paths, got {len(paths)}")]
        )
    problems = []
    if "*" in paths:
        problems.append(FieldViolation("update_mask.paths", "'*' must be the only path"))
    for i, path in enumerate(paths):
        if path == "*" or path in PROFILE_FIELDS:
            continue
        if path.startswith(FACT) and len(path) > len(FACT):
            continue
        hint = (
            f"paths are relative to the profile: write {path.removeprefix('profile.')[:48]!r}"
            if path.startswith("profile.")
            else "a field of EnterpriseProfile ("
            + ", ".join(sorted(PROFILE_FIELDS - {KEY}))
            + ") or facts.<key>"
        )
        problems.append(FieldViolation(f"update_mask.paths[{i}]", f"{path[:48]!r}: {hint}"))
    if problems:
        raise ValidationError(problems)
    return list(paths)


def apply_mask(
    stored: Mapping[str, Any], sent: Mapping[str, Any], paths: Sequence[str]
) -> dict[str, Any]:
    """The profile to validate: the stored one with the masked fields taken from `sent`.

    The records (accidents, penalties, hazards) start empty: the caller merges what this
    returns into the stored profile, so they only grow (events.merge_profile)."""
    out = {k: v for k, v in stored.items() if k not in RECORDS}
    out[KEY] = stored.get(KEY, sent.get(KEY))
    facts = dict(stored.get("facts") or {})
    sent_facts = sent.get("facts") if isinstance(sent.get("facts"), Mapping) else {}
    for path in paths:
        if path == KEY:
            continue
        if path == "facts":
            facts = dict(sent_facts or {})
        elif path.startswith(FACT):
            key = path.removeprefix(FACT)
            if key in (sent_facts or {}):
                facts[key] = sent_facts[key]  # type: ignore[index]
            else:
                facts.pop(key, None)
        else:
            out[path] = sent.get(path)
    out["facts"] = facts
    return out
