"""The staff pages against review 59 (review-59.md): the expert who found a ticket
rechecks it and lands on a page they may open, with a list of their own findings (F1); a
recheck another tab already made is explained, what was typed kept (F2); the visit form
names every bad field at once (F5); the recheck queue shows an excerpt of a long
description, the ticket page all of it (F7). uvicorn on a real port, httpx, SQLite; the
line breaks (F6) are checked in a browser (tests/e2e/test_staff_pages.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest

from services.booking.domain import messages
from services.booking.entrypoints.web.labels import EXCERPT_CHARS
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, ledger_visit
from tests.e2e.test_staff_pages import dispatched, proof_waiting, ticket
from tests.integration.booking.test_staff_fixes import Web, _web


@pytest.fixture
def web(sqlite_pair: Pair) -> Iterator[Web]:
    yield from _web(sqlite_pair)


def text_of(page: str) -> str:
    """The page's text, tags dropped and entities read (what a person reads, roughly)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def links(page: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', page)


# -- F1: the expert who found a ticket rechecks it --------------------------------------------


def test_the_finding_expert_rechecks_from_their_own_list_and_lands_on_it(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    pair.expert("E2", ["dust_explosion"], ["稠城街道"])
    mine = proof_waiting(pair, 31, "稠城街道", "未建立台账甲")
    web.user("chen", "expert", expert_id="E1")
    web.user("lisi", "expert", expert_id="E2")
    e, tok = web.signed_in("chen")

    # the start page leads to the expert's findings, which lead to the ticket
    visits = e.get("/staff/visits")
    assert "/staff/findings" in links(visits.text)
    assert f"/staff/tickets/{mine}" in links(visits.text)  # under the visit that found it
    listed = e.get("/staff/findings")
    assert listed.status_code == 200
    assert f"/staff/tickets/{mine}" in links(listed.text)
    assert "测试五金31号厂" in listed.text and "未建立台账甲" in listed.text
    page = e.get(f"/staff/tickets/{mine}")
    assert page.status_code == 200
    assert "/staff/findings" in links(page.text) and "/staff/tickets" not in links(page.text)

    # the recheck is saved and the expert lands on a page they may open, saying so
    done = e.post(f"/staff/tickets/{mine}", data={"csrf": tok, "result": "pass"})
    assert done.status_code == 303
    landed = e.get(done.headers["location"])
    assert landed.status_code == 200, done.headers["location"]
    assert text_of(landed.text).count(messages.FINDINGS_NONE) == 2  # nothing left, said
    assert "None" not in landed.text
    assert messages.RECHECK_DONE_PASS in landed.text
    assert f"/staff/tickets/{mine}" in links(landed.text)  # what was saved, one tap away
    assert ticket(pair, mine).status == bpb.TICKET_STATUS_VERIFIED

    # another expert sees none of it, and the list is an expert's page
    other, _ = web.signed_in("lisi")
    assert f"/staff/tickets/{mine}" not in other.get("/staff/findings").text
    assert "未建立台账甲" not in other.get(f"/staff/findings?done=pass&ticket={mine}").text
    web.user("wangfang", "inspector", region="稠城街道")
    inspector, _ = web.signed_in("wangfang")
    assert inspector.get("/staff/findings").status_code == 403


def test_an_expert_sees_open_and_waiting_findings_apart(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "等复查的隐患")
    order_id, _ = dispatched(pair, 32, "稠城街道", key="k2")
    found = pair.booking.RecordVisit(ledger_visit(order_id, "等整改的隐患"), timeout=10)
    still_open = found.tickets[0].ticket_id
    web.user("chen", "expert", expert_id="E1")
    e, _ = web.signed_in("chen")
    page = e.get("/staff/findings").text
    assert messages.FINDINGS_NONE not in page and "None" not in page
    waiting_at = page.index(f"/staff/tickets/{waiting}")
    open_at = page.index(f"/staff/tickets/{still_open}")
    assert waiting_at < page.index(messages.FINDINGS_OPEN_HEADING) < open_at
    # a banner comes from a fixed code, never from the query's text
    injected = "已被管理员注销，请拨打400"
    assert injected not in e.get("/staff/findings", params={"done": injected}).text


def test_an_inspector_lands_on_the_queue_naming_what_was_saved(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    first = proof_waiting(pair, 31, "稠城街道", "未建立台账甲")
    web.user("wangfang", "inspector", region="稠城街道")
    c, tok = web.signed_in("wangfang")
    form = {"csrf": tok, "result": "fail", "note": "缺少责任人", "new_due_on": "2026-07-01"}
    done = c.post(f"/staff/tickets/{first}", data=form)
    assert done.status_code == 303 and done.headers["location"].startswith("/staff/tickets?")
    landed = c.get(done.headers["location"])
    assert messages.RECHECK_DONE_FAIL in landed.text
    assert "测试五金31号厂" in text_of(landed.text)
    assert f"/staff/tickets/{first}" in links(landed.text)


# -- F2: a recheck another tab already made ----------------------------------------------------


def test_a_recheck_made_in_another_tab_is_explained_and_the_typing_kept(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    web.user("wangfang", "inspector", region="稠城街道")
    web.user("zhangsan", "inspector", region="稠城街道")
    other, other_tok = web.signed_in("zhangsan")
    c, tok = web.signed_in("wangfang")
    passed = other.post(f"/staff/tickets/{waiting}", data={"csrf": other_tok, "result": "pass"})
    assert passed.status_code == 303

    typed = "还有问题\n消防通道仍堵塞"
    form = {"csrf": tok, "result": "fail", "note": typed, "new_due_on": "2026-07-20"}
    refused = c.post(f"/staff/tickets/{waiting}", data=form)
    assert refused.status_code == 409
    shown = text_of(refused.text)
    assert messages.RECHECK_NOT_WAITING in shown
    assert "zhangsan姓名" in shown and "复查通过" in shown  # who, and what they did
    assert typed in html.unescape(refused.text)  # the note kept
    assert "2026年7月20日" in shown  # and the deadline
    assert ticket(pair, waiting).status == bpb.TICKET_STATUS_VERIFIED

    # a form with a mistake in it, sent after the other tab's recheck, says the same
    form = {"csrf": tok, "result": "fail", "note": "", "new_due_on": ""}
    refused = c.post(f"/staff/tickets/{waiting}", data=form)
    assert refused.status_code == 409
    assert messages.RECHECK_NOT_WAITING in text_of(refused.text)


def test_a_failed_recheck_made_in_another_tab_names_the_new_deadline(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    web.user("wangfang", "inspector", region="稠城街道")
    c, tok = web.signed_in("wangfang")
    form = {"csrf": tok, "result": "fail", "note": "照片不清楚", "new_due_on": "2026-07-20"}
    assert c.post(f"/staff/tickets/{waiting}", data=form).status_code == 303
    refused = c.post(f"/staff/tickets/{waiting}", data={"csrf": tok, "result": "pass"})
    assert refused.status_code == 409
    shown = text_of(refused.text)
    assert messages.RECHECK_NOT_WAITING in shown
    # the person's own other tab, and the deadline it set
    assert re.search(rf"{messages.RECHECK_YOU}已于.+复查不通过", shown)
    assert "2026年7月20日" in shown
    assert ticket(pair, waiting).status == bpb.TICKET_STATUS_OPEN


# -- F5: every error of the visit form at once ---------------------------------------------------


def test_the_visit_form_names_every_bad_field_at_once(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 34, "稠城街道")
    web.user("chen", "expert", expert_id="E1")
    e, tok = web.signed_in("chen")
    form = {
        "csrf": tok,
        "minutes_on_site": "-5",
        "on_site_mobile": "138😀",
        "ref_0": "GEN:ledger",
        "severity_0": "general",
        "desc_0": "",
        "ref_1": "GEN:ledger",
        "severity_1": "bogus",
        "desc_1": "台账缺失",
        "due_1": "1999-01-01",
    }
    answer = e.post(f"/staff/orders/{order_id}/visit", data=form)
    assert answer.status_code == 400
    shown = text_of(answer.text)
    assert messages.SIGN_IN_BAD_PHONE in shown
    assert messages.VISIT_BAD_MINUTES in shown
    assert messages.FINDING_DESCRIPTION.format(n=1000) in shown
    assert messages.FINDING_SEVERITY in shown
    assert messages.VISIT_BAD_DUE in shown
    # minutes that are no number at all, with the rest as bad
    form["minutes_on_site"] = "一小时"
    answer = e.post(f"/staff/orders/{order_id}/visit", data=form)
    shown = text_of(answer.text)
    assert answer.status_code == 400
    assert messages.VISIT_BAD_MINUTES in shown and messages.SIGN_IN_BAD_PHONE in shown
    assert messages.FINDING_DESCRIPTION.format(n=1000) in shown
    # a good phone and no confirmation on a firm without a sign-in mobile: that too
    form["on_site_mobile"] = ""
    answer = e.post(f"/staff/orders/{order_id}/visit", data=form)
    shown = text_of(answer.text)
    assert messages.VISIT_BAD_MINUTES in shown and messages.VISIT_MOBILE_NEEDED in shown
    assert (
        pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10).status
        == bpb.ORDER_STATUS_DISPATCHED
    )


# -- F7: the queue shows an excerpt -------------------------------------------------------------


def test_the_queue_shows_an_excerpt_and_the_ticket_all_of_it(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    long_text = "灭火器压力不足" + "甲" * 979 + "末尾"
    waiting = proof_waiting(pair, 31, "稠城街道", long_text)
    web.user("wangfang", "inspector", region="稠城街道")
    c, _ = web.signed_in("wangfang")
    queue = c.get("/staff/tickets").text
    card = re.search(rf'id="q-{waiting}".*?</a>', queue, re.S)
    assert card
    assert "灭火器压力不足" in card.group(0) and "末尾" not in card.group(0)
    assert len(text_of(card.group(0))) < EXCERPT_CHARS + 200
    assert long_text in c.get(f"/staff/tickets/{waiting}").text
