"""Review 62: the firm's proof form sent twice (a double tap without JavaScript, a
resubmit) stores one proof, on SQLite and PostgreSQL alike, also when both arrive at
once (the second waits for the ticket's lock, then finds the first's proof); over gRPC,
SubmitRectification's idempotency_key is checked and stored the same way."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import photos
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.service_layer import tickets
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.errors import ValidationError
from tests.booking_env import Pair
from tests.e2e.conftest import make_png
from tests.integration.booking.test_review_52_tickets import visited
from tests.integration.conftest import violations


def _proofs(pair: Pair, ticket_id: str) -> list[str | None]:
    with pair.booking_engine.connect() as db:
        query = select(photos.c.idempotency_key).where(
            photos.c.ticket_id == ticket_id, photos.c.purpose == "proof"
        )
        return list(db.scalars(query.order_by(photos.c.created_at, photos.c.id)))


def _send(
    pair: Pair, firm: str, ticket_id: str, key: str, note: str = "已整改", width: int = 16
) -> str:
    ticket = tickets.submit_rectification(
        UnitOfWork(pair.booking_engine),
        pair.ctx,
        ticket_id,
        FirmAccess(session_firm=firm),
        note=note,
        photo=make_png(width, 12),
        idempotency_key=key,
    )
    return str(ticket.proof_photo_id)


def test_the_same_form_twice_stores_one_proof(pair: Pair) -> None:
    firm, _token, ticket_id = visited(pair, 62)
    first = _send(pair, firm, ticket_id, "form-a")
    assert _send(pair, firm, ticket_id, "form-a") == first
    assert _proofs(pair, ticket_id) == ["form-a"]
    # another form (the page drawn again) is a proof of its own
    assert _send(pair, firm, ticket_id, "form-b", "更清楚的照片") != first
    assert _proofs(pair, ticket_id) == ["form-a", "form-b"]


def test_the_same_form_at_once_stores_one_proof(pair: Pair) -> None:
    firm, _token, ticket_id = visited(pair, 63)
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: _send(pair, firm, ticket_id, "form-a"), range(4)))
    assert len(set(ids)) == 1
    assert _proofs(pair, ticket_id) == ["form-a"]
    with pair.booking_engine.connect() as db:
        count = db.scalar(select(func.count()).select_from(photos))
    assert count == 1


# -- over gRPC: SubmitRectificationRequest.idempotency_key ---------------------------------


def _submit(
    pair: Pair, session: object, ticket_id: str, key: str, note: str = "已整改"
) -> bpb.Ticket:
    request = bpb.SubmitRectificationRequest(
        ticket_id=ticket_id,
        note=note,
        photo=bpb.Photo(content=make_png(16, 12), content_type="image/png"),
        idempotency_key=key,
    )
    return pair.booking.SubmitRectification(request, metadata=session, timeout=10)


def test_a_grpc_retry_with_the_same_key_stores_one_proof(pair: Pair) -> None:
    firm, token, ticket_id = visited(pair, 64)
    session = pair.sign_in(firm, token)
    first = _submit(pair, session, ticket_id, "proof-a")
    again = _submit(pair, session, ticket_id, "proof-a")  # the first answer was lost
    assert first.status == again.status == bpb.TICKET_STATUS_SUBMITTED
    assert again.proof_number == first.proof_number == 1
    assert list(again.history) == list(first.history)
    assert _proofs(pair, ticket_id) == ["proof-a"]
    # another key: a proof of its own (a better photo), as before
    better = _submit(pair, session, ticket_id, "proof-b", "更清楚的照片")
    assert better.proof_number == 2
    assert _proofs(pair, ticket_id) == ["proof-a", "proof-b"]
    # no key at all: every call a proof, as before
    assert _submit(pair, session, ticket_id, "").proof_number == 3
    assert _proofs(pair, ticket_id) == ["proof-a", "proof-b", ""]  # "": sent without a key


@pytest.mark.parametrize("key", ["k" * 65, "proof\x07a"])
def test_a_bad_grpc_proof_key_is_refused_naming_it(pair: Pair, key: str) -> None:
    firm, token, ticket_id = visited(pair, 65)
    with pytest.raises(grpc.RpcError) as refused:
        _submit(pair, pair.sign_in(firm, token), ticket_id, key)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations(refused.value)
    assert _proofs(pair, ticket_id) == []


def test_a_used_form_with_another_photo_or_note_is_refused_not_dropped(pair: Pair) -> None:
    """Review 73: the form a proof was sent from, sent again with another photo or note
    (the phone's back button after 提交整改, to send a better photo; or after the
    recheck failed, the new proof), was answered as the first proof, the ticket as it
    was: the page said nothing and the new photo was silently dropped. It is refused
    on `idempotency_key` (the page: 页面已过期, a new key, the note kept)."""
    firm, _token, ticket_id = visited(pair, 64)
    first = _send(pair, firm, ticket_id, "form-a")
    for changed in ({"width": 20}, {"note": "换了一张照片"}):
        with pytest.raises(ValidationError) as refused:
            _send(pair, firm, ticket_id, "form-a", **changed)  # type: ignore[arg-type]
        assert {v.field: v.description for v in refused.value.violations} == {
            "idempotency_key": messages.FORM_EXPIRED
        }
    assert _proofs(pair, ticket_id) == ["form-a"]
    assert _send(pair, firm, ticket_id, "form-a") == first  # the same form: one proof
