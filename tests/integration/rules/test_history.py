"""GetEnterpriseStatus's history (issue 14.4) on SQLite and PostgreSQL: every item says
what it is (decision, event, whitelist_granted, whitelist_revoked), a decision an event
caused names the event, and a white-list entry stays readable after its revocation."""

from __future__ import annotations

from datetime import date

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import upsert
from tests.integration.rules.test_events import (
    TODAY,
    accident,
    complaint,
    report,
    status_of,
    whitelisted_firm,
)
from tests.support import profile


def kinds(status: pb.EnterpriseStatus) -> list[str]:
    return [h.kind for h in status.history]


def test_a_grant_is_its_own_item_after_the_decision_that_made_it(
    register_stub: RulesServiceStub,
) -> None:
    status = upsert(register_stub, profile(1))
    assert kinds(status) == ["whitelist_granted", "decision"]
    granted, decision = status.history
    assert decision.decision_id == status.decision.decision_id
    assert (decision.event_id, decision.event_kind) == ("", pb.EVENT_KIND_UNSPECIFIED)
    assert granted.decision_id == decision.decision_id
    assert granted.recorded_at == decision.recorded_at
    assert granted.whitelist_entry == status.whitelist_entry
    assert "2027-06-30" in granted.reason


def test_an_event_names_its_decision_and_the_revoked_entry_stays_readable(
    register_stub: RulesServiceStub,
) -> None:
    before = whitelisted_firm(register_stub)
    status = report(register_stub, accident(1, "acc-1"))
    assert not status.HasField("whitelist_entry")
    assert kinds(status) == ["whitelist_revoked", "decision", "whitelist_granted", "decision"]
    revoked, decision = status.history[0], status.history[1]
    for item in (revoked, decision):
        assert (item.event_id, item.event_kind) == ("acc-1", pb.EVENT_KIND_ACCIDENT)
        assert item.decision_id == status.decision.decision_id
    entry = revoked.whitelist_entry
    assert (entry.granted_on, entry.valid_until) == (TODAY, "2027-06-30")
    assert entry.revoked_on == TODAY
    assert "撤销" in entry.revoked_reason and entry.revoked_reason == revoked.reason
    assert entry.decision_id == before.decision.decision_id
    # still readable later, from GetEnterpriseStatus
    again = status_of(register_stub, 1)
    assert again.history[0].whitelist_entry == entry


def test_a_complaint_is_an_event_item_without_a_decision(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    status = report(register_stub, complaint(1, "c-1", text="车间粉尘大"))
    assert kinds(status) == ["event", "whitelist_granted", "decision"]
    item = status.history[0]
    assert (item.event_id, item.event_kind) == ("c-1", pb.EVENT_KIND_COMPLAINT)
    assert "车间粉尘大" in item.reason
    assert item.decision_id == ""
    assert item.status == pb.STATUS_UNSPECIFIED


def test_an_expiry_and_a_new_grant_in_one_decision_are_two_items(
    register_stub: RulesServiceStub,
    db_engine,
    rules_ctx,  # type: ignore[no-untyped-def]
) -> None:
    upsert(register_stub, profile(1), as_of="2025-06-30")
    reevaluate_all(UnitOfWork(db_engine), rules_ctx, date(2026, 7, 1))  # a day late
    status = status_of(register_stub, 1)
    assert kinds(status)[:3] == ["whitelist_granted", "whitelist_revoked", "decision"]
    granted, expired = status.history[0], status.history[1]
    assert granted.whitelist_entry.granted_on == "2026-07-01"
    assert expired.whitelist_entry.granted_on == "2025-06-30"
    assert expired.whitelist_entry.revoked_on == "2026-06-30"
    assert "有效期届满" in expired.reason


def test_history_limit_counts_items_and_a_replay_returns_the_first_items(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    first = report(register_stub, accident(1, "acc-1"))
    upsert(register_stub, profile(1, name="新名称"))
    again = report(register_stub, accident(1, "acc-1"))
    assert again.duplicate
    assert list(again.history) == list(first.history)
    short = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=first.profile.enterprise_id, history_limit=3),
        timeout=10,
    )
    assert len(short.history) == 3


def test_the_causes_and_an_expiry_read_in_chinese(
    register_stub: RulesServiceStub,
    db_engine,
    rules_ctx,  # type: ignore[no-untyped-def]
) -> None:
    """Review 53 N6: `…upsert`, `…update (employees)`, `定期重新评估 periodic re-evaluation
    (run …)` and `有效期届满 expired` were what the histories and the feed said."""
    from google.protobuf import field_mask_pb2

    from services.common.clock import short_id
    from services.rules.entrypoints.convert import profile_from_json
    from tests.support import uscc

    upsert(register_stub, profile(1), as_of="2025-06-30")
    register_stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(
            profile=profile_from_json(
                {
                    "enterprise_id": uscc(1),
                    "employees": 30,
                    "facts": {"gen.training_missing": False},
                }
            ),
            as_of="2025-06-30",
            update_mask=field_mask_pb2.FieldMask(
                paths=["enterprise_id", "employees", "facts.gen.training_missing"]
            ),
        ),
        timeout=30,
    )
    run = reevaluate_all(UnitOfWork(db_engine), rules_ctx, date(2026, 7, 1))  # a day late
    upsert(register_stub, profile(2), as_of="2025-06-30")
    upsert(register_stub, profile(2), as_of="2026-07-01")  # expired by the per-call path
    reasons = [h.reason for h in reversed(status_of(register_stub, 1).history)]
    assert reasons[:3] == [
        "企业信息登记/更新（列入白名单）",
        "列入白名单（无事不扰），有效期至2026-06-30",
        "企业信息部分更新（从业人员数、现有员工安全培训记录缺失）（白名单延续）",
    ]
    assert reasons[3:5] == [
        f"定期重新评估（批次 {short_id(run.run_id)}）（列入白名单）",
        "有效期届满",
    ]
    per_call = [h.reason for h in status_of(register_stub, 2).history]
    assert per_call[:3] == [
        "列入白名单（无事不扰），有效期至2027-07-01",
        "有效期届满",
        "企业信息登记/更新（列入白名单）",
    ]
