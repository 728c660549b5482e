"""The fact-key registry (rulesets/facts.yaml): every key a profile or a condition may use.

Each active key has a type, a short label and a plain-language Chinese question that a
firm owner or an expert can answer, so the self-check and the expert's checklist ask
the same thing the rulesets read. A key whose meaning changed or that was split keeps a
*retired* entry: input using it is refused naming its replacements, and a stored value
is migrated where the mapping is unambiguous (the data migrations, with the mapping of
this release frozen in `services.common.standards_renames`). A retired key that is a
plain rename (one replacement, whose value is the old key's, `RetiredFact.renamed_to`)
is accepted on input and read as its replacement (`FactRegistry.renamed`).

The registry is a `Mapping[str, str]` of active key → type, so code that only needs
types (validation, the loader) reads it like a dict.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .profile import FactValue

ANSWER_TYPES = {"bool": "yes_no", "int": "count", "number": "number", "string": "text"}


@dataclass(frozen=True)
class FactDefinition:
    """One active fact key."""

    key: str
    type: str  # bool | int | number | string
    standard: str
    label: str
    question: str
    unit: str = ""

    @property
    def answer_type(self) -> str:
        """yes_no, count (a whole number with its unit), number (e.g. a ratio) or text."""
        return ANSWER_TYPES[self.type]


@dataclass(frozen=True)
class RetiredFact:
    """A key no longer accepted on input, with its replacements and how old values map.

    `when_true` / `when_false` (bool keys) and `when_value` (numbers) give the new facts a
    stored old value stands for, or None when the old value does not say (ambiguous).
    """

    key: str
    replaced_by: tuple[str, ...]
    reason: str
    when_true: Mapping[str, FactValue] | None = None
    when_false: Mapping[str, FactValue] | None = None

    @property
    def renamed_to(self) -> str | None:
        """The one key this one was renamed to, when the old value is the new key's value
        whatever it is (true → true, false → false); None for a key that was split or
        whose old value does not say."""
        if len(self.replaced_by) != 1:
            return None
        new = self.replaced_by[0]
        same = self.when_true == {new: True} and self.when_false == {new: False}
        return new if same else None


@dataclass(frozen=True)
class FactRegistry(Mapping[str, str]):
    """Active keys (→ type) plus the retired ones."""

    definitions: Mapping[str, FactDefinition]
    retired: Mapping[str, RetiredFact] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.definitions[key].type

    def __iter__(self) -> Iterator[str]:
        return iter(self.definitions)

    def __len__(self) -> int:
        return len(self.definitions)

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping.get without its exception round trip (asked for every fact of every
        profile)."""
        found = self.definitions.get(key)
        return default if found is None else found.type

    @cached_property
    def renamed(self) -> Mapping[str, str]:
        """Retired key → its current name, for the plain renames: accepted on input."""
        return {k: new for k, r in self.retired.items() if (new := r.renamed_to) is not None}

    def definition(self, key: str) -> FactDefinition | None:
        return self.definitions.get(key)

    def closest(self, key: str, n: int = 3) -> list[str]:
        """The known keys nearest to a mistyped one, best first."""
        return difflib.get_close_matches(key, list(self.definitions), n=n, cutoff=0.6)

    def unknown_key_problem(self, key: str) -> str:
        """Why `key` is refused: retired (naming its replacements) or unknown (with a hint)."""
        old = self.retired.get(key)
        if old is not None:
            return (
                f"retired fact key; use {', '.join(old.replaced_by)} instead ({old.reason})"
                if old.replaced_by
                else f"retired fact key ({old.reason})"
            )
        hint = self.closest(key)
        suffix = f"; did you mean {', '.join(hint)}?" if hint else ""
        return f"unknown fact key (see the fact-key registry, rulesets/facts.yaml){suffix}"
