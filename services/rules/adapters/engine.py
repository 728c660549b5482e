"""The durable_rules adapter: the ONLY module that imports durable_rules.

durable_rules 2.0.28 is unmaintained and keeps process-global C state, so this module
contains everything we know about it (docs/engine.md):

* one ruleset group per standard edition, each ruleset of at most `MAX_COMPARISONS`
  comparisons (a fact matching 65+ conditions fails with error 303, so a profile that
  breaches every clause of a large standard must meet several small rulesets);
* each profile is asserted as a *fact*, so every matching clause fires (`post` fires
  one), then always retracted, so nothing is left between evaluations;
* "nothing matched" raises MessageNotHandledException: an ordinary empty result;
* the Host's two 0.2 s timer threads are switched off (they gave wrong results);
* its C JSON reader refuses exponents (error 204), which Python's json writes for a
  float below 1e-4 or from 1e16 on: every fact goes in as our own JSON text, such a
  number written out in full (`fact_json`), which it reads and compares exactly;
* the C core never releases the GIL and is not thread-safe: one process-wide lock
  around assert/collect/retract (more throughput = more processes, not threads);
* rulesets cannot be replaced under one name and leak when versioned, so compiled
  engines are cached per catalogue version for the life of the process; reloading
  rules means starting a new process.

What a ruleset answers depends only on the values of the facts it reads, and most firms
of a register answer alike; so each ruleset's answer is remembered per those values
(with their types: `True` and `1` are different answers), up to `REMEMBERED` answers
(then forgotten all at once). `remember=0` asks durable_rules every time (the benchmarks
measure the engine itself that way).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from durable import engine as _dr

from services.rules.domain.profile import FactValue
from services.rules.domain.standards import AllOf, AnyOf, Catalogue, Clause, Comparison, Condition

_LOCK = threading.Lock()  # guards the C core: every call into durable_rules holds it
_ENGINES: dict[str, DurableRulesEngine] = {}
_NAMES = itertools.count(1)
_OPS = {"eq": None, "ne": "$neq", "gt": "$gt", "ge": "$gte", "lt": "$lt", "le": "$lte"}
_SID = "0"
MAX_COMPARISONS = 40  # per compiled ruleset; durable_rules fails at 65 conditions matched
REMEMBERED = 50_000  # answers kept per engine (a few MB)


class EngineError(RuntimeError):
    """durable_rules misbehaved (an observed duplicate fact, a failed action)."""


class _QuietHost(_dr.Host):
    """A Host without the background timer threads, resolving actions by name."""

    def __init__(self, actions: Mapping[str, Callable[[Any], None]]) -> None:
        self._actions = dict(actions)
        super().__init__()

    def _run(self) -> None:
        """Do not start the dispatch/timer threads: actions run inside assert_fact."""

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        return self._actions[action_name]

    def assert_text(self, ruleset_name: str, fact: dict[str, Any], text: str) -> Any:
        """`assert_fact` of `fact` given as its JSON `text` (`fact_json`), its actions run
        as `assert_fact` runs them."""
        return self._send(_dr.durable_rules_engine.assert_fact, ruleset_name, fact, text)

    def retract_text(self, ruleset_name: str, fact: dict[str, Any], text: str) -> Any:
        """`retract_fact` of `fact` given as its JSON `text`."""
        return self._send(_dr.durable_rules_engine.retract_fact, ruleset_name, fact, text)

    def _send(
        self, send: Callable[[Any, str], Any], ruleset_name: str, fact: dict[str, Any], text: str
    ) -> Any:
        """What the Host's own assert/retract do, with our text where they json.dumps."""
        rules = self.get_ruleset(ruleset_name)
        return self._handle_function(
            rules, lambda f: rules._handle_result(send(rules._handle, text), f), fact, None
        )


def exponent_free(value: float) -> bool:
    """Whether Python's json writes this float without an exponent (durable_rules' reader
    refuses one: the ruleset loader's thresholds are checked by this too)."""
    return value == 0 or 1e-4 <= abs(value) < 1e16


def fact_json(fact: Mapping[str, Any]) -> str:
    """The fact as JSON durable_rules can read: json.dumps's text (as durable_rules
    itself writes it), each float json would write with an exponent (1e-05, 1e+16)
    written out in full instead (0.00001, 10000000000000000): the same number, which the
    C core then reads and compares exactly. json.dumps writes the common fact; the
    rare one with such a float is written here, key by key."""
    if all(type(v) is not float or exponent_free(v) for v in fact.values()):
        return json.dumps(fact, ensure_ascii=False)
    pairs = (
        f"{json.dumps(k)}: {_number(v) if type(v) is float else json.dumps(v, ensure_ascii=False)}"
        for k, v in fact.items()
    )
    return "{" + ", ".join(pairs) + "}"


def _number(value: float) -> str:
    """A float as JSON without an exponent: its shortest repr, written out in full."""
    return repr(value) if exponent_free(value) else format(Decimal(repr(value)), "f")


def engine_for(catalogue: Catalogue) -> DurableRulesEngine:
    """The compiled engine for this catalogue version, compiled once per process."""
    with _LOCK:
        found = _ENGINES.get(catalogue.version)
        if found is None:
            found = DurableRulesEngine(catalogue)
            _ENGINES[catalogue.version] = found
        return found


class DurableRulesEngine:
    """Matches fact maps against the catalogue's clauses, compiled into durable_rules."""

    def __init__(self, catalogue: Catalogue, remember: int = REMEMBERED) -> None:
        self._remember = remember
        self._answers: dict[tuple[object, ...], tuple[str, ...]] = {}
        self._sink: list[str] = []
        self._ids = itertools.count()
        keys = sorted(
            {k for s in catalogue.standards for c in s.clauses for k in c.condition.fact_keys()}
        )
        self._slots = {key: f"f{i}" for i, key in enumerate(keys)}  # dots mean nesting there
        self._rulesets: dict[str, tuple[str, ...]] = {}  # edition key → ruleset names
        self._used: set[str] = set()  # rulesets with a state (get_facts fails with 309 before)
        self._keys: dict[str, frozenset[str]] = {}  # ruleset name → the fact keys it reads
        self._order: dict[str, tuple[str, ...]] = {}  # the same keys, sorted
        definitions: dict[str, Any] = {}
        actions: dict[str, Callable[[Any], None]] = {}
        for standard in catalogue.standards:
            names = []
            for shard in _shards(standard.clauses):
                name = f"{standard.id.lower()}_{next(_NAMES)}"
                rules = {}
                for i, clause in enumerate(shard):
                    action = f"{name}_r{i}"
                    actions[action] = self._collector(clause.ref)
                    rules[f"r{i}"] = {
                        "all": [{"m": self._compile(clause.condition)}],
                        "run": action,
                    }
                definitions[name] = rules
                self._keys[name] = frozenset(k for c in shard for k in c.condition.fact_keys())
                self._order[name] = tuple(sorted(self._keys[name]))
                names.append(name)
            self._rulesets[standard.key] = tuple(names)
        self._host = _QuietHost(actions)
        self._host.set_rulesets(definitions)

    def _collector(self, ref: str) -> Callable[[Any], None]:
        """An action with exactly one parameter: two would make durable_rules run it async."""
        sink = self._sink

        def collect(_closure: Any) -> None:
            sink.append(ref)

        return collect

    def _compile(self, condition: Condition) -> dict[str, Any]:
        if isinstance(condition, AllOf):
            return {"$and": [self._compile(p) for p in condition.parts]}
        if isinstance(condition, AnyOf):
            return {"$or": [self._compile(p) for p in condition.parts]}
        assert isinstance(condition, Comparison)
        slot, op = self._slots[condition.fact], _OPS[condition.op]
        return {slot: condition.value} if op is None else {op: {slot: condition.value}}

    def match(self, facts: Mapping[str, FactValue], editions: Iterable[str]) -> frozenset[str]:
        """Every clause ref whose condition the facts satisfy, over the given editions
        (`Standard.key`).

        A ruleset none of whose fact keys is present is skipped: an absent fact never
        matches, so asking the engine could only return nothing.
        """
        hits: set[str] = set()
        present = frozenset(facts)
        with _LOCK:
            for edition in editions:
                for name in self._rulesets[edition]:
                    wanted = self._keys[name] & present
                    if wanted:
                        hits.update(self._answer(name, wanted, facts))
        return frozenset(hits)

    def _answer(
        self, name: str, wanted: frozenset[str], facts: Mapping[str, FactValue]
    ) -> tuple[str, ...]:
        """The ruleset's matching refs for these facts: remembered, or asked of durable_rules."""
        key = None
        if self._remember:
            key = (name, *((k, type(facts[k]), facts[k]) for k in self._order[name] if k in wanted))
            found = self._answers.get(key)
            if found is not None:
                return found
        fact: dict[str, Any] = {self._slots[k]: facts[k] for k in wanted}
        fact["sid"], fact["id"] = _SID, f"p{next(self._ids)}"
        answer = tuple(self._run(name, fact))
        if key is not None:
            if len(self._answers) >= self._remember:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def _run(self, ruleset: str, fact: dict[str, Any]) -> list[str]:
        self._sink.clear()
        self._used.add(ruleset)
        text = fact_json(fact)
        try:
            self._host.assert_text(ruleset, fact, text)
            return list(self._sink)
        except _dr.MessageNotHandledException:
            return []  # nothing matched: an ordinary result
        except _dr.MessageObservedException as exc:
            raise EngineError(f"durable_rules saw a duplicate fact in {ruleset}") from exc
        finally:
            self._retract(ruleset, fact, text)

    def _retract(self, ruleset: str, fact: dict[str, Any], text: str) -> None:
        with contextlib.suppress(_dr.MessageNotHandledException):  # it was never stored
            self._host.retract_text(ruleset, fact, text)

    def stored_facts(self) -> int:
        """How many facts the engine holds now (always 0 between evaluations)."""
        with _LOCK:
            return sum(len(self._host.get_facts(name, _SID)) for name in sorted(self._used))


def _comparisons(condition: Condition) -> int:
    if isinstance(condition, AllOf | AnyOf):
        return sum(_comparisons(p) for p in condition.parts)
    return 1


def _shards(clauses: Iterable[Clause]) -> list[list[Clause]]:
    """Consecutive groups of clauses with at most MAX_COMPARISONS comparisons each."""
    shards: list[list[Clause]] = [[]]
    size = 0
    for clause in clauses:
        cost = _comparisons(clause.condition)
        if shards[-1] and size + cost > MAX_COMPARISONS:
            shards.append([])
            size = 0
        shards[-1].append(clause)
        size += cost
    return [s for s in shards if s]
