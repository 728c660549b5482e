"""The peers of the engine (issue 15, point 7): the loaded clauses compiled to plain Python
predicates (the floor) and to zen-engine decision tables (a bench-only dependency), each
matching fact maps exactly as `DurableRulesEngine.match` does.

All three are given the same applicability filter: a profile is matched only against the
editions of the clauses that apply to it (`Applicability`), one rule group per edition,
and a group none of whose fact keys the profile answers is skipped (an absent fact never
matches). `match` returns the refs of the clauses whose conditions hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import zen

from services.rules.domain.profile import FactValue
from services.rules.domain.standards import AllOf, AnyOf, Catalogue, Comparison, Condition

_PY_OPS = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_ORDERING = frozenset({"gt", "ge", "lt", "le"})


def _slots(catalogue: Catalogue) -> dict[str, str]:
    keys = sorted(
        {k for s in catalogue.standards for c in s.clauses for k in c.condition.fact_keys()}
    )
    return {key: f"f{i}" for i, key in enumerate(keys)}


class PythonMatcher:
    """Each clause compiled to one Python function over the fact map (`Comparison.holds`
    spelled out: an absent fact never matches, a yes/no fact is never ordered)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._groups: dict[str, tuple[frozenset[str], list[tuple[str, Any]]]] = {}
        for standard in catalogue.standards:
            rules = []
            keys: set[str] = set()
            for clause in standard.clauses:
                source = f"lambda f: {self._expr(clause.condition)}"
                rules.append((clause.ref, eval(source, {"_bool": bool})))
                keys.update(clause.condition.fact_keys())
            self._groups[standard.key] = (frozenset(keys), rules)

    def _expr(self, condition: Condition) -> str:
        if isinstance(condition, AllOf):
            return "(" + " and ".join(self._expr(p) for p in condition.parts) + ")"
        if isinstance(condition, AnyOf):
            return "(" + " or ".join(self._expr(p) for p in condition.parts) + ")"
        assert isinstance(condition, Comparison)
        key, value = repr(condition.fact), repr(condition.value)
        test = f"f[{key}] {_PY_OPS[condition.op]} {value}"
        if condition.op in _ORDERING:
            test = f"(f[{key}].__class__ is not _bool and {test})"
        return f"({key} in f and {test})"

    def match(self, facts: Mapping[str, FactValue], editions: Iterable[str]) -> frozenset[str]:
        hits: set[str] = set()
        for edition in editions:
            keys, rules = self._groups[edition]
            if keys.isdisjoint(facts):
                continue
            hits.update(ref for ref, holds in rules if holds(facts))
        return frozenset(hits)


class ZenMatcher:
    """One zen-engine decision table per edition (hit policy `collect`, one row per
    clause whose only cell is the clause's condition as a zen expression)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._slots = _slots(catalogue)
        engine = zen.ZenEngine()
        self._groups: dict[str, tuple[list[tuple[str, str]], Any]] = {}
        for standard in catalogue.standards:
            rows = [
                {"_id": f"r{i}", "c": self._expr(c.condition), "o": json.dumps(c.ref)}
                for i, c in enumerate(standard.clauses)
            ]
            keys = sorted({k for c in standard.clauses for k in c.condition.fact_keys()})
            decision = engine.create_decision(json.dumps(_graph(rows)))
            self._groups[standard.key] = ([(k, self._slots[k]) for k in keys], decision)

    def _expr(self, condition: Condition) -> str:
        if isinstance(condition, AllOf):
            return "(" + " and ".join(self._expr(p) for p in condition.parts) + ")"
        if isinstance(condition, AnyOf):
            return "(" + " or ".join(self._expr(p) for p in condition.parts) + ")"
        assert isinstance(condition, Comparison)
        slot, value = self._slots[condition.fact], json.dumps(condition.value)
        test = f"{slot} {_PY_OPS[condition.op]} {value}"
        if condition.op in _ORDERING:
            return f"({slot} != null and {slot} != true and {slot} != false and {test})"
        return f"({slot} != null and {test})"

    def match(self, facts: Mapping[str, FactValue], editions: Iterable[str]) -> frozenset[str]:
        hits: set[str] = set()
        for edition in editions:
            keys, decision = self._groups[edition]
            given = {slot: facts[k] for k, slot in keys if k in facts}
            if given:
                hits.update(row["ref"] for row in decision.evaluate(given)["result"])
        return frozenset(hits)


def _graph(rows: Sequence[dict[str, str]]) -> dict[str, Any]:
    table = {
        "hitPolicy": "collect",
        "inputs": [{"id": "c", "name": "condition"}],
        "outputs": [{"id": "o", "name": "ref", "field": "ref"}],
        "rules": list(rows),
    }
    return {
        "contentType": "application/vnd.gorules.decision",
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "facts", "position": {"x": 0, "y": 0}},
            {
                "id": "table",
                "type": "decisionTableNode",
                "name": "clauses",
                "position": {"x": 300, "y": 0},
                "content": table,
            },
            {"id": "out", "type": "outputNode", "name": "refs", "position": {"x": 600, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "in", "targetId": "table"},
            {"id": "e2", "sourceId": "table", "targetId": "out"},
        ],
    }
