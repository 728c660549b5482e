"""Partial profile updates: UpsertEnterprise's `update_mask` (Google AIP-134 style).

Paths are relative to the profile: a field name of PROFILE_FIELDS, or `facts.<key>` for
one fact (fact keys hold dots themselves; everything after `facts.` is the key), a key
of the fact-key registry: an unknown or misspelt key would otherwise name nothing and
change nothing, and a retired one is refused naming its replacements (a plain rename
is read as its current key, `FactRegistry.renamed`). A named
field the request leaves empty is cleared; a named fact the request does not send is
removed. `*` alone means the whole profile (replacement). Pure: it works on the JSON
shape that `parse_profile` validates.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from services.common.values import preview

from .errors import FieldViolation, ValidationError
from .facts import FactRegistry
from .profile import MAX_HINTS, PROFILE_FIELDS, fact_path, given_twice

KEY = "enterprise_id"  # names the firm: in a mask it changes nothing
RECORDS = ("accidents", "penalties", "hazards")  # only grow: merged, never replaced
FACT = "facts."
MAX_PATHS = 200


def check_paths(
    paths: Sequence[str], facts: FactRegistry, sent_facts: Collection[str] = ()
) -> list[str] | None:
    """The validated paths; None when they mean replacement (none at all, or `*`).
    `facts`: the registry a `facts.<key>` path must name an active key of, except a
    retired key the request does not send (`sent_facts`): that removes it from the
    stored profile, the one way to clear such a key without replacing the profile. A
    plain rename (`facts.renamed`) is returned under its current name. A fact sent, or
    named, under both its former and its current name is refused, naming the former one
    (whatever the mask names: the caller meant one value)."""
    if not paths or list(paths) == ["*"]:
        return None
    if len(paths) > MAX_PATHS:
        raise ValidationError(
            [FieldViolation("update_mask.paths", f"at most {MAX_PATHS} paths, got {len(paths)}")]
        )
    problems = _both_names(paths, facts, sent_facts)
    hints = MAX_HINTS  # the nearest-key hint costs a string comparison with every key
    if "*" in paths:
        problems.append(FieldViolation("update_mask.paths", "'*' must be the only path"))
    for i, path in enumerate(paths):
        if path == "*" or path in PROFILE_FIELDS:
            continue
        key = path.removeprefix(FACT)
        if path.startswith(FACT) and (
            key in facts or key in facts.renamed or (key in facts.retired and key not in sent_facts)
        ):
            continue
        if path.startswith(FACT) and key:
            known = key in facts.retired
            why = _fact_problem(key, facts) if known or hints > 0 else "unknown fact key"
            hints -= 0 if known else 1
            problems.append(FieldViolation(f"update_mask.paths[{i}]", f"{preview(path)}: {why}"))
            continue
        hint = (
            f"paths are relative to the profile: write {preview(path.removeprefix('profile.'))}"
            if path.startswith("profile.")
            else "a field of EnterpriseProfile ("
            + ", ".join(sorted(PROFILE_FIELDS - {KEY}))
            + ") or facts.<key>"
        )
        problems.append(FieldViolation(f"update_mask.paths[{i}]", f"{preview(path)}: {hint}"))
    if problems:
        raise ValidationError(problems)
    renamed = facts.renamed  # a plain rename names its current key
    return [
        FACT + renamed[k] if p.startswith(FACT) and (k := p.removeprefix(FACT)) in renamed else p
        for p in paths
    ]


def _both_names(
    paths: Sequence[str], facts: FactRegistry, sent_facts: Collection[str]
) -> list[FieldViolation]:
    """A violation for each renamed fact the request sends (`profile.facts`) or the mask
    names (`update_mask.paths[i]`) under both its names, at the former name."""
    renamed = facts.renamed
    named = {p.removeprefix(FACT) for p in paths if p.startswith(FACT)}
    sent = set(sent_facts)
    out = [
        FieldViolation("profile." + fact_path(old), given_twice(new))
        for old in sent_facts
        if (new := renamed.get(old)) is not None and new in sent
    ]
    out += [
        FieldViolation(f"update_mask.paths[{i}]", f"names {given_twice(new)}")
        for i, p in enumerate(paths)
        if p.startswith(FACT) and (new := renamed.get(p.removeprefix(FACT))) in named
    ]
    return out


def _fact_problem(key: str, facts: FactRegistry) -> str:
    """Why `facts.<key>` names no fact: retired, or unknown with the nearest keys. A key
    that differs from a registry key only in its underscores is what the proto3 JSON
    mapping makes of a camelCase path (`…Monitored24h` → `…monitored24h`): say how an
    HTTP caller names it instead."""
    squeezed = key.replace("_", "")
    meant = next((k for k in facts if k.replace("_", "") == squeezed), None)
    if meant is None or key in facts.retired:
        return facts.unknown_key_problem(key)
    return (
        f"unknown fact key; did you mean {meant}? Over HTTP/JSON send updateMask as a list "
        f'of paths (["facts.{meant}"]): the camelCase string form cannot spell every key'
    )


def apply_mask(
    stored: Mapping[str, Any],
    sent: Mapping[str, Any],
    paths: Sequence[str],
    renamed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The profile to validate: the stored one with the masked fields taken from `sent`.

    A fact path names its current key (`check_paths`); a value sent under the key's
    former name (`renamed`: former → current) goes in under the name it was sent by, in
    place of the stored one, so `parse_profile` reads it as the current key and names a
    bad value as the caller sent it. The records (accidents, penalties, hazards) start
    empty: the caller merges what this returns into the stored profile, so they only
    grow (events.merge_profile)."""
    out = {k: v for k, v in stored.items() if k not in RECORDS}
    out[KEY] = stored.get(KEY, sent.get(KEY))
    facts = dict(stored.get("facts") or {})
    sent_facts = sent.get("facts") if isinstance(sent.get("facts"), Mapping) else {}
    former = {new: old for old, new in (renamed or {}).items()}
    for path in paths:
        if path == KEY:
            continue
        if path == "facts":
            facts = dict(sent_facts or {})
        elif path.startswith(FACT):
            key = path.removeprefix(FACT)
            facts.pop(key, None)
            if (old := former.get(key)) is not None:
                facts.pop(old, None)
                key = old if old in (sent_facts or {}) else key
            if key in (sent_facts or {}):
                facts[key] = sent_facts[key]  # type: ignore[index]
        else:
            out[path] = sent.get(path)
    out["facts"] = facts
    return out
