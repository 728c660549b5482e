"""Review 62: the firm's proof form sent twice (a double tap without JavaScript, a
resubmit) stores one proof, on SQLite and PostgreSQL alike, also when both arrive at
once (the second waits for the ticket's lock, then finds the first's proof)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from services.booking.adapters.orm import photos
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain.firm_access import FirmAccess
from services.booking.service_layer import tickets
from tests.booking_env import Pair
from tests.e2e.conftest import make_png
from tests.integration.booking.test_review_52_tickets import visited


def _proofs(pair: Pair, ticket_id: str) -> list[str | None]:
    with pair.booking_engine.connect() as db:
        query = select(photos.c.idempotency_key).where(
            photos.c.ticket_id == ticket_id, photos.c.purpose == "proof"
        )
        return list(db.scalars(query.order_by(photos.c.created_at, photos.c.id)))


def _send(pair: Pair, firm: str, ticket_id: str, key: str, note: str = "已整改") -> str:
    ticket = tickets.submit_rectification(
        UnitOfWork(pair.booking_engine),
        pair.ctx,
        ticket_id,
        FirmAccess(session_firm=firm),
        note=note,
        photo=make_png(16, 12),
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
