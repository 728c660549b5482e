"""RecordVisit can be retried (reviews 67 and 68): a visit sent again with the
idempotency key it was recorded with (a lost answer, a double submit) answers the same
visit and tickets, nothing written again; another key meets the order no longer
DISPATCHED (FAILED_PRECONDITION) as before; a bad key is INVALID_ARGUMENT. Over gRPC on
SQLite and PostgreSQL; the staff visit form carries a key of its own (uvicorn, httpx,
SQLite)."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import func, select

from services.booking.adapters.orm import outbox, photos, tickets, visits
from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, count_rows, ledger_visit, ledger_visit_form
from tests.e2e.test_staff_pages import PNG, dispatched
from tests.integration.booking.test_staff_fixes import Web, hidden_value, sqlite_web  # noqa: F401
from tests.integration.booking.test_web_review_47a import expert_at_order
from tests.integration.conftest import violations


def _count(pair: Pair, table: object, **where: str) -> int:
    return count_rows(pair.booking_engine, table, **where)


def _visit(order_id: str, key: str) -> bpb.RecordVisitRequest:
    request = ledger_visit(
        order_id,
        "未建立隐患排查治理台账",
        "台账未按月更新",
        photos=[bpb.Photo(content=PNG, content_type="image/png")],
    )
    request.minutes_on_site = 45
    request.idempotency_key = key
    return request


def test_a_retry_with_the_same_key_answers_the_visit_recorded(pair: Pair) -> None:
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 41, "稠城街道")
    first = pair.booking.RecordVisit(_visit(order_id, "visit-form-1"), timeout=10)
    again = pair.booking.RecordVisit(_visit(order_id, "visit-form-1"), timeout=10)
    assert again.visit_id == first.visit_id
    assert [t.ticket_id for t in again.tickets] == [t.ticket_id for t in first.tickets]
    assert [t.description for t in again.tickets] == ["未建立隐患排查治理台账", "台账未按月更新"]
    assert (again.visited_on, again.minutes_on_site) == (first.visited_on, 45)
    assert _count(pair, visits, order_id=order_id) == 1
    assert _count(pair, tickets, order_id=order_id) == 2
    ids = [t.ticket_id for t in first.tickets]
    with pair.booking_engine.connect() as conn:
        stored = conn.execute(select(func.count()).where(photos.c.ticket_id.in_(ids))).scalar()
        firm = conn.execute(select(tickets.c.enterprise_id).limit(1)).scalar_one()
    assert stored == 2
    assert _count(pair, outbox, enterprise_id=firm) == 2  # one HAZARD_FOUND a finding
    # another key (another form, another client): the order is no longer DISPATCHED
    with pytest.raises(grpc.RpcError) as other:
        pair.booking.RecordVisit(_visit(order_id, "visit-form-2"), timeout=10)
    assert other.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # no key at all: as before
    with pytest.raises(grpc.RpcError) as none:
        pair.booking.RecordVisit(_visit(order_id, ""), timeout=10)
    assert none.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _count(pair, visits, order_id=order_id) == 1


@pytest.mark.parametrize("key", ["k" * 65, "visit\x07form"])
def test_a_bad_key_is_refused_naming_it(pair: Pair, key: str) -> None:
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 42, "稠城街道")
    with pytest.raises(grpc.RpcError) as refused:
        pair.booking.RecordVisit(_visit(order_id, key), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations(refused.value)
    assert _count(pair, visits, order_id=order_id) == 0


# -- the staff visit form -----------------------------------------------------------------


def _hidden_key(page: str) -> str:
    return hidden_value(page, "idempotency_key")


def test_the_visit_form_sent_twice_lands_on_the_done_page_both_times(sqlite_web: Web) -> None:  # noqa: F811
    pair, order_id, e, tok = expert_at_order(sqlite_web, 43)
    drawn = e.get(f"/staff/orders/{order_id}/visit?pick=GEN:ledger")
    assert drawn.status_code == 200
    key = _hidden_key(drawn.text)
    form = ledger_visit_form(
        tok,
        idempotency_key=key,
        minutes_on_site="一小时",  # refused first: the form comes back with its key
        on_site_mobile="13600001111",
    )
    refused = e.post(f"/staff/orders/{order_id}/visit", data=form)
    assert refused.status_code == 400
    assert _hidden_key(refused.text) == key
    form["minutes_on_site"] = "30"
    upload = {"photo_0": ("a.png", PNG, "image/png")}
    first = e.post(f"/staff/orders/{order_id}/visit", data=form, files=upload)
    again = e.post(f"/staff/orders/{order_id}/visit", data=form, files=upload)
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"] == "/staff/visits?recorded=1"
    assert messages.VISIT_NOT_OPEN not in again.text
    assert _count(pair, visits, order_id=order_id) == 1
    assert _count(pair, tickets, order_id=order_id) == 1
    assert sqlite_web.count(photos) == 1
    # another form's key: refused as before (the page says the order is visited)
    form["idempotency_key"] = "another-form"
    other = e.post(f"/staff/orders/{order_id}/visit", data=form)
    assert other.status_code == 400 and "不能再记录检查" in other.text
    assert _count(pair, visits, order_id=order_id) == 1


def test_a_refused_form_key_is_replaced_and_the_typing_kept(sqlite_web: Web) -> None:  # noqa: F811
    pair, order_id, e, tok = expert_at_order(sqlite_web, 44)
    form = ledger_visit_form(
        tok,
        idempotency_key="k" * 65,  # no page draws one: a tampered form
        on_site_mobile="13600001111",
    )
    refused = e.post(f"/staff/orders/{order_id}/visit", data=form)
    assert refused.status_code == 400
    assert messages.FORM_EXPIRED in refused.text and "台账缺失" in refused.text
    form["idempotency_key"] = _hidden_key(refused.text)
    assert form["idempotency_key"] != "k" * 65
    assert e.post(f"/staff/orders/{order_id}/visit", data=form).status_code == 303
    assert _count(pair, visits, order_id=order_id) == 1
