"""Review 72 (integrator's view): booking names a bad item of a list by its index as sent
(`preferred_slots[1]`), as rules names `profile.hazards[1].clause_ref` and as docs/api.md's
convention says; a problem of the list as a whole (too few, too many) names the list.
Real booking and rules gRPC servers, on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair
from tests.integration.booking.test_bad_values import refusal


def fields(pair: Pair, call: object) -> list[str]:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return [v.field for v in refusal(info.value)[1]]


def test_create_order_names_the_bad_slot_item_and_clause_ref_by_index(pair: Pair) -> None:
    firm = pair.register_firm(7)
    token = pair.issue(firm).token

    def order(**changes: object) -> object:
        request = pair.order_request(token)
        for name, value in changes.items():
            request.ClearField(name)
            getattr(request, name).extend(value)  # type: ignore[arg-type]
        return lambda: pair.booking.CreateOrder(request, timeout=30)

    written_wrong = [pair.slot(1), pair.slot(2).lower().replace(" am", " noon"), pair.slot(3)]
    assert fields(pair, order(preferred_slots=written_wrong)) == ["preferred_slots[1]"]
    # a repeat and a blank before it still count: the index is the one sent
    too_far = [pair.slot(1), pair.slot(1), " ", pair.slot(60)]
    assert fields(pair, order(preferred_slots=too_far)) == ["preferred_slots[3]"]
    assert fields(pair, order(preferred_slots=[pair.slot(1)])) == ["preferred_slots"]
    unknown = ["fire_safety", "mining", "fire_safety", "Fire_Safety"]
    assert fields(pair, order(item_codes=unknown)) == ["item_codes[1]", "item_codes[3]"]
    refs = ["GEN:ledger", "GEN:ledger", "not a clause"]
    assert fields(pair, order(clause_refs=refs)) == ["clause_refs[2]"]


def test_upsert_expert_names_the_bad_slot_domain_region_and_conflict_by_index(
    pair: Pair,
) -> None:
    expert = bpb.Expert(
        expert_id="E7",
        name="专家",
        domains=["dust_explosion", "dust_explosion", "mining"],
        regions=["稠城街道", "稠城街道", "不存在的镇"],
        slots=[pair.slot(1), "tomorrow"],
        max_visits_per_day=2,
        conflicts=["NOT-A-CODE"],
    )
    found = fields(
        pair, lambda: pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=30)
    )
    assert sorted(found) == [
        "expert.conflicts[0]",
        "expert.domains[2]",
        "expert.regions[2]",
        "expert.slots[1]",
    ]
