"""UpsertEnterprise, GetEnterpriseStatus, ListWhitelist on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from tests.integration.conftest import decisions, upsert, violations
from tests.support import profile, uscc


def test_upsert_stores_evaluates_and_grants_the_white_list(register_stub) -> None:  # type: ignore[no-untyped-def]
    status = upsert(register_stub, profile(1))
    assert status.decision.status == pb.STATUS_WHITELIST
    assert status.decision.decision_id
    assert status.whitelist_entry.granted_on == "2026-06-30"
    assert status.whitelist_entry.valid_until == "2027-06-30"
    again = register_stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
    )
    assert again.decision.decision_id == status.decision.decision_id
    assert again.profile.name == "测试企业1"
    assert [h.kind for h in again.history] == ["whitelist_granted", "decision"]


def test_upsert_again_records_history_and_merges_hazards(register_stub) -> None:  # type: ignore[no-untyped-def]
    hazard = {
        "hazard_id": "H1",
        "clause_ref": "GEN:ledger",
        "severity": "general",
        "found_on": "2026-06-01",
        "due_on": "2026-07-01",
        "status": "open",
    }
    upsert(register_stub, profile(1, hazards=[hazard]))
    status = upsert(register_stub, profile(1, name="新名称", facts={"gen.training_missing": True}))
    assert status.profile.name == "新名称"
    assert [h.hazard_id for h in status.profile.hazards] == ["H1"]  # kept, not wiped
    assert {f.clause_ref for f in status.decision.findings} == {"GEN:ledger", "GEN:training"}
    assert len(decisions(status)) == 2
    assert not status.HasField("whitelist_entry")


def test_upsert_invalid_profile_writes_nothing(register_stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        upsert(register_stub, profile(1, employees=-1))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        register_stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_whitelist_by_region_with_opaque_page_tokens(register_stub) -> None:  # type: ignore[no-untyped-def]
    for n in range(1, 8):
        upsert(register_stub, profile(n, region="稠城街道" if n % 2 else "北苑街道"))
    upsert(register_stub, profile(9, region="稠城街道", specialized_sme=False))  # not listed
    seen, token = [], ""
    while True:
        page = register_stub.ListWhitelist(
            pb.ListWhitelistRequest(region="稠城街道", page_size=2, page_token=token), timeout=10
        )
        assert len(page.entries) <= 2
        seen += [e.enterprise_id for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(uscc(n) for n in (1, 3, 5, 7))
    everything = register_stub.ListWhitelist(pb.ListWhitelistRequest(page_size=100), timeout=10)
    assert len(everything.entries) == 7 and not everything.next_page_token


@pytest.mark.parametrize("enterprise_id", ["", "abc", "91330782MA2000001X"])
def test_a_status_asked_for_no_credit_code_names_the_field(  # type: ignore[no-untyped-def]
    register_stub, enterprise_id: str
) -> None:
    """Review 47b N4: "abc" answered NOT_FOUND, as if it were a firm not registered."""
    with pytest.raises(grpc.RpcError) as info:
        register_stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=enterprise_id), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(info.value)) == ["enterprise_id"]


def test_a_firm_moving_region_while_paged_is_listed_once(register_stub) -> None:  # type: ignore[no-untyped-def]
    """Review 47b F4: by (region, firm), a firm listed on page 1 that moved to a region
    sorting later was listed again on a later page. Every firm of the first page moves
    to the other township; the county-wide listing still names each firm once."""
    regions = {"稠城街道": "北苑街道", "北苑街道": "稠城街道"}
    for n in range(1, 7):
        upsert(register_stub, profile(n, region="稠城街道" if n % 2 else "北苑街道"))
    first = register_stub.ListWhitelist(
        pb.ListWhitelistRequest(region="义乌市", page_size=2), timeout=10
    )
    seen = [e.enterprise_id for e in first.entries]
    for entry in first.entries:
        n = next(n for n in range(1, 7) if uscc(n) == entry.enterprise_id)
        upsert(register_stub, profile(n, region=regions[entry.region]))
    token = first.next_page_token
    while token:
        page = register_stub.ListWhitelist(
            pb.ListWhitelistRequest(region="义乌市", page_size=2, page_token=token), timeout=10
        )
        seen += [e.enterprise_id for e in page.entries]
        token = page.next_page_token
    assert sorted(seen) == sorted(uscc(n) for n in range(1, 7))  # each once


def test_a_page_token_of_one_listing_is_refused_by_another(register_stub) -> None:  # type: ignore[no-untyped-def]
    """Review 47b F3: a ListWhitelist token sent to ListEnterprises answered an empty last
    page, as if the listing were over."""
    for n in range(1, 4):
        upsert(register_stub, profile(n))
    page = register_stub.ListWhitelist(
        pb.ListWhitelistRequest(region="稠城街道", page_size=1), timeout=10
    )
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ListEnterprises(
            pb.ListEnterprisesRequest(region="稠城街道", page_token=page.next_page_token),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(info.value)) == ["page_token"]


def test_bad_page_tokens_are_invalid_argument(register_stub) -> None:  # type: ignore[no-untyped-def]
    for n in range(1, 4):
        upsert(register_stub, profile(n))
    page = register_stub.ListWhitelist(
        pb.ListWhitelistRequest(region="稠城街道", page_size=1), timeout=10
    )
    for request in (
        pb.ListWhitelistRequest(region="北苑街道", page_token=page.next_page_token),
        pb.ListWhitelistRequest(page_token="not-a-token!"),
        pb.ListWhitelistRequest(page_size=100_000),
    ):
        with pytest.raises(grpc.RpcError) as info:
            register_stub.ListWhitelist(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_register_rpcs_without_a_database_fail_cleanly(rules_stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_health_is_not_serving_while_the_database_is_unreachable(rulebook, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common import server as common_server
    from services.common.db import make_engine
    from services.rules.entrypoints import grpc_server

    def status_of(engine) -> int:  # type: ignore[no-untyped-def]
        running = grpc_server.build(rulebook, engine=engine, address="127.0.0.1:0", max_workers=2)
        running.server.start()
        stop = common_server.watch_database(
            engine, running.health, [grpc_server.SERVICE_NAME], interval=0.1
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                request = health_pb2.HealthCheckRequest(service="rules.v1.RulesService")
                deadline = time.monotonic() + 20
                status = health.Check(request, timeout=5).status
                while (
                    status == health_pb2.HealthCheckResponse.SERVING
                    and time.monotonic() < deadline
                    and engine.url.port == 1
                ):
                    time.sleep(0.1)
                    status = health.Check(request, timeout=5).status
                return int(status)
        finally:
            stop.set()
            running.server.stop(None)

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=1")
    assert status_of(down) == health_pb2.HealthCheckResponse.NOT_SERVING
    up = make_engine(f"sqlite:///{tmp_path / 'ok.db'}")
    assert status_of(up) == health_pb2.HealthCheckResponse.SERVING


def test_units_of_work_share_one_session_factory_and_add_no_listeners(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A week of calls must not grow SQLAlchemy's global event registry (the soak saw
    RSS climb by about 1 MB per thousand calls when each unit of work installed the audit
    listeners on a session factory of its own)."""
    import gc

    from sqlalchemy.event import registry

    from services.common.db import make_engine
    from services.rules.adapters import migrate
    from services.rules.service_layer.unit_of_work import UnitOfWork

    engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}")
    migrate.upgrade(engine)
    with UnitOfWork(engine):
        pass
    gc.collect()  # listeners of engines other tests dropped may go at any time: only
    before = len(registry._key_to_collection)  # growth counts (a leak adds 3 per call)
    for _ in range(200):
        with UnitOfWork(engine) as uow:
            uow.register.firm("91330782MA2000001K")
    gc.collect()
    assert len(registry._key_to_collection) <= before
    assert UnitOfWork(engine)._factory is UnitOfWork(engine)._factory
    engine.dispose()
