"""Review 52 in a real browser (Chromium, 360 px wide, JavaScript off): the firm cancels its
own order on the phone page (F1), and the phone of its first visited order signs it in
(F2).

F1: the owner signs in, orders, opens the order, taps 取消预约, reads what is cancelled on
the confirmation page, types a reason and confirms: the order page says it is cancelled,
and another firm's order that waited for that half-day is dispatched to it. A passer-by
on the order page is offered 登录后取消 instead, and lands on the cancel page once signed
in. F2: a firm that nobody gave a sign-in mobile orders with its mobile; no code goes to
it before the visit; the expert records the visit (no on-site mobile, the order's
contact confirmed in person: review 54 D2); then the order's mobile gets a code, signs
in, and uploads the proof of fix.

Screenshots: test-artifacts/firm_page/<test>/ (README "Tests").
"""

from __future__ import annotations

from typing import Any

from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import ledger_visit
from tests.e2e.conftest import Live, make_png
from tests.e2e.test_firm_page import shots  # noqa: F401

OWNER = "13912345678"  # set by booking.admin
CONTACT = "13812345678"  # typed on the order form


def _firm(live: Live, n: int, *, owner: bool = True) -> tuple[str, str]:
    firm = live.pair.register_firm(n, name="义乌市森木家具厂", high_risk_domains=["dust_explosion"])
    token = live.pair.issue(firm).token
    if owner:
        live.pair.booking.SetSignInPhone(
            bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=OWNER), timeout=10
        )
    return firm, token


def _sign_in(phone: Any, live: Live, mobile: str, shot: Any, name: str) -> None:
    """On the sign-in page: a code to `mobile`, entered."""
    phone.get_by_label("登录手机号").fill(mobile)
    phone.get_by_role("button", name="获取验证码").click()
    phone.get_by_label("6位验证码").fill(live.pair.sms.last_code(mobile))
    shot(phone, name)
    phone.get_by_role("button", name="登录").click()


def _order(phone: Any) -> str:
    """The order form filled and sent (粉尘防爆, 6月2日上午 and 6月3日下午): the order id."""
    phone.get_by_label("粉尘防爆").check()
    phone.get_by_label("6月2日上午").check()
    phone.get_by_label("6月3日下午").check()
    phone.get_by_label("联系人").fill("王经理")
    phone.get_by_label("手机号码").fill(CONTACT)
    phone.get_by_role("button", name="提交预约").click()
    return str(phone.locator("#order-id").inner_text())


def _status(live: Live, order_id: str) -> bpb.Order:
    return live.pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)


def test_the_owner_cancels_an_order_and_a_waiting_order_gets_its_half_day(
    live: Live,
    phone: Any,
    shots: Any,  # noqa: F811
) -> None:
    pair = live.pair
    # one visit a day, on 6月2日 only
    pair.expert("E1", ["dust_explosion"], ["稠城街道"], days=range(1, 2), max_visits_per_day=1)
    _firm_id, token = _firm(live, 51)
    other = pair.issue(pair.register_firm(52)).token
    phone.goto(f"{live.base}/q/{token}")
    phone.get_by_role("link", name="用登记的手机号登录").click()
    _sign_in(phone, live, OWNER, shots, "sign-in")
    phone.goto(f"{live.base}/q/{token}/order")
    order_id = _order(phone)
    assert phone.locator("#order-status").inner_text() == "已派单"
    waiting = pair.booking.CreateOrder(
        pair.order_request(other, item="dust_explosion", days=(1, 2)), timeout=10
    )
    assert waiting.status == bpb.ORDER_STATUS_SUBMITTED  # the expert's day is taken
    shots(phone, "order")
    phone.get_by_role("link", name="取消预约").click()
    assert phone.url == f"{live.base}/q/{token}/orders/{order_id}/cancel"
    assert phone.locator("#order-id").inner_text() == order_id
    assert phone.locator("#expert").inner_text() == "专家E1"
    assert "取消后专家不会上门" in phone.locator("#cancel-warning").inner_text()
    phone.get_by_label("取消原因").fill("已自行整改，不需要了")
    shots(phone, "cancel-confirm")
    phone.get_by_role("button", name="确认取消预约").click()
    assert phone.url == f"{live.base}/q/{token}/orders/{order_id}?cancelled=1"
    assert "预约已取消" in phone.locator("#order-cancelled").inner_text()
    assert phone.locator("#order-status").inner_text() == "已取消"
    assert phone.get_by_role("link", name="取消预约").count() == 0
    assert "已自行整改，不需要了" in phone.content()  # the history shows the reason
    shots(phone, "cancelled")
    assert _status(live, order_id).status == bpb.ORDER_STATUS_CANCELLED
    moved = _status(live, waiting.order_id)
    assert moved.status == bpb.ORDER_STATUS_DISPATCHED and moved.slot == pair.slot(1)
    # Back to the confirmation page: read afresh (no-store), nothing left to confirm
    phone.go_back()
    assert phone.url.endswith("/cancel")
    assert "不能取消" in phone.locator("#cancel-not-open").inner_text()
    assert phone.get_by_role("button", name="确认取消预约").count() == 0


def test_a_passer_by_is_sent_to_sign_in_and_comes_back_to_cancel(
    live: Live,
    phone: Any,
    shots: Any,  # noqa: F811
) -> None:
    live.pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    _firm_id, token = _firm(live, 53)
    phone.goto(f"{live.base}/q/{token}/order")
    order_id = _order(phone)  # no session: the public confirmation
    assert phone.locator("#expert").count() == 0
    assert phone.get_by_role("link", name="取消预约").count() == 0
    assert "0579-12345" in phone.locator("#cancel-sign-in").inner_text()  # the hotline
    shots(phone, "passer-by-order")
    phone.get_by_role("link", name="登录后取消").click()
    assert "/sign-in?next=" in phone.url
    _sign_in(phone, live, OWNER, shots, "sign-in-to-cancel")
    assert phone.url == f"{live.base}/q/{token}/orders/{order_id}/cancel"
    phone.get_by_role("button", name="确认取消预约").click()  # no reason: optional
    assert phone.locator("#order-status").inner_text() == "已取消"
    assert [h.reason for h in _status(live, order_id).history][-1] == "企业取消"


def test_the_phone_of_the_first_visited_order_signs_in_and_uploads_proof(
    live: Live,
    phone: Any,
    shots: Any,  # noqa: F811
) -> None:
    pair = live.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    _firm_id, token = _firm(live, 54, owner=False)  # nobody set a sign-in mobile
    phone.goto(f"{live.base}/q/{token}/order")
    order_id = _order(phone)
    assert _status(live, order_id).status == bpb.ORDER_STATUS_DISPATCHED
    phone.goto(f"{live.base}/q/{token}/sign-in")
    phone.get_by_label("登录手机号").fill(CONTACT)
    phone.get_by_role("button", name="获取验证码").click()
    assert pair.sms.sent == []  # an order alone: anyone may scan the poster
    # the expert left on_site_mobile empty and confirmed the order's contact in person
    request = ledger_visit(order_id, "灭火器压力不足")
    request.contact_confirmed = True
    visit = pair.booking.RecordVisit(request, timeout=10)
    ticket_id = visit.tickets[0].ticket_id
    phone.goto(f"{live.base}/q/{token}")
    phone.get_by_role("link", name="用登记的手机号登录").click()
    _sign_in(phone, live, CONTACT, shots, "sign-in-after-visit")
    assert phone.url == f"{live.base}/q/{token}"
    ticket = phone.locator("#tickets a.ticket").filter(has_text="灭火器压力不足")
    shots(phone, "landing-after-visit")
    ticket.click()
    assert phone.url == f"{live.base}/q/{token}/tickets/{ticket_id}"
    phone.get_by_label("整改说明").fill("已更换灭火器")
    phone.locator("#photo").set_input_files(
        {"name": "fixed.png", "mimeType": "image/png", "buffer": make_png()}
    )
    phone.get_by_role("button", name="提交整改").click()
    assert phone.locator("#ticket-status").inner_text() == "已提交"
    assert "已更换灭火器" in phone.content()
    shots(phone, "proof-sent")
