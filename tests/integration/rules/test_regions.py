"""Regions are codes (issue 14.11): every region a caller sends is a town/street of
rulesets/regions.yaml, by its Chinese name or its code, stored as the name; filters take
a township or a whole county; an unknown one is INVALID_ARGUMENT naming the field with
the nearest known regions. On SQLite and PostgreSQL, over a real gRPC server."""

from __future__ import annotations

from datetime import date

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import update

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.rules.adapters.orm import firms, whitelist_entries
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints.convert import profile_from_json
from services.rules.entrypoints.grpc_server import context_from
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import upsert
from tests.integration.rules.test_change_feed import take
from tests.integration.rules.test_update_mask import violations
from tests.support import profile, uscc

FREE_TEXT = "Chouchheng street!!"


def refused(call: object, *args: object) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=30)  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return violations(info.value)


def test_a_free_text_region_is_refused_in_every_path_that_takes_a_profile(
    register_stub: RulesServiceStub,
) -> None:
    bad = profile_from_json(profile(1, region=FREE_TEXT))
    for call, request, field in [
        (register_stub.Evaluate, pb.EvaluateRequest(profile=bad), "profile.region"),
        (
            register_stub.UpsertEnterprise,
            pb.UpsertEnterpriseRequest(profile=bad),
            "profile.region",
        ),
        (
            register_stub.ListApplicableClauses,
            pb.ListApplicableClausesRequest(profile=bad),
            "profile.region",
        ),
    ]:
        found = refused(call, request)
        assert set(found) == {field}, call
        assert "Chouchheng street!!" in found[field] and "ListRegions" in found[field]
    upsert(register_stub, profile(1))
    event = pb.EnterpriseEvent(
        event_id="p-1",
        enterprise_id=uscc(1),
        kind=pb.EVENT_KIND_PROFILE_UPDATED,
        occurred_on="2026-06-01",
        profile=bad,
    )
    found = refused(register_stub.ReportEvent, pb.ReportEventRequest(event=event))
    assert set(found) == {"event.profile.region"}
    [decision] = register_stub.EvaluateStream(iter([pb.EvaluateRequest(profile=bad)]), timeout=30)
    assert decision.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    status = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=30
    )
    assert status.profile.region == "稠城街道"  # nothing of the refused event was stored


def test_the_error_quotes_a_short_prefix_and_suggests_the_nearest_regions(
    register_stub: RulesServiceStub,
) -> None:
    found = refused(
        register_stub.Evaluate,
        pb.EvaluateRequest(profile=profile_from_json(profile(1, region="稠城" + "x" * 500))),
    )
    assert "x" * 30 not in found["profile.region"]
    near = refused(
        register_stub.Evaluate,
        pb.EvaluateRequest(profile=profile_from_json(profile(1, region="稠城"))),
    )
    assert "nearest: 稠城街道" in near["profile.region"]


def test_a_code_is_accepted_and_stored_as_the_chinese_name(register_stub: RulesServiceStub) -> None:
    status = upsert(register_stub, profile(1, region="330782004"))
    assert status.profile.region == "北苑街道"
    assert status.whitelist_entry.region == "北苑街道"
    status = upsert(register_stub, profile(2, region="330109001000"))  # the 12-digit form
    assert status.profile.region == "城厢街道"
    decision = register_stub.Evaluate(
        pb.EvaluateRequest(profile=profile_from_json(profile(3, region="330782100"))), timeout=30
    )
    assert decision.status == pb.STATUS_WHITELIST


def test_whitelist_filters_on_a_township_or_a_county_by_name_or_code(
    register_stub: RulesServiceStub,
) -> None:
    for n, region in [(1, "稠城街道"), (2, "北苑街道"), (3, "佛堂镇"), (4, "城厢街道")]:
        upsert(register_stub, profile(n, region=region))

    def listed(region: str) -> list[str]:
        page = register_stub.ListWhitelist(
            pb.ListWhitelistRequest(region=region, page_size=100), timeout=30
        )
        return sorted(e.enterprise_id for e in page.entries)

    assert listed("稠城街道") == listed("330782001") == [uscc(1)]
    assert listed("义乌市") == listed("330782") == sorted(uscc(n) for n in (1, 2, 3))
    assert listed("萧山区") == [uscc(4)]
    found = refused(register_stub.ListWhitelist, pb.ListWhitelistRequest(region=FREE_TEXT))
    assert set(found) == {"region"}
    # a page token is bound to the filter in canonical form: name and code are one filter
    first = register_stub.ListWhitelist(
        pb.ListWhitelistRequest(region="义乌市", page_size=1), timeout=30
    )
    rest = register_stub.ListWhitelist(
        pb.ListWhitelistRequest(region="330782", page_size=5, page_token=first.next_page_token),
        timeout=30,
    )
    assert len(rest.entries) == 2


def test_watch_changes_filters_on_a_listed_region_only(register_stub: RulesServiceStub) -> None:
    upsert(register_stub, profile(1, region="佛堂镇"))
    upsert(register_stub, profile(2, region="城厢街道"))
    found = take(register_stub, 2, region="330109")
    assert {c.enterprise_id for c in found} == {uscc(2)}
    assert {c.region for c in found} == {"城厢街道"}
    with pytest.raises(grpc.RpcError) as info:
        take(register_stub, 1, region=FREE_TEXT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(info.value)) == {"region"}


def test_list_regions_names_every_township_with_its_code(register_stub: RulesServiceStub) -> None:
    answer = register_stub.ListRegions(pb.ListRegionsRequest(), timeout=30)
    yiwu = [r for r in answer.regions if r.county_code == "330782"]
    assert len(yiwu) == 14
    assert {(r.code, r.name, r.kind) for r in yiwu} >= {
        ("330782001", "稠城街道", "街道"),
        ("330782100", "佛堂镇", "镇"),
    }
    assert {c.code: c.name for c in answer.counties}["330109"] == "萧山区"


def test_a_stored_region_not_listed_is_kept_named_by_reevaluate_and_refused_when_resent(
    register_stub: RulesServiceStub, db_engine, rulebook: Rulebook
) -> None:  # type: ignore[no-untyped-def]
    upsert(register_stub, profile(1))
    upsert(register_stub, profile(2))
    legacy = profile(2, region=FREE_TEXT)  # stored before regions were checked
    with db_engine.begin() as conn:
        conn.execute(
            update(firms)
            .where(firms.c.enterprise_id == uscc(2))
            .values(region=FREE_TEXT, profile=legacy)
        )
        conn.execute(
            update(whitelist_entries)
            .where(whitelist_entries.c.enterprise_id == uscc(2))
            .values(region=FREE_TEXT)
        )
    summary = reevaluate_all(UnitOfWork(db_engine), context_from(rulebook), date(2026, 7, 1))
    assert summary.attention == [uscc(2)] and summary.skipped == []
    # an update that leaves the region keeps it (read as stored) ...
    mask = field_mask_pb2.FieldMask(paths=["employees"])
    kept = register_stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(
            profile=profile_from_json(profile(2, employees=40)), update_mask=mask
        ),
        timeout=30,
    )
    assert kept.profile.region == FREE_TEXT and kept.profile.employees == 40
    # ... one that sets it must send a listed region
    found = refused(
        register_stub.UpsertEnterprise,
        pb.UpsertEnterpriseRequest(
            profile=profile_from_json(profile(2, region="稠城")),
            update_mask=field_mask_pb2.FieldMask(paths=["region"]),
        ),
    )
    assert set(found) == {"profile.region"}
    fixed = register_stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(
            profile=profile_from_json(profile(2, region="330782001")),
            update_mask=field_mask_pb2.FieldMask(paths=["region"]),
        ),
        timeout=30,
    )
    assert fixed.profile.region == "稠城街道"
