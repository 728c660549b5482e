"""What is out of a staff person's or a firm's reach reads as unknown (branch
reach-notfound), against real booking and rules gRPC servers and the staff site over
real HTTP: another region's ticket on the inspector's pages (the ticket, its recheck),
another expert's ticket on an expert's, another expert's order on the visit form's
submit are each answered as an id that names nothing, where they were 403, which told
that the record exists. RecheckTicket and RecordVisit over gRPC: tests/integration/
security/test_staff_reach.py; a firm's session asking GetOrder for another firm's order:
tests/integration/booking/test_firm_access.py."""

from __future__ import annotations

import re

import httpx

from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import ledger_visit_form
from tests.e2e.test_staff_pages import dispatched, proof_waiting
from tests.integration.booking.test_staff_fixes import Web, web  # noqa: F401


def _unknown(record_id: str) -> str:
    """An id of the same form as `record_id` that names nothing."""
    return record_id[:-1] + ("0" if record_id[-1] != "0" else "1")


def _pages(send: object, record_id: str) -> list[tuple[int, str]]:
    """The answers (status, page with the asked id written "…") for `record_id` and for
    an id that names nothing."""
    answers = []
    for asked in (record_id, _unknown(record_id)):
        page: httpx.Response = send(asked)  # type: ignore[operator]
        answers.append((page.status_code, page.text.replace(asked, "…")))
    return answers


def test_another_regions_or_experts_ticket_reads_as_an_unknown_one_on_the_staff_pages(
    web: Web,  # noqa: F811
) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道", "江东街道"])
    pair.expert("E2", ["dust_explosion"], ["稠城街道"])
    elsewhere = proof_waiting(pair, 81, "江东街道", "外辖区隐患")  # found by E1
    web.user("wangfang", "inspector", region="稠城街道")
    web.user("zhuanjia", "expert", expert_id="E2")
    for person in ("wangfang", "zhuanjia"):
        c, tok = web.signed_in(person)
        form = {"csrf": tok, "result": "pass", "note": "已整改到位", "new_due_on": ""}
        for name, send in (
            ("page", lambda asked, c=c: c.get(f"/staff/tickets/{asked}")),
            ("recheck", lambda asked, c=c, f=form: c.post(f"/staff/tickets/{asked}", data=f)),
        ):
            pages = _pages(send, elsewhere)
            assert pages[0] == pages[1], (person, name)
            assert pages[0][0] == 404, (person, name)
            assert messages.PAGE_STAFF_NOT_FOUND[1] in pages[0][1], (person, name)
            assert "外辖区隐患" not in pages[0][1], (person, name)
    web.user("chief", "inspector", region="江东街道")  # the finding photo's address
    chief, _ = web.signed_in("chief")
    photo = re.search(r"/staff/photos/([^\"?]+)", chief.get(f"/staff/tickets/{elsewhere}").text)
    assert photo, "the ticket page shows no photo"
    for person in ("wangfang", "zhuanjia"):
        c, _ = web.signed_in(person)
        pages = _pages(lambda asked, c=c: c.get(f"/staff/photos/{asked}"), photo.group(1))
        assert pages[0] == pages[1] and pages[0][0] == 404, person
    ticket = pair.booking.ListTickets(bpb.ListTicketsRequest(), timeout=10).tickets[0]
    assert ticket.ticket_id == elsewhere and ticket.status == bpb.TICKET_STATUS_SUBMITTED


def test_another_experts_order_reads_as_an_unknown_one_on_the_visit_forms_submit(
    web: Web,  # noqa: F811
) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    pair.expert("E2", ["dust_explosion"], ["江东街道"])
    theirs, _ = dispatched(pair, 82, "江东街道", expert="E2")
    web.user("zhuanjia", "expert", expert_id="E1")
    c, tok = web.signed_in("zhuanjia")
    forms = {
        "a whole visit": ledger_visit_form(tok, "台账缺失"),
        "no minutes": {"csrf": tok, "minutes_on_site": "半小时"},  # refused with the rest
    }
    for name, form in forms.items():
        pages = _pages(lambda asked, f=form: c.post(f"/staff/orders/{asked}/visit", data=f), theirs)
        assert pages[0] == pages[1], name
        assert pages[0][0] == 404, name
        assert messages.PAGE_STAFF_NOT_FOUND[1] in pages[0][1], name
    order = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=theirs), timeout=10)
    assert order.status == bpb.ORDER_STATUS_DISPATCHED
