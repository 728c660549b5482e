"""gRPC RecordVisit takes the largest visit the limits allow (review of the 8 MB cap):
50 findings with descriptions of 1000 characters and photos of 100 MB together (20 of
5 MB), which the expert's page takes too. The server's message limit used to be 8 MB,
so a gRPC caller sending two full-size photos was refused RESOURCE_EXHAUSTED by gRPC
itself. Photos past the 100 MB in a message within the limit are refused naming the
photo, as on the page; a message past the limit is refused by gRPC, RESOURCE_EXHAUSTED,
the limit in its detail; the server goes on serving. A real server, SQLite."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import select

from services.booking.adapters.orm import photos, tickets
from services.booking.domain import messages
from services.booking.domain.findings import MAX_FINDINGS, MAX_TEXT, MAX_VISIT_PHOTO_BYTES
from services.booking.domain.photos import MAX_PHOTO_BYTES
from services.booking.entrypoints.grpc_server import MAX_RECORD_VISIT_BYTES
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, count_rows, ledger_visit
from tests.e2e.test_staff_pages import dispatched
from tests.integration.booking.test_web_review_47a import jpeg
from tests.integration.conftest import violations

FULL = MAX_VISIT_PHOTO_BYTES // MAX_PHOTO_BYTES  # 5 MB photos that fill a visit: 20


def _visit(order_id: str, sizes: list[int]) -> bpb.RecordVisitRequest:
    """MAX_FINDINGS findings, each described in MAX_TEXT characters (3 bytes each as
    sent), the first len(sizes) with a photo of that size."""
    request = ledger_visit(order_id, *("隐" * MAX_TEXT for _ in range(MAX_FINDINGS)))
    for n, size in enumerate(sizes):
        request.findings[n].photos.append(bpb.Photo(content=jpeg(size, n)))
    return request


def _count(pair: Pair, table: object, **where: str) -> int:
    return count_rows(pair.booking_engine, table, **where)


def test_the_largest_visit_is_recorded_over_grpc(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 80, "稠城街道")
    largest = _visit(order_id, [MAX_PHOTO_BYTES] * FULL)
    assert largest.ByteSize() < MAX_RECORD_VISIT_BYTES
    recorded = pair.booking.RecordVisit(largest, timeout=300)
    assert len(recorded.tickets) == MAX_FINDINGS
    assert _count(pair, tickets, order_id=order_id) == MAX_FINDINGS
    with pair.booking_engine.connect() as conn:
        sizes = conn.execute(select(photos.c.size)).scalars().all()
    assert sorted(sizes) == [MAX_PHOTO_BYTES] * FULL


def test_a_larger_visit_is_refused_clearly_and_the_server_goes_on(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 81, "稠城街道")
    # within the message limit, past the visit's photos: the photo past them is named
    over_photos = _visit(order_id, [MAX_PHOTO_BYTES] * FULL + [1000])
    assert over_photos.ByteSize() < MAX_RECORD_VISIT_BYTES
    with pytest.raises(grpc.RpcError) as refused:
        pair.booking.RecordVisit(over_photos, timeout=300)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    total = messages.VISIT_PHOTO_OVER_TOTAL.format(total=MAX_VISIT_PHOTO_BYTES // 2**20)
    assert violations(refused.value) == {f"findings[{FULL}].photos[0]": total}
    # past the message limit: refused by gRPC before any field is read, the limit said
    too_big = _visit(order_id, [MAX_PHOTO_BYTES] * (FULL + 1))
    assert too_big.ByteSize() > MAX_RECORD_VISIT_BYTES
    with pytest.raises(grpc.RpcError) as exhausted:
        pair.booking.RecordVisit(too_big, timeout=300)
    assert exhausted.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_RECORD_VISIT_BYTES) in str(exhausted.value.details())
    assert _count(pair, tickets, order_id=order_id) == 0
    # the server goes on: the visit the limits allow is recorded
    done = pair.booking.RecordVisit(_visit(order_id, [MAX_PHOTO_BYTES] * 2), timeout=300)
    assert len(done.tickets) == MAX_FINDINGS


def _message(number: int, size: int) -> bytes:
    """The bytes of a message of one length-delimited field `number` of `size` 'a's."""
    length, left = bytearray(), size
    while True:
        length.append(left & 0x7F | (0x80 if left >> 7 else 0))
        left >>= 7
        if not left:
            return bytes([number << 3 | 2]) + bytes(length) + b"a" * size


PAST_8_MB = 9 * 1024 * 1024


def _call(port: int, method: str, request: bytes, stream: bool = False) -> grpc.RpcError:
    with (
        grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 2 * PAST_8_MB)]
        ) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        if stream:
            next(iter(channel.unary_stream(method)(request, timeout=60)))
        else:
            channel.unary_unary(method)(request, timeout=60)
    return refused.value


def test_only_record_visit_takes_more_than_8_mb(sqlite_pair: Pair) -> None:
    """Review 73: the 104 MB limit was every method's, so anyone, unauthenticated, could
    make booking read 100 MB into each of its 82 reading threads (8 calls, 8 database
    calls, 2 refusals, 64 health watchers, whose Watch kept its request while open):
    16 such Watch streams took the server to 4.9 GB. Every other method is refused past
    8 MB before its request is decoded, RESOURCE_EXHAUSTED as gRPC's own limit."""
    port = sqlite_pair.booking_port
    health = "/grpc.health.v1.Health/"
    items = "/booking.v1.BookingService/ListServiceItems"
    for method, request, stream in (
        (health + "Check", _message(1, PAST_8_MB), False),  # the service's name
        (health + "Watch", _message(1, PAST_8_MB), True),
        (items, _message(15, PAST_8_MB), False),  # a field it does not know
    ):
        refused = _call(port, method, request, stream)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, method
        assert "RecordVisit" in str(refused.details())
    # RecordVisit still reads it (and refuses what it holds, naming the field)
    refused = _call(port, "/booking.v1.BookingService/RecordVisit", _message(1, PAST_8_MB))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    # 8 MB itself is still every method's
    assert sqlite_pair.booking.ListServiceItems(bpb.ListServiceItemsRequest(), timeout=10)
