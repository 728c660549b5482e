"""Leftovers of reviews 62 and 63: the firm's phone page (360 × 740, Chromium, JavaScript
off), as the owner of a small firm reads it.

- Every date a person reads is written one way, 2026年6月19日 (docs/booking.md "Dates"),
  the rules service's days (a blocker's, an open hazard's deadline) and the history's
  instants alike: no 2026-06-19 beside 2026年6月19日.
- An open hazard's deadline is said once: rules' guidance ends with it, beside the page's
  整改期限.
- The self-check cites a clause once, its questions under it.
- A finding under GB 35181-2017 says, in plain Chinese, that the edition was replaced and
  by which (rules' editions data).
- Without JavaScript the same proof form sent twice stores one proof and lands on the
  ticket's page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.service_layer.qr_codes import issue_qr_code
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import ledger_visit
from tests.e2e.conftest import Live, make_png
from tests.e2e.test_phone_page import fits_phone
from tests.e2e.test_phone_review_63 import MOBILE, _sign_in

ISO_DAY = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
SHOWN_DAY = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日")
# rulesets/fire35181.yaml: the edition a finding is judged by, and the one that replaced it
FIRE_2017 = "GB 35181-2017"
FIRE_2025 = "GB 35181-2025《重大火灾隐患判定规则》"


@pytest.fixture
def plain(browser: Browser) -> Iterator[Page]:
    """A phone of 360 × 740, JavaScript off."""
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        locale="zh-CN",
        java_script_enabled=False,
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def _firm(live: Live, n: int, **fields: Any) -> tuple[str, str]:
    """A firm registered with rules (`fields` over a clean profile), its QR token, and its
    sign-in mobile."""
    pair = live.pair
    firm = pair.register_firm(n, **fields)
    token = issue_qr_code(
        UnitOfWork(pair.booking_engine), replace(pair.ctx, public_url=live.base), firm
    ).token
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    return firm, token


def _woodworks(live: Live, n: int) -> tuple[str, str, str]:
    """A dust shop with a penalty, an open hazard on rules' record and one visited order
    (one ticket): its id, token and the ticket's id."""
    firm, token = _firm(
        live,
        n,
        name="义乌市森木家具厂",
        industry="light_industry",
        high_risk_domains=["dust_explosion"],
        penalties=[{"decided_on": "2026-03-02", "amount_yuan": 20000, "basis": "未开展安全培训"}],
        hazards=[
            {"hazard_id": f"H-{n}-1", "clause_ref": "GEN:ledger", "severity": "general",
             "found_on": "2026-05-20", "due_on": "2026-06-19", "status": "open"},
        ],
    )  # fmt: skip
    pair = live.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = pair.booking.CreateOrder(
        pair.order_request(token, item="dust_explosion", days=(2, 3), key=f"r62-{n}"), timeout=10
    )
    visit = pair.booking.RecordVisit(ledger_visit(placed.order_id, "灭火器过期"), timeout=10)
    return firm, token, visit.tickets[0].ticket_id


def _one_date_format(page: Page, at_least: int) -> None:
    text = page.locator("main").inner_text()
    assert not ISO_DAY.findall(text), ISO_DAY.findall(text)
    assert len(SHOWN_DAY.findall(text)) >= at_least, text


def test_every_date_on_the_firms_pages_is_written_one_way(live: Live, plain: Page) -> None:
    _firm_id, token, ticket = _woodworks(live, 62)
    _sign_in(plain, live, token)
    # the landing: a blocker's two days, a hazard's deadline, a ticket's, an order's instant
    _one_date_format(plain, at_least=5)
    assert "2026年3月2日 受到行政处罚，2028年3月3日起不再影响白名单" in (
        plain.locator("#blockers").inner_text()
    )
    assert fits_phone(plain)
    # the ticket: found on, deadline, and the history's instants
    plain.goto(f"{live.base}/q/{token}/tickets/{ticket}")
    _one_date_format(plain, at_least=3)
    # the order: its history
    plain.goto(f"{live.base}/q/{token}")
    plain.locator("#orders a.order").first.click()
    _one_date_format(plain, at_least=2)


def test_an_open_hazards_deadline_is_said_once(live: Live, plain: Page) -> None:
    _firm_id, token, _ticket = _woodworks(live, 63)
    _sign_in(plain, live, token)
    hazard = plain.locator("#hazards .finding").filter(has_text="未建立隐患排查治理台账")
    said = hazard.inner_text()
    assert said.count("整改期限") == 1, said
    assert "整改期限：2026年6月19日" in said
    assert hazard.locator(".guidance").inner_text()  # the guidance itself is still there


def test_the_self_check_cites_a_clause_once_above_its_questions(live: Live, plain: Page) -> None:
    _firm_id, token, _ticket = _woodworks(live, 64)
    _sign_in(plain, live, token)
    plain.goto(f"{live.base}/q/{token}/self-check")
    cites = plain.locator("form .cite").all_inner_texts()
    assert cites and len(cites) == len(set(cites)), cites
    questions = plain.locator("form .question").count()
    assert questions > len(cites)  # some clause asks more than one question
    # 第十一条第（一）项 asks two questions: both under its one citation
    group = plain.locator(".clause-group").filter(
        has_text="《工贸企业重大事故隐患判定标准》第十一条第（一）项"
    )
    assert group.locator(".cite").count() == 1
    assert group.locator(".question").count() == 2
    assert fits_phone(plain)


def test_a_finding_under_a_replaced_edition_says_so_and_by_which(live: Live, plain: Page) -> None:
    _firm_id, token = _firm(
        live,
        65,
        name="义乌市宾王小商品店",
        industry="commerce_trade",
        venues=["shop"],
        facts={"fire.exit_count_short": True},
    )
    _sign_in(plain, live, token)
    finding = plain.locator("#hazards .finding").filter(has_text=FIRE_2017)
    assert finding.count() == 1
    said = finding.locator(".superseded").inner_text()
    assert said == messages.EDITION_SUPERSEDED.format(edition=FIRE_2017, successor=FIRE_2025)
    assert fits_phone(plain)
    # the self-check's result says it too (the same finding, judged afresh)
    plain.goto(f"{live.base}/q/{token}/self-check")
    plain.get_by_role("button", name="查看自查结果").click()
    result = plain.locator(".finding").filter(has_text=FIRE_2017)
    assert FIRE_2025 in result.locator(".superseded").inner_text()


def _proofs(live: Live, ticket: str) -> int:
    uow = UnitOfWork(live.pair.booking_engine)
    with uow:
        return len(uow.register.photos_of(ticket, "proof"))


def _proof_form(plain: Page) -> dict[str, Any]:
    """The ticket page's proof form as the owner fills it: what the page drew into it
    (its key, CSRF), then a note and a photo."""
    hidden = plain.locator('form[enctype="multipart/form-data"] input[type="hidden"]')
    form: dict[str, Any] = {
        str(h.get_attribute("name")): str(h.get_attribute("value")) for h in hidden.all()
    }
    form["note"] = "已更换灭火器"
    form["photo"] = {"name": "fixed.png", "mimeType": "image/png", "buffer": make_png(32, 24)}
    return form


def test_the_same_proof_form_sent_twice_stores_one_proof(live: Live, plain: Page) -> None:
    """Without JavaScript nothing stops a double tap or a resubmit: the form's key does.
    (Chromium itself sends one POST on a double click; a slower second tap, or a resubmit
    after a lost answer, sends the same form again: posted twice here.)"""
    _firm_id, token, ticket = _woodworks(live, 66)
    _sign_in(plain, live, token)
    url = f"{live.base}/q/{token}/tickets/{ticket}"
    plain.goto(url)
    form = _proof_form(plain)
    for _ in range(2):  # the same form, posted twice (the browser's cookies)
        answer = plain.request.post(url, multipart=form, headers={"Origin": live.base})
        assert answer.status == 200 and answer.url == url
        assert 'id="ticket-status"' in answer.text()
    assert _proofs(live, ticket) == 1
    key = form.get("idempotency_key")
    uow = UnitOfWork(live.pair.booking_engine)
    with uow:
        stored = uow.register.ticket(ticket)
        assert stored is not None
        assert [h.to_status for h in stored.history].count("submitted") == 1
    # drawn again, the form has a new key: a better photo later is a proof of its own
    plain.goto(url)
    fresh = plain.locator('form input[name="idempotency_key"]').get_attribute("value")
    assert fresh and fresh != key
    plain.get_by_label("整改说明").fill("换了更清楚的照片")
    plain.locator("#photo").set_input_files(
        files=[{"name": "better.png", "mimeType": "image/png", "buffer": make_png(40, 30)}]
    )
    plain.get_by_role("button", name="提交整改").click()
    assert plain.url == url and _proofs(live, ticket) == 2


def test_the_ticket_and_the_fire_questions_say_the_edition_was_replaced(
    live: Live, plain: Page
) -> None:
    """Not a finding only: a ticket citing GB 35181-2017 and the self-check's questions
    of that standard say it too, in the same words (guidance.edition_replaced)."""
    _firm_id, token = _firm(
        live, 67, name="义乌市稠州日用品店", industry="commerce_trade", venues=["shop"]
    )
    pair = live.pair
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    placed = pair.booking.CreateOrder(pair.order_request(token, key="r62-67"), timeout=10)
    found = bpb.FindingInput(
        clause_ref="FIRE35181:6.2", severity=bpb.SEVERITY_MAJOR, description="仓库与宿舍同楼"
    )
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(order_id=placed.order_id, findings=[found]), timeout=10
    )
    said = messages.EDITION_SUPERSEDED.format(edition=FIRE_2017, successor=FIRE_2025)
    _sign_in(plain, live, token)
    plain.goto(f"{live.base}/q/{token}/tickets/{visit.tickets[0].ticket_id}")
    assert plain.locator("main .superseded").all_inner_texts() == [said]
    assert fits_phone(plain)
    # the self-check: once, under the fire standard's questions, not under the others'
    plain.goto(f"{live.base}/q/{token}/self-check")
    fire = plain.locator("form fieldset").filter(has_text=f"{FIRE_2017} 第6.2条")
    assert fire.count() == 1
    assert fire.locator(".superseded").all_inner_texts() == [said]
    assert plain.locator("form .superseded").count() == 1
    assert fits_phone(plain)


def test_a_used_proof_form_with_another_photo_says_the_page_expired(
    live: Live, plain: Page
) -> None:
    """Review 73: the form a proof was sent from, sent again with another photo (a page
    kept: the back button, a tab left open), was answered as the first proof: the
    ticket's page as it was, the new photo dropped without a word. Now the page says it
    expired, with a new key and the note kept; the photo sent again then is stored."""
    _firm_id, token, ticket = _woodworks(live, 67)
    _sign_in(plain, live, token)
    url = f"{live.base}/q/{token}/tickets/{ticket}"
    plain.goto(url)
    form = _proof_form(plain)
    first = plain.request.post(url, multipart=form, headers={"Origin": live.base})
    assert first.status == 200 and _proofs(live, ticket) == 1
    form["photo"] = {"name": "better.png", "mimeType": "image/png", "buffer": make_png(40, 30)}
    again = plain.request.post(url, multipart=form, headers={"Origin": live.base})
    assert again.status == 400 and messages.FORM_EXPIRED in again.text()
    assert _proofs(live, ticket) == 1
    plain.set_content(again.text())  # the page it answered, as the phone shows it
    fresh = plain.locator('form input[name="idempotency_key"]').get_attribute("value")
    assert fresh and fresh != form["idempotency_key"]
    assert plain.get_by_label("整改说明").input_value() == "已更换灭火器"
    form["idempotency_key"] = fresh
    stored = plain.request.post(url, multipart=form, headers={"Origin": live.base})
    assert stored.status == 200 and _proofs(live, ticket) == 2
