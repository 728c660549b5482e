"""ListWhitelistSizes: the white list's size month by month, from the stored entries,
on SQLite and PostgreSQL (the supervisors' chart in booking asks for it)."""

from __future__ import annotations

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.entrypoints.access import RULES_METHODS
from tests.integration.conftest import upsert
from tests.support import profile, uscc


def sizes(stub, **request: str) -> list[tuple[str, str, int, int, int]]:  # type: ignore[no-untyped-def]
    found = stub.ListWhitelistSizes(pb.ListWhitelistSizesRequest(**request), timeout=10)
    return [(s.month, s.as_of, s.size, s.granted, s.closed) for s in found.sizes]


def test_sizes_follow_grants_and_revocations_month_by_month(register_stub) -> None:  # type: ignore[no-untyped-def]
    upsert(register_stub, profile(1, region="稠城街道"), as_of="2026-01-15")
    upsert(register_stub, profile(2, region="北苑街道"), as_of="2026-03-10")
    upsert(register_stub, profile(3, region="北苑街道", specialized_sme=False), "2026-02-01")
    revoked = upsert(
        register_stub,
        profile(2, region="北苑街道", facts={"gen.training_missing": True}),
        as_of="2026-05-05",
    )
    assert not revoked.HasField("whitelist_entry")
    assert sizes(register_stub, from_month="2026-01", to_month="2026-06") == [
        ("2026-01", "2026-01-31", 1, 1, 0),
        ("2026-02", "2026-02-28", 1, 0, 0),
        ("2026-03", "2026-03-31", 2, 1, 0),
        ("2026-04", "2026-04-30", 2, 0, 0),
        ("2026-05", "2026-05-31", 1, 0, 1),
        ("2026-06", "2026-06-30", 1, 0, 0),  # today (the server's clock)
    ]
    north = sizes(register_stub, region="北苑街道", from_month="2026-02", to_month="2026-05")
    assert [(m, n) for m, _, n, _, _ in north] == [
        ("2026-02", 0),
        ("2026-03", 1),
        ("2026-04", 1),
        ("2026-05", 0),
    ]
    county = sizes(register_stub, region="330782", from_month="2026-03", to_month="2026-03")
    assert county == [("2026-03", "2026-03-31", 2, 1, 0)]
    # default: the twelve months ending with this one; none after today's month
    default = sizes(register_stub)
    assert default[0][0] == "2025-07" and len(default) == 12
    assert [m for m, *_ in sizes(register_stub, from_month="2026-05", to_month="2026-09")] == [
        "2026-05",
        "2026-06",
    ]


def listed_today(stub) -> list[str]:  # type: ignore[no-untyped-def]
    found = stub.ListWhitelist(pb.ListWhitelistRequest(), timeout=10)
    return [e.enterprise_id for e in found.entries]


def test_the_list_its_sizes_and_the_gate_agree_on_a_revocation_dated_tomorrow(
    register_stub,  # type: ignore[no-untyped-def]
) -> None:
    """Review 53 N5: an ACCIDENT dated tomorrow revoked the entry as of tomorrow; the
    firm was off ListWhitelist and the gate let a routine visit go ahead today, yet
    ListWhitelistSizes counted it as listed today. A closure is dated no later than the
    day it is made: off the list today for all three."""
    upsert(register_stub, profile(1))
    upsert(register_stub, profile(2))
    assert sizes(register_stub, from_month="2026-06")[0][2] == 2
    reported = register_stub.ReportEvent(
        pb.ReportEventRequest(
            event=pb.EnterpriseEvent(
                event_id="acc-tomorrow",
                enterprise_id=uscc(1),
                kind=pb.EVENT_KIND_ACCIDENT,
                occurred_on="2026-07-01",
                accident=pb.AccidentDetail(level=pb.ACCIDENT_LEVEL_GENERAL, deaths=1),
            )
        ),
        timeout=30,
    )
    [item] = [h for h in reported.history if h.kind == "whitelist_revoked"]
    assert item.whitelist_entry.revoked_on == "2026-06-30"  # today, the first day off
    assert listed_today(register_stub) == [uscc(2)]
    assert sizes(register_stub, from_month="2026-06") == [("2026-06", "2026-06-30", 1, 2, 1)]
    visit = register_stub.CheckInspection(
        pb.CheckInspectionRequest(
            enterprise_id=uscc(1),
            authority="A",
            kind=pb.INSPECTION_KIND_ROUTINE,
            planned_on="2026-06-30",
        ),
        timeout=30,
    )
    assert (visit.allowed, visit.reason_code) == (True, "allowed")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"from_month": "2026-13"}, "from_month"),
        ({"to_month": "June"}, "to_month"),
        ({"from_month": "2026-05", "to_month": "2026-04"}, "from_month"),
        ({"from_month": "2020-01", "to_month": "2026-06"}, "to_month"),  # over 36 months
        ({"region": "稠城"}, "region"),
    ],
)
def test_bad_requests_name_the_field(register_stub, request_fields, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ListWhitelistSizes(pb.ListWhitelistSizesRequest(**request_fields), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")


def test_it_needs_the_read_scope_booking_holds() -> None:
    rule = RULES_METHODS["/rules.v1.RulesService/ListWhitelistSizes"]
    assert rule == RULES_METHODS["/rules.v1.RulesService/ListWhitelist"]
