"""Applicability is served, not copied: ListApplicableClauses, GetStandard's questions and
ListFacts through the real gRPC server."""

from __future__ import annotations

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.entrypoints.convert import profile_from_json
from tests.support import profile


def _applicable(stub, **firm) -> pb.ListApplicableClausesResponse:  # type: ignore[no-untyped-def]
    request = pb.ListApplicableClausesRequest(
        profile=profile_from_json(profile(**firm)), as_of="2026-06-30"
    )
    return stub.ListApplicableClauses(request, timeout=10)


def test_a_dust_firm_gets_the_dust_items_with_their_questions(rules_stub) -> None:  # type: ignore[no-untyped-def]
    found = _applicable(rules_stub, industry="light_industry", high_risk_domains=["dust_explosion"])
    refs = [c.clause_ref for c in found.clauses]
    assert "GM2023:11(4)" in refs and "GM2023:8(1)" in refs
    assert not any(r.startswith(("GM2023:4(", "GM2023:12(", "CHEM2017:")) for r in refs)
    clause = next(c for c in found.clauses if c.clause_ref == "GM2023:11(4)")
    assert clause.title and len(clause.title) <= 16
    keys = {q.key for q in clause.questions}
    assert keys == {"dust.metal_positive_pressure", "dust.other_positive_blow_no_ignition_control"}
    assert all(q.question.endswith("？") for q in clause.questions)
    assert all(q.answer_type == pb.ANSWER_TYPE_YES_NO for q in clause.questions)
    assert {s.id for s in found.standards} >= {"GM2023", "FIRE35181", "GEN"}


def test_fire_items_follow_the_venues_a_firm_runs(rules_stub) -> None:  # type: ignore[no-untyped-def]
    plain = {c.clause_ref for c in _applicable(rules_stub, industry="other").clauses}
    shop = {
        c.clause_ref for c in _applicable(rules_stub, industry="other", venues=["shop"]).clauses
    }
    assert "FIRE35181:6.5" not in plain and "FIRE35181:6.5" in shop
    assert "FIRE35181:6.2" in plain  # 三合一: asked of every firm


def test_a_labour_intensive_firm_is_asked_about_its_dormitory(rules_stub) -> None:  # type: ignore[no-untyped-def]
    """Review 51 D4: its staff dormitories are 人员密集场所的居住场所 (6.10), as its
    workshops and dormitories are 人员密集场所 for 6.8."""
    found = _applicable(rules_stub, industry="textile", venues=["labour_intensive"])
    clauses = {c.clause_ref: c for c in found.clauses}
    assert "FIRE35181:6.8" in clauses
    keys = {q.key for q in clauses["FIRE35181:6.10"].questions}
    assert keys == {"fire.residence_sandwich_panel", "fire.sandwich_panel_core_below_a"}


def test_severity_filter_and_the_fire_edition_says_superseded(rules_stub) -> None:  # type: ignore[no-untyped-def]
    request = pb.ListApplicableClausesRequest(
        profile=profile_from_json(profile(industry="other", venues=["shop"])),
        as_of="2026-06-30",
        severity=pb.SEVERITY_MAJOR,
    )
    found = rules_stub.ListApplicableClauses(request, timeout=10)
    assert found.clauses and all(c.severity == pb.SEVERITY_MAJOR for c in found.clauses)
    fire = next(s for s in found.standards if s.id == "FIRE35181")
    assert fire.edition == "GB 35181-2017" and fire.superseded_on == "2025-11-01"
    assert "GB 35181-2025" in fire.successor


def test_a_bad_profile_is_invalid_argument_naming_the_field(rules_stub) -> None:  # type: ignore[no-untyped-def]
    request = pb.ListApplicableClausesRequest(
        profile=profile_from_json(profile(name="")), as_of="2026-06-30"
    )
    with pytest.raises(grpc.RpcError) as raised:
        rules_stub.ListApplicableClauses(request, timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "profile.name" in raised.value.details()


def test_get_standard_returns_every_clause_with_its_questions(rules_stub) -> None:  # type: ignore[no-untyped-def]
    standard = rules_stub.GetStandard(pb.GetStandardRequest(standard_id="GM2023"), timeout=10)
    assert standard.edition and standard.effective_from == "2023-05-15"
    assert len(standard.clauses) == 65
    assert all(c.questions for c in standard.clauses)
    workers = next(
        q
        for c in standard.clauses
        for q in c.questions
        if q.key == "ammonia.quick_freezer_room_workers"
    )
    assert workers.answer_type == pb.ANSWER_TYPE_COUNT and workers.unit == "人"


def test_list_facts_names_types_questions_readers_and_retired_keys(rules_stub) -> None:  # type: ignore[no-untyped-def]
    listed = rules_stub.ListFacts(pb.ListFactsRequest(), timeout=10)
    facts = {f.fact.key: f for f in listed.facts}
    assert len(facts) >= 150
    ratio = facts["fire.exit_width_ratio"]
    assert ratio.fact.type == "number" and ratio.fact.answer_type == pb.ANSWER_TYPE_NUMBER
    assert list(ratio.clause_refs) == ["FIRE35181:6.5"]
    retired = {r.key: r for r in listed.retired}
    assert "chem.no_dual_power_supply" in retired["chem.single_power_supply"].replaced_by


def test_no_firm_and_an_unknown_severity_are_invalid_argument(rules_stub) -> None:  # type: ignore[no-untyped-def]
    for request, field in (
        (pb.ListApplicableClausesRequest(as_of="2026-06-30"), "firm"),
        (
            pb.ListApplicableClausesRequest(
                profile=profile_from_json(profile()),
                severity=99,  # type: ignore[arg-type]
            ),
            "severity",
        ),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            rules_stub.ListApplicableClauses(request, timeout=10)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in (raised.value.details() or "")


def test_a_firm_of_the_register_is_judged_on_its_stored_profile(register_stub) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import upsert
    from tests.support import uscc

    upsert(register_stub, profile(61, industry="textile", hazchem_roles=["dealer"]))
    found = register_stub.ListApplicableClauses(
        pb.ListApplicableClausesRequest(enterprise_id=uscc(61), as_of="2026-06-30"), timeout=10
    )
    refs = {c.clause_ref for c in found.clauses}
    assert {"GM2023:9(1)", "CHEM2017:20"} <= refs and "GM2023:10(1)" not in refs
    with pytest.raises(grpc.RpcError) as missing:
        register_stub.ListApplicableClauses(
            pb.ListApplicableClausesRequest(enterprise_id=uscc(62)), timeout=10
        )
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


def test_get_standard_by_date_and_its_superseded_flag(rules_stub) -> None:  # type: ignore[no-untyped-def]
    before = rules_stub.GetStandard(
        pb.GetStandardRequest(standard_id="FIRE35181", as_of="2025-06-30"), timeout=10
    )
    after = rules_stub.GetStandard(
        pb.GetStandardRequest(standard_id="FIRE35181", as_of="2026-06-30"), timeout=10
    )
    assert before.edition == after.edition == "GB 35181-2017"
    assert (before.superseded, after.superseded) == (False, True)
    with pytest.raises(grpc.RpcError) as early:
        rules_stub.GetStandard(
            pb.GetStandardRequest(standard_id="GM2023", as_of="2023-05-14"), timeout=10
        )
    assert early.value.code() is grpc.StatusCode.NOT_FOUND
    assert "2023-05-14" in (early.value.details() or "")


def test_a_retired_key_in_an_event_profile_names_its_replacements(register_stub) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.conftest import upsert
    from tests.support import uscc

    upsert(register_stub, profile(63))
    event = pb.EnterpriseEvent(
        event_id="pu-1",
        enterprise_id=uscc(63),
        kind=pb.EVENT_KIND_PROFILE_UPDATED,
        occurred_on="2026-06-30",
        profile=profile_from_json(profile(63, facts={"chem.single_power_supply": True})),
    )
    with pytest.raises(grpc.RpcError) as raised:
        register_stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "chem.no_dual_power_supply" in (raised.value.details() or "")
