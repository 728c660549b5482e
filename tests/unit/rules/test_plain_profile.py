"""The servers' fast path (a plainly valid profile read straight from the proto:
convert.profile_candidate, handlers.plain_input_profile) gives what the JSON-shaped path
(convert.profile_to_dict, then parse_input_profile and evaluate_data) gives: the same
profile and decision when it takes a profile, the same violations for every bad one
(which it must leave to that path)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.workload import Mix, profiles
from services.rules.domain.errors import ValidationError
from services.rules.domain.profile import MAX_FACTS, MAX_LIST
from services.rules.entrypoints import convert
from services.rules.service_layer import handlers
from services.rules.service_layer.handlers import RulesContext

AS_OF = "2026-06-30"
Mutation = Callable[[pb.EnterpriseProfile], None]


def _set(name: str, value: object) -> Mutation:
    return lambda p: setattr(p, name, value)


def _fact(key: str, **value: object) -> Mutation:
    def mutate(p: pb.EnterpriseProfile) -> None:
        for kind, v in value.items():
            if kind == "list_value":
                p.facts[key].list_value.values.add().number_value = 1
            elif kind == "struct_value":
                p.facts[key].struct_value.fields["a"].bool_value = True
            elif kind == "null_value":
                p.facts[key].null_value = 0
            else:
                setattr(p.facts[key], kind, v)

    return mutate


def _accident(occurred_on: str = "2025-03-01", level: int = 1, deaths: int = 0) -> Mutation:
    return lambda p: p.accidents.add(occurred_on=occurred_on, level=level, deaths=deaths)


def _penalty(decided_on: str = "2025-05-01", amount: float = 5000.0, basis: str = "x") -> Mutation:
    return lambda p: p.penalties.add(decided_on=decided_on, amount_yuan=amount, basis=basis)


def _hazard(p: pb.EnterpriseProfile) -> None:
    p.hazards.add(
        hazard_id="H1",
        clause_ref="GM2023:11(1)",
        severity=pb.SEVERITY_GENERAL,
        found_on="2026-01-05",
        due_on="2026-02-05",
        status=pb.HAZARD_STATUS_OPEN,
    )


def _many_facts(p: pb.EnterpriseProfile) -> None:
    for i in range(MAX_FACTS + 1):
        p.facts[f"gm.contractor_not_coordinated{i}"].bool_value = True


def _clear(name: str) -> Mutation:
    return lambda p: p.ClearField(name)


# each a way a request's profile can be wrong, or right in an unusual shape
MUTATIONS: list[Mutation] = [
    _set("enterprise_id", ""),
    _set("enterprise_id", "91330782MA00000018"),  # a bad check digit
    _set("enterprise_id", " 91330782MA00000017"),
    _set("enterprise_id", "9" * 19),
    _set("name", ""),
    _set("name", " 示例企业"),
    _set("name", "企" * 201),
    _set("name", "企业\x07名称"),  # a control character: the fast path leaves it to the parser
    _set("region", "稠城街道\x00"),
    _set("region", ""),
    _set("region", "不存在街道"),
    _set("region", "330782001"),  # a township's code: stored as its name
    _set("region", " 稠城街道"),
    _set("employees", -1),
    _set("employees", 10_000_001),
    _set("standardization_grade", 4),
    _set("standardization_grade", -1),
    _set("merchant_score", 101),
    _set("merchant_score", -1),
    _set("merchant_score", 0),
    _clear("merchant_score"),
    _set("industry", 0),
    _set("industry", 999),
    _set("credit_rating", 0),
    _set("credit_rating", 77),
    lambda p: p.high_risk_domains.append(0),
    lambda p: p.high_risk_domains.append(999),
    lambda p: p.high_risk_domains.extend([1, 1, 2]),
    lambda p: p.venues.append(pb.VENUE_SHOP),
    lambda p: p.venues.append(999),
    lambda p: p.venues.extend([pb.VENUE_SHOP] * (MAX_LIST + 1)),
    lambda p: p.hazchem_roles.append(pb.HAZCHEM_ROLE_DEALER),
    lambda p: p.hazchem_roles.append(0),
    _accident(),
    _accident(deaths=2),
    _accident(occurred_on=""),
    _accident(occurred_on="2026-02-30"),
    _accident(occurred_on="1900-01-01"),
    _accident(level=0),
    _accident(level=99),
    _accident(deaths=-1),
    _accident(deaths=100_001),
    _penalty(),
    _penalty(basis=""),
    _penalty(decided_on=""),
    _penalty(decided_on="2026/01/01"),
    _penalty(amount=-1.0),
    _penalty(amount=math.nan),
    _penalty(amount=math.inf),
    _penalty(amount=1e12),  # the most an input may say
    _penalty(amount=1.0000000000000002e12),  # review 53 N9: over it
    _penalty(amount=1e300),
    _penalty(basis=" 依据"),
    _penalty(basis="据" * 2001),
    _penalty(basis="依据\x1b[2J"),
    _penalty(basis="第一条\n第二条"),  # free text may break lines
    _hazard,
    _fact("gm.contractor_not_coordinated", bool_value=True),
    _fact("gm.contractor_not_coordinated", number_value=1.0),
    _fact("gm.contractor_not_coordinated", string_value="true"),
    _fact("gm.special_ops_uncertified", number_value=2.0),
    _fact("gm.special_ops_uncertified", number_value=2.5),
    _fact("gm.special_ops_uncertified", number_value=-1.0),
    _fact("gm.special_ops_uncertified", number_value=math.inf),
    _fact("gm.special_ops_uncertified", bool_value=True),
    _fact("coalgas.water_seal_max_pressure", number_value=1.5),
    _fact("coalgas.water_seal_max_pressure", number_value=math.nan),
    _fact("no.such_fact", bool_value=True),
    _fact("gm.contractor_not_coordinated", null_value=0),
    _fact("gm.contractor_not_coordinated", list_value=1),
    _fact("gm.contractor_not_coordinated", struct_value=1),
    _many_facts,
]


def _cases(count: int, seed: int) -> Iterator[tuple[str, pb.EnterpriseProfile]]:
    """Generated profiles as they are, then each with one to three mutations."""
    rng = random.Random(seed)
    mix = Mix(with_finding=0.3, history=0.4)  # more findings and records than a register
    for i, data in enumerate(profiles(count, seed=seed, mix=mix)):
        message = convert.profile_from_json(data)
        yield f"firm {i}", message
        picked = rng.sample(range(len(MUTATIONS)), rng.randint(1, 3))
        for k in picked:
            MUTATIONS[k](message)
        yield f"firm {i} with mutations {picked}", message


def _outcome(run: Callable[[], object]) -> object:
    try:
        return run()
    except ValidationError as exc:
        return ("invalid", str(exc), [(v.field, v.description) for v in exc.violations])


@pytest.mark.parametrize("as_of", [AS_OF, "2026-02-30", "", "1900-01-01"])
def test_every_mutation_is_tried_alone(rules_ctx: RulesContext, as_of: str) -> None:
    """Each mutation on its own, so none hides behind another's violation; with a good,
    a bad and no as_of date (the bad one is named beside the profile's violations)."""
    data = next(profiles(1, seed=5))
    for k, mutate in enumerate(MUTATIONS):
        message = convert.profile_from_json(data)
        mutate(message)
        _same(rules_ctx, message, f"mutation {k}", as_of)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fast_path_gives_what_the_dict_path_gives(rules_ctx: RulesContext, seed: int) -> None:
    taken = refused = 0
    for label, message in _cases(400, seed):
        fast = _same(rules_ctx, message, label)
        taken += fast
        refused += not fast
    assert taken > 300 and refused > 300  # both sides of the fast path were exercised


def _same(ctx: RulesContext, message: pb.EnterpriseProfile, label: str, as_of: str = AS_OF) -> bool:
    """The fast path and the dict path agree on `message`; True when the fast path took it."""
    request = pb.EvaluateRequest()
    request.profile.CopyFrom(message)
    data = convert.profile_to_dict(request.profile)
    plain_way = _outcome(lambda: handlers.evaluate_data(ctx, data, as_of))
    fast_way = _outcome(
        lambda: handlers.evaluate_typed(
            ctx,
            convert.profile_candidate(request.profile),
            lambda: convert.profile_to_dict(request.profile),
            as_of,
        )
    )
    assert fast_way == plain_way, label
    candidate = convert.profile_candidate(request.profile)
    profile = handlers.plain_input_profile(ctx, candidate)
    if profile is not None:  # taken: exactly the profile the dict path validates
        assert profile == handlers.parse_input_profile(ctx, data, "profile."), label
        assert not handlers.hazard_violations(ctx, profile.hazards, "profile."), label
        assert {k: type(v) for k, v in profile.facts.items()} == {
            k: type(v) for k, v in handlers.parse_input_profile(ctx, data, "profile.").facts.items()
        }, label
    return profile is not None
