"""ListEnterprises on SQLite and PostgreSQL: a region's firms by name, code or county,
paged by enterprise_id with the shared token scheme; bad input is INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.paging import encode_token, query_key
from tests.integration.conftest import upsert
from tests.support import profile, uscc

CHOUCHENG = (1, 3, 5, 6)  # the rest: 北苑街道 (义乌市) and 城厢街道 (萧山区)


def _register(stub: RulesServiceStub) -> None:
    for n in (6, 1, 5, 3):  # stored out of order: answered by enterprise_id
        upsert(stub, profile(n, region="稠城街道"))
    upsert(stub, profile(2, region="北苑街道", industry="light_industry", specialized_sme=False))
    upsert(stub, profile(4, region="城厢街道"))


def _all(stub: RulesServiceStub, region: str, size: int) -> tuple[list[str], int]:
    seen: list[str] = []
    token, pages = "", 0
    while True:
        page = stub.ListEnterprises(
            pb.ListEnterprisesRequest(region=region, page_size=size, page_token=token), timeout=10
        )
        assert len(page.enterprises) <= size
        seen += [e.enterprise_id for e in page.enterprises]
        pages += 1
        token = page.next_page_token
        if not token:
            return seen, pages


def test_a_townships_firms_by_name_or_code_paged_by_enterprise_id(
    register_stub: RulesServiceStub,
) -> None:
    _register(register_stub)
    wanted = [uscc(n) for n in CHOUCHENG]
    assert sorted(wanted) == wanted
    assert _all(register_stub, "稠城街道", 3) == (wanted, 2)  # across pages
    assert _all(register_stub, "330782001", 2) == (wanted, 2)
    assert _all(register_stub, "稠城街道", 50) == (wanted, 1)
    first = register_stub.ListEnterprises(pb.ListEnterprisesRequest(region="北苑街道"), timeout=10)
    (firm,) = first.enterprises
    assert (firm.enterprise_id, firm.name, firm.region) == (uscc(2), "测试企业2", "北苑街道")
    assert firm.industry == pb.INDUSTRY_LIGHT_INDUSTRY
    assert firm.status not in (pb.STATUS_UNSPECIFIED, pb.STATUS_WHITELIST)
    listed = register_stub.ListEnterprises(pb.ListEnterprisesRequest(region="稠城街道"), timeout=10)
    assert listed.enterprises[0].status == pb.STATUS_WHITELIST


def test_a_county_means_all_its_townships_and_no_region_means_all(
    register_stub: RulesServiceStub,
) -> None:
    _register(register_stub)
    yiwu = sorted(uscc(n) for n in (*CHOUCHENG, 2))
    assert _all(register_stub, "义乌市", 50)[0] == yiwu
    assert _all(register_stub, "330782", 2)[0] == yiwu
    assert _all(register_stub, "", 4)[0] == sorted(uscc(n) for n in range(1, 7))


def test_bad_region_page_size_and_page_token_are_invalid_argument_naming_the_field(
    register_stub: RulesServiceStub,
) -> None:
    _register(register_stub)
    page = register_stub.ListEnterprises(
        pb.ListEnterprisesRequest(region="稠城街道", page_size=1), timeout=10
    )
    assert page.next_page_token
    for request, field in (
        (pb.ListEnterprisesRequest(region="稠城"), "region"),
        (pb.ListEnterprisesRequest(region="999999"), "region"),
        (
            pb.ListEnterprisesRequest(region="北苑街道", page_token=page.next_page_token),
            "page_token",
        ),
        (pb.ListEnterprisesRequest(page_token="not-a-token!"), "page_token"),
        # forged, with a NUL in the cursor (INTERNAL on PostgreSQL before review hunt 4)
        (
            pb.ListEnterprisesRequest(page_token=encode_token(query_key(""), "9133\x00")),
            "page_token",
        ),
        (pb.ListWhitelistRequest(page_token=encode_token(query_key(""), "9133\x00")), "page_token"),
        (pb.ListEnterprisesRequest(page_size=100_000), "page_size"),
        (pb.ListEnterprisesRequest(page_size=-1), "page_size"),
    ):
        method = (
            register_stub.ListWhitelist
            if isinstance(request, pb.ListWhitelistRequest)
            else register_stub.ListEnterprises
        )
        with pytest.raises(grpc.RpcError) as info:
            method(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (info.value.details() or "")
