"""Review 62: the firm's proof form sent twice (a double tap without JavaScript, a
resubmit) stores one proof, on SQLite and PostgreSQL alike, also when both arrive at
once (the second waits for the ticket's lock, then finds the first's proof)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import photos
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.service_layer import tickets
from services.common.errors import ValidationError
from tests.booking_env import Pair
from tests.e2e.conftest import make_png
from tests.integration.booking.test_review_52_tickets import visited


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
