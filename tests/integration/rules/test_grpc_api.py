"""RulesService over a real gRPC server on port 0: the contract of docs/api.md."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.entrypoints.convert import facts_to_dict, profile_from_json
from tests.integration.conftest import violations
from tests.support import profile, uscc


def evaluate(stub: Any, data: dict[str, Any], as_of: str = "2026-06-30") -> pb.Decision:
    return stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(data), as_of=as_of), timeout=10
    )


def test_evaluate_reports_every_matching_clause_with_its_facts(rules_stub) -> None:  # type: ignore[no-untyped-def]
    data = profile(
        industry="light_industry",
        high_risk_domains=["dust_explosion"],
        facts={
            "dust.dry_collector_unprotected": True,
            "dust.no_airlock_discharge": True,
            "dust.zone20_electrics_noncompliant": False,
            "gen.training_missing": True,
        },
    )
    decision = evaluate(rules_stub, data)
    refs = [f.clause_ref for f in decision.findings]
    assert sorted(refs) == ["GEN:training", "GM2023:11(3)", "GM2023:11(6)"]
    assert refs[-1] == "GEN:training"  # major findings are listed first
    major = decision.findings[0]
    assert major.severity == pb.SEVERITY_MAJOR
    assert major.standard_id == "GM2023"
    assert "干式除尘" in major.text or "锁气卸灰" in major.text
    assert major.guidance
    assert list(major.fact_keys) in (
        ["dust.dry_collector_unprotected"],
        ["dust.no_airlock_discharge"],
    )
    assert major.matched_facts[major.fact_keys[0]].bool_value is True
    assert decision.risk_level == pb.RISK_LEVEL_RED
    assert decision.status == pb.STATUS_PRIORITY
    assert decision.inspection_due_on == "2026-07-30"


def test_nothing_matched_is_an_ordinary_clean_decision(rules_stub) -> None:  # type: ignore[no-untyped-def]
    decision = evaluate(rules_stub, profile(facts={"gen.no_hazard_ledger": False}))
    assert list(decision.findings) == []
    assert decision.status == pb.STATUS_WHITELIST
    assert decision.inspection_cap_per_year == 0


def test_as_of_defaults_to_today_in_shanghai(rules_stub) -> None:  # type: ignore[no-untyped-def]
    from services.common.clock import today_shanghai

    before = today_shanghai().isoformat()
    decision = rules_stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(profile())), timeout=10
    )
    assert decision.as_of in {before, today_shanghai().isoformat()}


def test_invalid_profile_names_each_field(rules_stub) -> None:  # type: ignore[no-untyped-def]
    bad = profile(
        enterprise_id=uscc(7)[:17] + "0" if uscc(7)[17] != "0" else uscc(7)[:17] + "1",
        employees=-4,
        facts={"gm.contractor_unmanged": True},
    )
    request = pb.EvaluateRequest(profile=profile_from_json(bad), as_of="2026-13-01")
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = violations(info.value)
    assert set(fields) == {
        "profile.enterprise_id",
        "profile.employees",
        'profile.facts["gm.contractor_unmanged"]',
        "as_of",
    }
    assert "check character" in fields["profile.enterprise_id"]


def test_unknown_enum_number_and_wrong_fact_value_type(rules_stub) -> None:  # type: ignore[no-untyped-def]
    message = profile_from_json(profile())
    message.industry = 99  # type: ignore[assignment]
    message.high_risk_domains.append(42)  # type: ignore[arg-type]
    message.facts["gen.no_hazard_ledger"].string_value = "yes"
    message.facts["gm.special_ops_uncertified"].list_value.values.add().number_value = 1
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(pb.EvaluateRequest(profile=message), timeout=10)
    assert set(violations(info.value)) == {
        "profile.industry",
        "profile.high_risk_domains[1]"
        if len(message.high_risk_domains) > 1
        else "profile.high_risk_domains[0]",
        'profile.facts["gen.no_hazard_ledger"]',
        'profile.facts["gm.special_ops_uncertified"]',
    }


@pytest.mark.parametrize(
    ("pressure", "breached"), [(0.00001, True), (-1e16, True), (1e16, False), (5e-324, True)]
)
def test_a_number_fact_of_any_size_is_decided(  # type: ignore[no-untyped-def]
    rules_stub, pressure: float, breached: bool
) -> None:
    """A number Python's json writes with an exponent (1e-05, 1e+16) is decided like any
    other, not INTERNAL (review 47b F1: durable_rules' reader refused it, error 204)."""
    data = profile(
        industry="metallurgy",
        high_risk_domains=["metal_smelting"],
        employees=600,
        facts={"coalgas.water_seal_max_pressure": pressure},
    )
    request = pb.EvaluateRequest(profile=profile_from_json(data), as_of="2026-06-30")
    refs = {f.clause_ref for f in rules_stub.Evaluate(request, timeout=10).findings}
    assert ("GM2023:4(8)" in refs) is breached
    items = rules_stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[request]), timeout=10)
    assert {f.clause_ref for f in items.decisions[0].findings} == refs


def test_empty_request_is_invalid_not_internal(rules_stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(pb.EvaluateRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"profile.enterprise_id", "profile.name", "profile.industry", "profile.region"} <= set(
        violations(info.value)
    )


def _stream(n: int, bad_every: int) -> Iterator[pb.EvaluateRequest]:
    for i in range(n):
        data = profile(i + 1, facts={"gen.training_missing": i % 3 == 0})
        message = profile_from_json(data)
        if bad_every and i % bad_every == bad_every - 1:
            message.employees = -1
        yield pb.EvaluateRequest(profile=message, as_of="2026-06-30", request_id=str(i))


@pytest.mark.slow
def test_stream_of_10000_returns_10000_decisions_in_order(rules_stub) -> None:  # type: ignore[no-untyped-def]
    responses = list(rules_stub.EvaluateStream(_stream(10_000, bad_every=1000), timeout=600))
    assert len(responses) == 10_000
    assert [r.request_id for r in responses] == [str(i) for i in range(10_000)]
    for i, r in enumerate(responses):
        assert r.enterprise_id == uscc(i + 1)
        if i % 1000 == 999:
            assert r.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert "employees" in r.error.message
        else:
            assert not r.HasField("error")
            assert (r.risk_level == pb.RISK_LEVEL_YELLOW) == (i % 3 == 0)


def test_stream_error_item_carries_bad_request_details(rules_stub) -> None:  # type: ignore[no-untyped-def]
    responses = list(rules_stub.EvaluateStream(_stream(3, bad_every=2), timeout=30))
    assert [bool(r.HasField("error")) for r in responses] == [False, True, False]
    bad = error_details_pb2.BadRequest()
    assert responses[1].error.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["profile.employees"]


def test_list_and_get_standards(rules_stub, rulebook) -> None:  # type: ignore[no-untyped-def]
    listed = rules_stub.ListStandards(pb.ListStandardsRequest(), timeout=10)
    by_id = {s.id: s for s in listed.standards}
    assert set(by_id) == {"GM2023", "CHEM2017", "FIRE35181", "SMALL", "GEN"}
    assert listed.ruleset_version == rulebook.catalogue.version
    assert by_id["GM2023"].verified is False  # 29 items rest on one source (standards-text)
    assert by_id["CHEM2017"].verified is False  # items 16–20: two code copies only
    assert by_id["GEN"].verified is True
    assert all(not s.clauses for s in listed.standards)
    gm = rules_stub.GetStandard(pb.GetStandardRequest(standard_id="GM2023"), timeout=10)
    assert gm.clause_count == len(gm.clauses) == by_id["GM2023"].clause_count
    clause = next(c for c in gm.clauses if c.clause == "11(1)")
    assert clause.clause_ref == "GM2023:11(1)"
    assert set(clause.fact_keys) == {
        "dust.zone_in_non_frame_multistorey",
        "dust.crowd_room_in_dust_building",
    }
    assert "dust_explosion" in clause.applies_to
    assert gm.version.startswith("GM2023-")


def test_get_standard_without_an_id_names_the_field(rules_stub) -> None:  # type: ignore[no-untyped-def]
    """Review 47b N4: an empty standard_id answered NOT_FOUND."""
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.GetStandard(pb.GetStandardRequest(standard_id=""), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(info.value)) == ["standard_id"]


def test_get_unknown_standard_is_not_found(rules_stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.GetStandard(pb.GetStandardRequest(standard_id="NOPE"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "GM2023" in (info.value.details() or "")


def test_health_and_reflection_are_served(rules_channel) -> None:  # type: ignore[no-untyped-def]
    health = health_pb2_grpc.HealthStub(rules_channel)
    for service in ("", "rules.v1.RulesService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(rules_channel)
    answers = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert "rules.v1.RulesService" in names


def test_concurrent_evaluations_each_get_their_own_answer(rules_stub) -> None:  # type: ignore[no-untyped-def]
    """Many threads at once through the server's pool: no cross-talk through the engine lock."""
    errors: list[str] = []

    def worker(offset: int) -> None:
        for i in range(40):
            n = offset * 100 + i
            facts = {"gen.training_missing": n % 2 == 0, "gen.no_hazard_ledger": n % 3 == 0}
            decision = evaluate(rules_stub, profile(n + 1, facts=facts))
            want = sorted(
                r for r, on in (("GEN:ledger", n % 3 == 0), ("GEN:training", n % 2 == 0)) if on
            )
            got = sorted(f.clause_ref for f in decision.findings)
            if got != want or decision.enterprise_id != uscc(n + 1):
                errors.append(f"{n}: {got} != {want}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("as_of", ["9999-06-01", "9999-12-31", "0001-01-01", "1900-01-01"])
def test_dates_out_of_range_are_invalid_not_internal(rules_stub, as_of: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(
            pb.EvaluateRequest(profile=profile_from_json(profile()), as_of=as_of), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "as_of" in violations(info.value)


def test_a_request_id_is_at_most_128_characters(rules_stub) -> None:  # type: ignore[no-untyped-def]
    """Review hunt 14: a 2,000,000-character request_id was accepted and echoed whole."""
    message = profile_from_json(profile(1))
    fine = pb.EvaluateRequest(profile=message, as_of="2026-06-30", request_id="r" * 128)
    assert rules_stub.Evaluate(fine, timeout=10).request_id == "r" * 128
    long = pb.EvaluateRequest(profile=message, as_of="2026-06-30", request_id="r" * 200_000)
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(long, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in violations(info.value)
    (item,) = rules_stub.EvaluateStream(iter([long]), timeout=10)
    assert item.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert item.request_id == "r" * 128  # echoed no longer than a valid one


def test_a_renamed_fact_key_is_read_as_its_current_name(rules_stub, register_stub) -> None:  # type: ignore[no-untyped-def]
    """Review 51 K1: facts.md's dust.zone20_non_ex_electrics and chem.external_distance_short
    were only renamed (facts.yaml: the same value under the new key); a caller still using
    them is understood, by Evaluate and by the register. A key split into several stays
    refused, naming them."""
    dusty = profile(
        industry="light_industry",
        high_risk_domains=["dust_explosion"],
        facts={"dust.zone20_non_ex_electrics": True},
    )
    [finding] = [f for f in evaluate(rules_stub, dusty).findings if f.clause_ref == "GM2023:11(7)"]
    assert list(finding.fact_keys) == ["dust.zone20_electrics_noncompliant"]
    chemicals = profile(
        2,
        industry="chemicals",
        hazchem_roles=["producer"],
        facts={"chem.external_distance_short": True},
    )
    status = register_stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(profile=profile_from_json(chemicals)), timeout=10
    )
    assert facts_to_dict(status.profile.facts) == {"chem.external_distance_noncompliant": True}
    assert "CHEM2017:3" in {f.clause_ref for f in status.decision.findings}
    masked = register_stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(
            profile=profile_from_json(
                {"enterprise_id": uscc(2), "facts": {"chem.external_distance_short": False}}
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["facts.chem.external_distance_short"]),
        ),
        timeout=10,
    )
    assert facts_to_dict(masked.profile.facts) == {"chem.external_distance_noncompliant": False}
    with pytest.raises(grpc.RpcError) as raised:
        evaluate(rules_stub, profile(facts={"fire.no_daily_patrol": True}))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    message = violations(raised.value)['profile.facts["fire.no_daily_patrol"]']
    assert message.startswith(
        "retired fact key; use fire.key_fire_safety_unit, fire.no_daily_fire_patrol, "
        "fire.no_monthly_fire_check instead"
    )
