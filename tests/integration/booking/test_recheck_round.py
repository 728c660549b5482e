"""A recheck carries the proof it was opened on (recheck-round): the staff form and
RecheckTicket's `proof_number`. A tab opened before a failed recheck cannot later pass
the new proof the firm sent after it, which that tab never showed: the page answers 409
saying new proof arrived, keeps what was typed and links to the new proof; gRPC answers
FAILED_PRECONDITION with ErrorInfo reason PROOF_CHANGED. uvicorn on a real port, httpx,
SQLite (the gRPC refusal on PostgreSQL too); the gRPC servers of tests/booking_env."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, ledger_visit
from tests.e2e.test_staff_pages import PNG, dispatched, ticket
from tests.integration.booking.test_staff_fixes import Web, _web
from tests.integration.booking.test_staff_pages_review_59 import links, text_of


@pytest.fixture
def web(sqlite_pair: Pair) -> Iterator[Web]:
    yield from _web(sqlite_pair)


def waiting_ticket(pair: Pair, n: int, text: str) -> tuple[str, str]:
    """A ticket of a 稠城街道 firm with its first proof in: (ticket id, the firm's QR
    token, which sends its proofs)."""
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, token = dispatched(pair, n, "稠城街道")
    visit = pair.booking.RecordVisit(ledger_visit(order_id, text), timeout=10)
    ticket_id = visit.tickets[0].ticket_id
    send_proof(pair, ticket_id, token, "第一次整改：已建立台账")
    return ticket_id, token


def send_proof(pair: Pair, ticket_id: str, token: str, note: str) -> bpb.Ticket:
    return pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=token, note=note, photo=bpb.Photo(content=PNG)
        ),
        timeout=10,
    )


def proof_of(page: str) -> str:
    """The form's `proof` field: the proof the page showed ("" when the form has none)."""
    found = re.search(r'name="proof" value="([^"]*)"', page)
    return found.group(1) if found else ""


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


# -- the staff page -------------------------------------------------------------------------------


def test_a_tab_opened_before_a_failed_recheck_cannot_pass_the_new_proof(web: Web) -> None:
    pair = web.pair
    ticket_id, token = waiting_ticket(pair, 31, "未建立台账")
    web.user("wangfang", "inspector", region="稠城街道")
    c, tok = web.signed_in("wangfang")
    url = f"/staff/tickets/{ticket_id}"

    tab_a = c.get(url).text  # opened on round 1's proof
    tab_b = c.get(url).text
    failed = {"csrf": tok, "result": "fail", "note": "照片不清楚", "new_due_on": "2026-07-20"}
    assert c.post(url, data={**failed, "proof": proof_of(tab_b)}).status_code == 303
    send_proof(pair, ticket_id, token, "第二次整改：台账已补全并张贴")  # round 2

    typed = "已核实\n台账齐全"
    sent = {"csrf": tok, "result": "pass", "note": typed, "proof": proof_of(tab_a)}
    refused = c.post(url, data=sent)
    assert refused.status_code == 409, refused.text[:300]
    assert ticket(pair, ticket_id).status == bpb.TICKET_STATUS_SUBMITTED  # not verified
    shown = text_of(refused.text)
    assert messages.RECHECK_PROOF_CHANGED in shown
    assert re.search(rf"{messages.RECHECK_YOU}已于.+复查不通过", shown)  # tab B, named
    assert "第2次提交" in shown
    assert typed in html.unescape(refused.text)  # what was typed, kept to copy
    assert "#proof" in links(refused.text) and messages.RECHECK_SEE_NEW_PROOF in shown
    assert "第二次整改：台账已补全并张贴" in shown  # the new proof, on the page
    assert proof_of(tab_a) == "1"

    # the form shown now is about the new proof, blank: a pass sent from it is saved
    assert proof_of(refused.text) == "2"
    assert 'value="pass" checked' not in refused.text
    done = c.post(url, data={"csrf": tok, "result": "pass", "proof": proof_of(refused.text)})
    assert done.status_code == 303
    assert ticket(pair, ticket_id).status == bpb.TICKET_STATUS_VERIFIED


def test_a_better_photo_sent_while_the_page_was_open_is_explained(web: Web) -> None:
    pair = web.pair
    ticket_id, token = waiting_ticket(pair, 32, "未建立台账")
    web.user("wangfang", "inspector", region="稠城街道")
    c, tok = web.signed_in("wangfang")
    url = f"/staff/tickets/{ticket_id}"
    opened = proof_of(c.get(url).text)
    send_proof(pair, ticket_id, token, "更清楚的照片")
    # a form with a mistake of its own gets the same explanation, not field errors
    refused = c.post(url, data={"csrf": tok, "result": "fail", "note": "", "proof": opened})
    assert refused.status_code == 409
    shown = text_of(refused.text)
    assert messages.RECHECK_PROOF_CHANGED in shown and "第2次提交" in shown
    assert "复查不通过" not in shown  # nobody rechecked it: only the new photo is told
    assert messages.RECHECK_NEEDS_NOTE not in shown
    assert ticket(pair, ticket_id).status == bpb.TICKET_STATUS_SUBMITTED


def test_the_page_checks_the_proof_it_was_opened_on_and_nothing_else(web: Web) -> None:
    pair = web.pair
    ticket_id, token = waiting_ticket(pair, 33, "未建立台账")
    web.user("wangfang", "inspector", region="稠城街道")
    c, tok = web.signed_in("wangfang")
    url = f"/staff/tickets/{ticket_id}"
    # a form that says no proof (one served before the form carried it): as before
    form = {"csrf": tok, "result": "fail", "note": "缺少责任人", "new_due_on": "2026-07-20"}
    assert c.post(url, data=form).status_code == 303
    send_proof(pair, ticket_id, token, "第二次整改")
    # a broken proof field: nothing saved, said above the form
    bad = c.post(url, data={"csrf": tok, "result": "pass", "proof": "第一次"})
    assert bad.status_code == 400
    assert messages.RECHECK_PAGE_BROKEN in text_of(bad.text)
    assert ticket(pair, ticket_id).status == bpb.TICKET_STATUS_SUBMITTED
    assert c.post(url, data={"csrf": tok, "result": "pass"}).status_code == 303


# -- gRPC -----------------------------------------------------------------------------------------


def test_recheck_ticket_refuses_a_conclusion_about_a_replaced_proof(pair: Pair) -> None:
    """On SQLite and PostgreSQL (where the check runs under the ticket's row lock)."""
    ticket_id, token = waiting_ticket(pair, 34, "未建立台账")
    read = ticket(pair, ticket_id)
    assert read.proof_number == 1
    fail = bpb.RecheckTicketRequest(
        ticket_id=ticket_id, passed=False, note="照片不清楚", new_due_on="2026-07-20",
        proof_number=read.proof_number,
    )  # fmt: skip
    assert pair.booking.RecheckTicket(fail, timeout=10).status == bpb.TICKET_STATUS_OPEN
    assert send_proof(pair, ticket_id, token, "第二次整改").proof_number == 2

    stale = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True, proof_number=1)
    with pytest.raises(grpc.RpcError) as refused:
        pair.booking.RecheckTicket(stale, timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(refused.value)
    assert (info.reason, info.domain) == ("PROOF_CHANGED", "booking.v1")
    assert dict(info.metadata) == {
        "ticket_id": ticket_id,
        "status": "submitted",
        "proof_number": "2",
    }
    assert ticket(pair, ticket_id).status == bpb.TICKET_STATUS_SUBMITTED

    # the proof it holds now: saved; again, for any proof: not waiting any more
    now = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True, proof_number=2)
    assert pair.booking.RecheckTicket(now, timeout=10).status == bpb.TICKET_STATUS_VERIFIED
    with pytest.raises(grpc.RpcError) as again:
        pair.booking.RecheckTicket(now, timeout=10)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(again.value).reason == "TICKET_NOT_SUBMITTED"


def test_recheck_ticket_without_proof_number_behaves_as_before(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    ticket_id, token = waiting_ticket(pair, 35, "未建立台账")
    send_proof(pair, ticket_id, token, "更清楚的照片")
    passed = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True)  # proof_number 0
    assert pair.booking.RecheckTicket(passed, timeout=10).status == bpb.TICKET_STATUS_VERIFIED
    negative = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True, proof_number=-1)
    with pytest.raises(grpc.RpcError) as bad:
        pair.booking.RecheckTicket(negative, timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(bad.value)  # type: ignore[arg-type]
    assert status is not None
    violation = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(violation)
    assert [v.field for v in violation.field_violations] == ["proof_number"]
