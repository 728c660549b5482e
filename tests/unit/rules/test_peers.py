"""The benchmark's peers (bench/peers.py) find what durable_rules finds, profile by profile
(the engine comparison in docs/benchmarks.md compares equal work), and the engine's
remembered answers are what durable_rules answers when asked."""

from __future__ import annotations

import random
from datetime import date

from bench.peers import PythonMatcher, ZenMatcher
from services.common.workload import profiles
from services.rules.adapters.engine import DurableRulesEngine
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.profile import parse_profile
from services.rules.entrypoints import grpc_server

AS_OF = date(2026, 6, 30)


def _random_facts(rng: random.Random, types: dict[str, str]) -> dict[str, object]:
    """Any answer of the right type to about half of the facts the clauses read."""
    values = {
        "bool": lambda: rng.random() < 0.5,
        "int": lambda: rng.randint(0, 4),
        "number": lambda: round(rng.uniform(0, 2), 2),
        "string": lambda: rng.choice(["", "a", "b"]),
    }
    return {k: values[t]() for k, t in types.items() if t in values and rng.random() < 0.5}


def test_plain_python_and_zen_engine_match_what_durable_rules_matches(rulebook: Rulebook) -> None:
    ctx = grpc_server.context_from(rulebook)
    python, zen = PythonMatcher(rulebook.catalogue), ZenMatcher(rulebook.catalogue)
    asked = DurableRulesEngine(rulebook.catalogue, remember=0)  # durable_rules every time
    read = {
        k for s in rulebook.catalogue.standards for c in s.clauses for k in c.condition.fact_keys()
    }
    types = {k: t for k, t in dict(rulebook.fact_types).items() if k in read}
    rng = random.Random(15)
    firms = list(profiles(300, seed=15))
    for firm in firms[:150]:  # the register's mix, then any answers to any fact read
        firm["facts"] = _random_facts(rng, types)
    matched = 0
    for data in firms:
        profile = parse_profile(data, rulebook.fact_types)
        editions = ctx.applicability.of(profile, AS_OF).editions
        found = asked.match(profile.facts, editions)
        assert ctx.engine.match(profile.facts, editions) == found  # remembered answers too
        assert ctx.engine.match(profile.facts, editions) == found
        assert python.match(profile.facts, editions) == found, data["enterprise_id"]
        assert zen.match(profile.facts, editions) == found, data["enterprise_id"]
        matched += bool(found)
    assert matched >= 30  # the comparison is not of empty answers only


def test_remembered_answers_are_bounded_and_tell_true_from_one(rulebook: Rulebook) -> None:
    engine = DurableRulesEngine(rulebook.catalogue, remember=5)
    key = next(k for k, t in dict(rulebook.fact_types).items() if t == "int")
    editions = [s.key for s in rulebook.catalogue.standards]
    for n in range(40):
        engine.match({key: n}, editions)
        assert len(engine._answers) <= 5
    assert engine.stored_facts() == 0
    one = engine.match({key: 1}, editions)  # remembered first: True must not reuse it
    yes = engine.match({key: True}, editions)
    assert one == DurableRulesEngine(rulebook.catalogue, remember=0).match({key: 1}, editions)
    assert yes == DurableRulesEngine(rulebook.catalogue, remember=0).match({key: True}, editions)
