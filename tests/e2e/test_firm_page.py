"""The firm's own page in a real browser (Chromium, 360 px wide, JavaScript off), issue 11.

A passer-by who scans the poster sees the firm's name, the menu and the order form and
nothing of its status, orders or tickets. The owner gets a code from the in-memory SMS
backend, signs in, sees a white-list blocker as a sentence with its dates and an open
hazard with its clause text, books from the hazard's button with the items ticked, and
runs a self-check whose one "yes" shows a major hazard and pre-fills 粉尘防爆 — and both
registers are unchanged afterwards (checked over gRPC). Wrong codes are refused in
Chinese. Screenshots of every page: test-artifacts/firm_page/ (README "Tests").
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.service_layer.qr_codes import issue_qr_code
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.e2e.conftest import Live
from tests.e2e.test_phone_page import fits_phone

MOBILE = "13912345678"
# GM2023:11(3) as inspection documents (and the firm's pages: review 70) cite it
GM_11_3 = "《工贸企业重大事故隐患判定标准》第十一条第（三）项"
CHEM_11 = "《化工和危险化学品生产经营单位重大生产安全事故隐患判定标准（试行）》第十一项"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts")) / "firm_page"


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Any:
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page: Any, name: str) -> None:
        assert fits_phone(page), name
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return shot


def _woodworks(live: Live) -> tuple[str, str]:
    """A woodworking shop (dust) with a penalty and an open hazard, its code, its mobile."""
    pair = live.pair
    firm = pair.register_firm(
        31,
        name="义乌市森木家具厂",
        industry="light_industry",
        high_risk_domains=["dust_explosion"],
        penalties=[{"decided_on": "2026-03-02", "amount_yuan": 20000, "basis": "未开展安全培训"}],
        hazards=[
            {"hazard_id": "H-31-1", "clause_ref": "GEN:ledger", "severity": "general",
             "found_on": "2026-05-20", "due_on": "2026-06-19", "status": "open"},
        ],
    )  # fmt: skip
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    token = issue_qr_code(
        UnitOfWork(pair.booking_engine), replace(pair.ctx, public_url=live.base), firm
    ).token
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    return firm, token


def _sign_in(phone: Any, live: Live, token: str, shot: Any) -> None:
    phone.goto(f"{live.base}/q/{token}")
    phone.get_by_role("link", name="用登记的手机号登录").click()
    phone.get_by_label("登录手机号").fill(MOBILE)
    shot(phone, "sign-in")
    phone.get_by_role("button", name="获取验证码").click()
    assert "验证码已发送" in phone.locator("#code-sent").inner_text()
    phone.get_by_label("6位验证码").fill(live.pair.sms.last_code(MOBILE))
    shot(phone, "sign-in-code")
    phone.get_by_role("button", name="登录").click()
    assert phone.url == f"{live.base}/q/{token}"


def test_a_passer_by_sees_no_status_orders_or_tickets(live: Live, phone: Any, shots: Any) -> None:
    _firm, token = _woodworks(live)
    order = live.pair.booking.CreateOrder(live.pair.order_request(token, item="dust_explosion"))
    phone.goto(f"{live.base}/q/{token}")
    assert phone.locator("h1.firm").inner_text() == "义乌市森木家具厂"
    assert phone.get_by_text("粉尘防爆").first.is_visible()  # the menu
    for private in ("#status", "#tickets", "#orders", "#hazards", "#blockers"):
        assert phone.locator(private).count() == 0, private
    text = phone.content()
    assert "行政处罚" not in text and "未建立隐患排查治理台账" not in text
    assert order.order_id not in text
    shots(phone, "passer-by-landing")
    # an order's public confirmation: the number and the status, nothing else
    phone.goto(f"{live.base}/q/{token}/orders/{order.order_id}")
    assert phone.locator("#order-id").inner_text() == order.order_id
    assert phone.locator("#order-status").inner_text() == "已派单"
    assert phone.locator("#expert").count() == 0 and "专家E1" not in phone.content()
    assert "138****5678" not in phone.content()
    shots(phone, "passer-by-confirmation")
    # tickets and the self-check send the visitor to sign in
    phone.goto(f"{live.base}/q/{token}/self-check")
    assert "/sign-in?next=" in phone.url and phone.url.endswith("self-check")
    shots(phone, "passer-by-sign-in")


def test_the_owner_signs_in_sees_the_decision_and_books_from_a_hazard(
    live: Live, phone: Any, shots: Any
) -> None:
    _firm, token = _woodworks(live)
    _sign_in(phone, live, token, shots)
    blockers = phone.locator("#blockers .blocker").all_inner_texts()
    assert "2026年3月2日 受到行政处罚，2028年3月3日起不再影响白名单" in blockers
    hazard = phone.locator("#hazards .finding").filter(has_text="未建立隐患排查治理台账")
    assert hazard.count() == 1  # by the clause's official text
    assert "GEN:" not in phone.locator("#hazards").inner_text()  # a rule named by a word
    assert "整改期限：2026年6月19日" in hazard.inner_text()
    shots(phone, "owner-landing")
    hazard.get_by_role("link", name="预约专家帮我整改").click()
    assert phone.get_by_label("安全生产标准化辅导").is_checked()
    assert not phone.get_by_label("粉尘防爆").is_checked()
    refs = phone.locator("#clause-refs").inner_text()
    assert "未建立隐患排查治理台账" in refs and "GEN:" not in refs  # as the ticket page
    assert "仅您和上门专家可见" in refs
    shots(phone, "prefilled-order")
    phone.get_by_label("6月2日上午").check()
    phone.get_by_label("6月3日下午").check()
    phone.get_by_label("联系人").fill("王经理")
    phone.get_by_label("手机号码").fill("13812345678")
    phone.get_by_role("button", name="提交预约").click()
    refs = phone.locator("#clause-refs").inner_text()
    assert "未建立隐患排查治理台账" in refs and "GEN:" not in refs
    shots(phone, "owner-confirmation")
    order_id = phone.locator("#order-id").inner_text()
    kept = live.pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    assert list(kept.clause_refs) == [] and list(kept.item_codes) == ["standardization_coaching"]


def _registers(live: Live, firm: str) -> tuple[Any, ...]:
    status = live.pair.rules_status(firm)
    orders = live.pair.booking.ListOrders(bpb.ListOrdersRequest(), timeout=10)
    tickets = live.pair.booking.ListTickets(bpb.ListTicketsRequest(), timeout=10)
    history = [json_format.MessageToDict(h) for h in status.history]
    return status.decision.decision_id, history, status.profile, orders, tickets


def test_a_self_check_shows_the_major_hazard_and_stores_nothing(
    live: Live, phone: Any, shots: Any
) -> None:
    firm, token = _woodworks(live)
    before = _registers(live, firm)
    _sign_in(phone, live, token, shots)
    phone.get_by_role("link", name="安全自查").click()
    assert "不保存、不上报" in phone.content()
    shots(phone, "self-check")
    question = phone.locator('[id="q-dust.dry_collector_unprotected"]')
    question.get_by_label("是", exact=True).check()  # the group is named by its question
    phone.get_by_role("button", name="查看自查结果").click()
    major = phone.locator("#major .finding").filter(has_text=GM_11_3)
    assert "干式除尘系统未采取泄爆、惰化、抑爆等任一种爆炸防控措施" in major.inner_text()
    shots(phone, "self-check-result")
    major.get_by_role("link", name="预约专家帮我整改").click()
    assert phone.get_by_label("粉尘防爆").is_checked()
    refs = phone.locator("#clause-refs").inner_text()
    assert GM_11_3 in refs and "GM2023:" not in refs
    shots(phone, "self-check-order")
    assert _registers(live, firm) == before  # nothing stored in either register


def test_wrong_codes_are_refused_in_chinese(live: Live, phone: Any, shots: Any) -> None:
    _firm, token = _woodworks(live)
    phone.goto(f"{live.base}/q/{token}/sign-in")
    phone.get_by_label("登录手机号").fill(MOBILE)
    phone.get_by_role("button", name="获取验证码").click()
    right = live.pair.sms.last_code(MOBILE)
    phone.get_by_label("6位验证码").fill(f"{(int(right) + 1) % 10**6:06d}")
    phone.get_by_role("button", name="登录").click()
    assert "验证码错误或已过期" in phone.locator("#sign-in-error").inner_text()
    shots(phone, "wrong-code")
    for _ in range(4):
        phone.get_by_label("6位验证码").fill(f"{(int(right) + 2) % 10**6:06d}")
        phone.get_by_role("button", name="登录").click()
    phone.get_by_label("6位验证码").fill(right)
    phone.get_by_role("button", name="登录").click()
    assert "输错次数过多" in phone.locator("#sign-in-error").inner_text()
    shots(phone, "too-many-tries")
    assert phone.context.cookies() == [] or all(
        c["name"] != "firm_session" for c in phone.context.cookies()
    )


def test_past_the_days_wrong_codes_a_wrong_code_voids_its_code_and_a_new_one_signs_in(
    live: Live, phone: Any, shots: Any
) -> None:
    """Review 64's leftovers: after 10 wrong codes in a day for the number, a wrong code
    voids its code; the page says so beside the code field and the firm asks again."""
    _firm, token = _woodworks(live)

    def ask() -> str:
        phone.goto(f"{live.base}/q/{token}/sign-in")
        phone.get_by_label("登录手机号").fill(MOBILE)
        phone.get_by_role("button", name="获取验证码").click()
        return live.pair.sms.last_code(MOBILE)

    def enter(code: str) -> None:
        phone.get_by_label("6位验证码").fill(code)
        phone.get_by_role("button", name="登录").click()

    for _ in range(2):  # two codes, five wrong tries each: the day's ten
        wrong = f"{(int(ask()) + 1) % 10**6:06d}"
        for _ in range(5):
            enter(wrong)
    assert "此验证码已作废，请重新获取验证码" in phone.locator("#sign-in-error").inner_text()
    right = ask()
    enter(f"{(int(right) + 1) % 10**6:06d}")  # one wrong try past the cap
    assert "此验证码已作废" in phone.locator("#sign-in-error").inner_text()
    shots(phone, "wrong-code-void")
    enter(right)
    assert "firm_session" not in {c["name"] for c in phone.context.cookies()}
    phone.get_by_role("link", name="重新获取验证码").click()
    phone.get_by_label("登录手机号").fill(MOBILE)
    phone.get_by_role("button", name="获取验证码").click()
    enter(live.pair.sms.last_code(MOBILE))
    assert "firm_session" in {c["name"] for c in phone.context.cookies()}


def test_the_longest_citation_wraps_on_a_phone_and_reads_as_text(
    live: Live, phone: Any, shots: Any
) -> None:
    """Review 70: a national clause on the firm's pages is cited as documents cite it; the
    2017 化工 判定标准's long title wraps inside the card at 360 px, in the page's own
    size and colour (not a small grey code)."""
    _firm, token = _woodworks(live)
    live.pair.register_firm(
        31,
        name="义乌市森木家具厂",
        industry="light_industry",
        high_risk_domains=["dust_explosion"],
        hazards=[
            {"hazard_id": "H-31-2", "clause_ref": "CHEM2017:11", "severity": "major",
             "found_on": "2026-05-20", "due_on": "2026-06-19", "status": "open"},
        ],
    )  # fmt: skip
    _sign_in(phone, live, token, shots)
    cite = phone.locator(".finding .cite").filter(has_text=CHEM_11)
    assert cite.count() == 1 and "CHEM2017" not in phone.locator("main").inner_text()
    card = phone.locator(".finding").filter(has_text=CHEM_11).bounding_box()
    box = cite.bounding_box()
    assert box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"]
    assert box["height"] > 30  # on more than one line: wrapped, not cut or overflowing
    style = cite.evaluate(
        "e => { const s = getComputedStyle(e); return [s.fontSize, s.color, s.whiteSpace] }"
    )
    assert style == ["16px", "rgb(29, 35, 41)", "normal"]  # the body's size and colour
    shots(phone, "chem-citation")  # fits_phone: nothing wider than 360 px
