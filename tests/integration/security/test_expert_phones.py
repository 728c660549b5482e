"""An expert's mobile is answered whole to booking.admin only (README "Security", Roles:
"Phone numbers are masked except for booking.admin"; the proto's `Expert.phone`), like an
order's contact: every other reader of the expert pool (a booking.read staff system, each
expert's own token, an inspector) reads it masked, 138****5678 (review 58 F3: ListExperts
gave every expert's mobile whole to booking.read, so to every other expert)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.auth import TokenStore
from services.common.security import Security
from tests.booking_env import Pair, running_pair

TOKENS = {
    "admin": {"scopes": ["booking.admin"]},
    "staff-admin": {"scopes": ["booking.admin", "booking.inspector", "booking.read"]},
    "reader": {"scopes": ["booking.read"]},
    "e1": {"scopes": ["booking.expert", "booking.read"], "expert_id": "E1"},
    "inspector": {"scopes": ["booking.inspector", "booking.read"], "region": "稠城街道"},
}
WHOLE = {"E1": "13812345678", "E2": "13987654321", "E3": ""}
MASKED = {"E1": "138****5678", "E2": "139****4321", "E3": ""}


def _bearer(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {name}-token-0123456789"),)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[Pair, booking_pb2_grpc.BookingServiceStub]]:
    """Three experts (one without a mobile) and a booking server that checks tokens."""
    with running_pair(tmp_path) as pair:
        for expert_id, phone in WHOLE.items():
            expert = bpb.Expert(
                expert_id=expert_id,
                name=f"专家{expert_id}",
                phone=phone,
                domains=["gas"],
                regions=["稠城街道"],
            )
            pair.booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), timeout=10)
        entries = [
            {"caller": f"{name}-caller", "token": f"{name}-token-0123456789", **fields}
            for name, fields in TOKENS.items()
        ]
        path = tmp_path / "tokens.json"
        path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
        server, port = booking_grpc.create_server(
            pair.ctx, pair.booking_engine, security=Security(TokenStore.load(path))
        )
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield pair, booking_pb2_grpc.BookingServiceStub(channel)
        finally:
            channel.close()
            server.stop(None)


def _phones(stub: booking_pb2_grpc.BookingServiceStub, name: str) -> dict[str, str]:
    listed = stub.ListExperts(bpb.ListExpertsRequest(), metadata=_bearer(name), timeout=10)
    return {e.expert_id: e.phone for e in listed.experts}


def test_list_experts_masks_every_mobile_but_to_booking_admin(
    pool: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    _, stub = pool
    assert _phones(stub, "admin") == WHOLE
    assert _phones(stub, "staff-admin") == WHOLE
    for name in ("reader", "e1", "inspector"):  # e1 its own entry too: one rule, README's
        assert _phones(stub, name) == MASKED, name


def test_upsert_expert_answers_booking_admin_the_mobile_as_stored(
    pool: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    _, stub = pool
    expert = bpb.Expert(
        expert_id="E4", name="专家E4", phone="13700001111", domains=["gas"], regions=["稠城街道"]
    )
    saved = stub.UpsertExpert(
        bpb.UpsertExpertRequest(expert=expert), metadata=_bearer("admin"), timeout=10
    )
    assert saved.phone == "13700001111"
    assert _phones(stub, "reader")["E4"] == "137****1111"


def test_a_mobile_sent_with_spaces_or_dashes_is_stored_as_its_eleven_digits(
    pool: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    """As an order's contact_phone: stored as the number, so that its mask shows the
    number's ends (138****5678) rather than nothing ("***" for any other length)."""
    _, stub = pool
    expert = bpb.Expert(
        expert_id="E5", name="专家E5", phone="136-1234 0000", domains=["gas"], regions=["稠城街道"]
    )
    saved = stub.UpsertExpert(
        bpb.UpsertExpertRequest(expert=expert), metadata=_bearer("admin"), timeout=10
    )
    assert saved.phone == "13612340000"
    assert _phones(stub, "reader")["E5"] == "136****0000"
    assert _phones(stub, "admin")["E5"] == "13612340000"


def test_every_answer_carrying_an_order_s_contact_follows_the_same_rule(
    pool: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    """The order's contact is masked except for booking.admin in every answer that carries
    it (ListOrders, GetOrder, DispatchOrder, CancelOrder): ListOrders, DispatchOrder and
    CancelOrder masked it to booking.admin too while GetOrder did not."""
    pair, stub = pool
    firm = pair.register_firm(1)
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(pair.order_request(token, phone="13512345678"), timeout=10)
    assert placed.expert_id == "", placed  # no expert of fire_crowded: it waits

    def listed(name: str) -> list[str]:
        answer = stub.ListOrders(bpb.ListOrdersRequest(), metadata=_bearer(name), timeout=10)
        return [o.contact_phone for o in answer.orders]

    def got(name: str) -> str:
        ask = bpb.GetOrderRequest(order_id=placed.order_id)
        return stub.GetOrder(ask, metadata=_bearer(name), timeout=10).contact_phone

    assert listed("admin") == ["13512345678"] and got("admin") == "13512345678"
    assert listed("reader") == ["135****5678"] and got("reader") == "135****5678"
    assert listed("inspector") == ["135****5678"]
    dispatched = stub.DispatchOrder(
        bpb.DispatchOrderRequest(order_id=placed.order_id), metadata=_bearer("admin"), timeout=10
    )
    assert dispatched.contact_phone == "13512345678"
    cancelled = stub.CancelOrder(
        bpb.CancelOrderRequest(order_id=placed.order_id, reason="企业停业"),
        metadata=_bearer("admin"),
        timeout=10,
    )
    assert cancelled.contact_phone == "13512345678"


def test_a_masked_mobile_written_back_unchanged_keeps_the_stored_one(
    pool: tuple[Pair, booking_pb2_grpc.BookingServiceStub],
) -> None:
    """Review 66 point 3: a client that read an expert masked (any reader but
    booking.admin) and writes the entry back with another field changed keeps the stored
    mobile; a masked value that is not the stored number's mask (another number's, a
    new expert's) is refused with INVALID_ARGUMENT on expert.phone, saying why."""
    _, stub = pool
    read = next(
        e
        for e in stub.ListExperts(
            bpb.ListExpertsRequest(), metadata=_bearer("reader"), timeout=10
        ).experts
        if e.expert_id == "E1"
    )
    assert read.phone == "138****5678"
    read.name = "专家E1（改名）"
    saved = stub.UpsertExpert(
        bpb.UpsertExpertRequest(expert=read), metadata=_bearer("admin"), timeout=10
    )
    assert saved.phone == WHOLE["E1"] and saved.name == "专家E1（改名）"
    assert _phones(stub, "admin")["E1"] == WHOLE["E1"]
    for expert_id, phone in (("E1", "139****5678"), ("E9", "138****5678")):
        other = bpb.Expert(
            expert_id=expert_id, name="专家", phone=phone, domains=["gas"], regions=["稠城街道"]
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.UpsertExpert(
                bpb.UpsertExpertRequest(expert=other), metadata=_bearer("admin"), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expert.phone" in refused.value.details()
        assert messages.EXPERT_PHONE_MASKED in refused.value.details()
    assert _phones(stub, "admin")["E1"] == WHOLE["E1"]
