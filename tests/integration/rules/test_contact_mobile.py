"""The register's contact mobile (EnterpriseProfile.contact_mobile) on a real gRPC server,
SQLite and PostgreSQL: stored with the profile, changed by UpsertEnterprise (whole or by
update_mask) and PROFILE_UPDATED; answered whole only to a caller holding rules.contact,
masked (138****5678) to every other; a bad number is INVALID_ARGUMENT naming
profile.contact_mobile; the change feed and the audit trail never hold it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import Engine, select

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.auth import TokenStore
from services.common.ratelimit import Rate
from services.common.security import Security
from services.rules.adapters.orm import audit_log, changes
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.rules.test_event_groups import _server
from tests.support import profile, uscc

MOBILE = "13812345678"
MASKED = "138****5678"
BOOKING = ("tok-booking-0123456789abcd", ["rules.read", "rules.write", "rules.contact"])
OTHER = ("tok-other-0123456789abcdef", ["rules.read", "rules.write", "rules.evaluate"])


def _as(who: tuple[str, list[str]]) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {who[0]}"),)


@pytest.fixture
def stub(db_engine: Engine, rulebook: Any, tmp_path: Path) -> Iterator[RulesServiceStub]:
    path = tmp_path / "tokens.json"
    entries = [
        {"token": tok, "caller": name, "scopes": scopes}
        for name, (tok, scopes) in (("booking-service", BOOKING), ("other", OTHER))
    ]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    yield from _server(
        db_engine, rulebook, security=Security(TokenStore.load(path), Rate(1e4, 1e4))
    )


def _upsert(stub: RulesServiceStub, who: Any, data: dict, paths: tuple[str, ...] = ()) -> Any:
    request = pb.UpsertEnterpriseRequest(profile=profile_from_json(data))
    request.update_mask.paths.extend(paths)
    return stub.UpsertEnterprise(request, metadata=_as(who), timeout=30)


def _status(stub: RulesServiceStub, who: Any, n: int = 1) -> pb.EnterpriseStatus:
    request = pb.GetEnterpriseStatusRequest(enterprise_id=uscc(n))
    return stub.GetEnterpriseStatus(request, metadata=_as(who), timeout=30)


def test_whole_to_rules_contact_masked_to_everyone_else(stub: RulesServiceStub) -> None:
    answer = _upsert(stub, OTHER, profile(1, contact_mobile=MOBILE))
    assert answer.profile.contact_mobile == MASKED  # the writer itself lacks the scope
    assert _status(stub, OTHER).profile.contact_mobile == MASKED
    assert _status(stub, BOOKING).profile.contact_mobile == MOBILE
    assert _upsert(stub, BOOKING, profile(1, contact_mobile=MOBILE)).profile.contact_mobile == (
        MOBILE
    )


def test_update_mask_and_profile_updated_change_it(stub: RulesServiceStub) -> None:
    _upsert(stub, BOOKING, profile(1, contact_mobile=MOBILE))
    _upsert(stub, BOOKING, profile(1, employees=31), ("employees",))
    assert _status(stub, BOOKING).profile.contact_mobile == MOBILE  # not named: kept
    _upsert(stub, BOOKING, profile(1, contact_mobile="13900001111"), ("contact_mobile",))
    assert _status(stub, BOOKING).profile.contact_mobile == "13900001111"
    event = pb.EnterpriseEvent(
        event_id="p1",
        enterprise_id=uscc(1),
        kind=pb.EVENT_KIND_PROFILE_UPDATED,
        occurred_on="2026-06-30",
        profile=profile_from_json(profile(1, contact_mobile="13700002222")),
    )
    answer = stub.ReportEvent(pb.ReportEventRequest(event=event), metadata=_as(OTHER), timeout=30)
    assert answer.profile.contact_mobile == "137****2222"
    assert _status(stub, BOOKING).profile.contact_mobile == "13700002222"
    _upsert(stub, BOOKING, profile(1))  # a replacement without it clears it
    assert _status(stub, BOOKING).profile.contact_mobile == ""


def _violations(info: Any) -> dict[str, str]:
    details = dict(info.value.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    found: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found |= {v.field: v.description for v in bad.field_violations}
    return found


@pytest.mark.parametrize(
    "bad",
    ["12812345678", "1381234567", "138123456789", "138-1234-5678", MASKED, "1381234567\u0085"],
)
def test_a_bad_number_names_the_field(stub: RulesServiceStub, bad: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _upsert(stub, BOOKING, profile(1, contact_mobile=bad))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile.contact_mobile" in _violations(info)


def test_never_in_the_feed_nor_the_audit_trail(stub: RulesServiceStub, db_engine: Engine) -> None:
    _upsert(stub, BOOKING, profile(1, contact_mobile=MOBILE))
    _upsert(stub, BOOKING, profile(1, contact_mobile="13900001111"), ("contact_mobile",))
    with db_engine.connect() as conn:
        rows = [str(r) for r in conn.execute(select(audit_log))]
        rows += [str(r) for r in conn.execute(select(changes))]
    assert rows and not any("5678" in r or "1111" in r for r in rows)


def test_a_profile_read_masked_can_be_sent_back(stub: RulesServiceStub) -> None:
    """Review 56 D1: a caller without rules.contact reads the contact masked; sending the
    profile it read back (a whole UpsertEnterprise, Evaluate) keeps the number on record
    and is decided like any other; a masked number masking another is refused."""
    _upsert(stub, BOOKING, profile(1, contact_mobile=MOBILE))
    read = _status(stub, OTHER).profile
    assert read.contact_mobile == MASKED
    again = stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(profile=read), metadata=_as(OTHER), timeout=30
    )
    assert again.profile.contact_mobile == MASKED
    assert _status(stub, BOOKING).profile.contact_mobile == MOBILE  # kept, not the mask
    evaluated = stub.Evaluate(pb.EvaluateRequest(profile=read), metadata=_as(OTHER), timeout=30)
    assert evaluated.status != pb.STATUS_UNSPECIFIED
    other = pb.EnterpriseProfile()
    other.CopyFrom(read)
    other.contact_mobile = "139****5678"
    with pytest.raises(grpc.RpcError) as info:
        stub.UpsertEnterprise(
            pb.UpsertEnterpriseRequest(profile=other), metadata=_as(OTHER), timeout=30
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile.contact_mobile" in _violations(info)
    assert _status(stub, BOOKING).profile.contact_mobile == MOBILE


def test_a_negative_fact_stored_before_they_were_refused_does_not_refuse_a_masked_update(
    stub: RulesServiceStub, db_engine: Engine
) -> None:
    """Review 56 D5: a firm whose stored profile holds a negative number fact (kept from
    before review 51 refused them) could not be updated by update_mask at all: sending
    the masked contact back (`contact_mobile`), or `employees`, was INVALID_ARGUMENT
    naming the stored fact, which the caller had not sent. A masked update is judged on
    what it sets; the stored fact stays as kept. A fact the caller sends (the mask names
    it, or the whole profile carries it) is still judged as input."""
    from sqlalchemy import update

    from services.rules.adapters.orm import firms

    _upsert(stub, BOOKING, profile(1, contact_mobile=MOBILE))
    kept = profile(1, contact_mobile=MOBILE, facts={"fire.exit_width_ratio": -0.5})
    with db_engine.begin() as conn:
        conn.execute(update(firms).values(profile=kept))
    read = _status(stub, OTHER).profile
    assert read.contact_mobile == MASKED
    for paths in (["contact_mobile"], ["employees"]):
        request = pb.UpsertEnterpriseRequest(profile=read)
        request.update_mask.paths.extend(paths)
        answer = stub.UpsertEnterprise(request, metadata=_as(OTHER), timeout=30)
        assert answer.profile.contact_mobile == MASKED
    after = _status(stub, BOOKING).profile
    assert after.contact_mobile == MOBILE
    assert dict(after.facts)["fire.exit_width_ratio"].number_value == -0.5  # kept as stored
    named = pb.UpsertEnterpriseRequest(profile=read)
    named.update_mask.paths.append("facts.fire.exit_width_ratio")
    for request in (named, pb.UpsertEnterpriseRequest(profile=read)):  # sent: judged
        with pytest.raises(grpc.RpcError) as info:
            stub.UpsertEnterprise(request, metadata=_as(OTHER), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(_violations(info)) == {'profile.facts["fire.exit_width_ratio"]'}
    fixed = pb.UpsertEnterpriseRequest(profile=read)
    fixed.profile.facts["fire.exit_width_ratio"].number_value = 0.8
    fixed.update_mask.paths.append("facts.fire.exit_width_ratio")
    stub.UpsertEnterprise(fixed, metadata=_as(OTHER), timeout=30)
    assert dict(_status(stub, BOOKING).profile.facts)["fire.exit_width_ratio"].number_value == 0.8
