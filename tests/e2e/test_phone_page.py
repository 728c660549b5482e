"""The phone page in a real browser (Chromium, 360 px wide, JavaScript off).

Poster → QR code → phone page → sign-in → order form (an error, then success) → the expert's
visit → ticket → proof-of-fix photo → 已提交; and a forged code shows the 403 page.
Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import zxingcpp

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.service_layer.qr_codes import issue_qr_code
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import ledger_visit
from tests.e2e.conftest import Live, make_png, png_to_gray

PX_PER_MM = 96 / 25.4


def fits_phone(page: Any) -> bool:
    width = page.evaluate(
        "Math.max(document.body.scrollWidth, document.documentElement.scrollWidth)"
    )
    return int(width) <= 360


def decode_poster(desk: Any, svg: str, shot: Path) -> str:
    """Render the A4 poster SVG, screenshot the QR code's area, decode it with zxing-cpp."""
    desk.set_content(
        f'<!doctype html><html><body style="margin:0;background:#fff">{svg}</body></html>'
    )
    desk.screenshot(path=str(shot.with_name("poster.png")), full_page=True)
    box = desk.locator("svg > g").first.bounding_box()
    assert box is not None
    pad = 24
    clip = {
        "x": max(box["x"] - pad, 0),
        "y": max(box["y"] - pad, 0),
        "width": box["width"] + 2 * pad,
        "height": box["height"] + 2 * pad,
    }
    png = desk.screenshot(clip=clip)
    shot.write_bytes(png)
    gray, width, height = png_to_gray(png)
    image = memoryview(gray).cast("B", shape=(height, width))
    found = [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(found) == 1, f"expected one QR code in {shot}, found {len(found)}"
    return str(found[0].text)


def test_poster_to_order_to_proof_of_fix(live: Live, phone: Any, desk: Any, tmp_path: Path) -> None:
    pair = live.pair
    firm = pair.register_firm(
        21, name="义乌市恒达五金制品有限公司", high_risk_domains=["dust_explosion"]
    )
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    # Issue the code with the live server as the public base URL, so the QR opens it.
    here = replace(pair.ctx, public_url=live.base)
    issued = issue_qr_code(UnitOfWork(pair.booking_engine), here, firm)
    assert issued.url == f"{live.base}/q/{issued.token}"

    # 一图一码: the printed poster's QR code is the firm's URL.
    decoded = decode_poster(desk, issued.poster_svg, tmp_path / "poster-qr.png")
    assert decoded == issued.url

    # Landing page, as the phone opens it.
    response = phone.goto(decoded)
    assert response.status == 200
    assert phone.locator("h1.firm").inner_text() == "义乌市恒达五金制品有限公司"
    assert phone.get_by_text("粉尘防爆").first.is_visible()
    assert phone.locator("script").count() == 0
    assert fits_phone(phone)
    phone.screenshot(path=str(tmp_path / "landing.png"), full_page=True)

    # The firm's own person signs in (the code from the in-memory SMS backend).
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone="13912345678"), timeout=10
    )
    phone.get_by_role("link", name="用登记的手机号登录").click()
    phone.get_by_label("登录手机号").fill("13912345678")
    phone.get_by_role("button", name="获取验证码").click()
    phone.get_by_label("6位验证码").fill(pair.sms.last_code("13912345678"))
    phone.get_by_role("button", name="登录").click()
    assert phone.url == decoded

    # The order form: a bad phone number first.
    phone.get_by_role("link", name="预约专家上门指导").click()
    assert phone.url == f"{decoded}/order"
    assert fits_phone(phone)
    phone.get_by_label("粉尘防爆").check()
    phone.get_by_label("6月2日上午").check()
    phone.get_by_label("6月3日下午").check()
    phone.get_by_label("联系人").fill("王经理")
    phone.get_by_label("手机号码").fill("1381234567")  # ten digits
    phone.get_by_label("备注").fill("二车间除尘器")
    phone.screenshot(path=str(tmp_path / "order-form.png"), full_page=True)
    phone.get_by_role("button", name="提交预约").click()

    phone_field = phone.locator("#f-contact_phone")
    assert "请填写11位手机号码" in phone_field.locator(".error").inner_text()
    assert phone.locator("#f-contact_name .error").count() == 0
    assert phone.get_by_label("粉尘防爆").is_checked()
    assert phone.get_by_label("6月2日上午").is_checked()
    assert phone.get_by_label("6月3日下午").is_checked()
    assert not phone.get_by_label("6月2日下午").is_checked()
    assert phone.get_by_label("联系人").input_value() == "王经理"
    assert phone.get_by_label("手机号码").input_value() == "1381234567"
    assert phone.get_by_label("备注").input_value() == "二车间除尘器"
    assert fits_phone(phone)
    phone.screenshot(path=str(tmp_path / "order-form-error.png"), full_page=True)

    # Fixed: the confirmation page shows the booking number and the expert.
    phone.get_by_label("手机号码").fill("13812345678")
    phone.get_by_role("button", name="提交预约").click()
    assert re.search(r"/orders/B\d{6}[0-9A-Z]{6}$", phone.url)
    order_id = phone.locator("#order-id").inner_text()
    assert phone.url.endswith(order_id)
    assert phone.locator("#order-status").inner_text() == "已派单"
    assert phone.locator("#expert").inner_text() == "专家E1"
    assert phone.locator("#slot").inner_text().startswith("6月2日上午")
    assert "138****5678" in phone.content() and "13812345678" not in phone.content()
    assert fits_phone(phone)
    phone.screenshot(path=str(tmp_path / "confirmation.png"), full_page=True)

    # The expert records the visit: one general finding.
    pair.booking.RecordVisit(ledger_visit(order_id, "未建立隐患排查治理台账"), timeout=10)

    # Back on the landing page the ticket is listed; open it and upload the proof.
    phone.get_by_role("link", name="返回企业主页").click()
    assert phone.url == decoded
    phone.screenshot(path=str(tmp_path / "landing-with-ticket.png"), full_page=True)
    ticket_link = phone.locator("#tickets a.ticket")
    assert ticket_link.count() == 1
    assert "未建立隐患排查治理台账" in ticket_link.inner_text()
    assert "2026年7月1日" in ticket_link.inner_text()  # 30 days for a GENERAL finding
    ticket_link.click()
    assert "/tickets/" in phone.url
    assert phone.locator("#ticket-status").inner_text() == "待整改"
    assert phone.get_by_text("未建立隐患排查治理台账").first.is_visible()  # the rule's text
    assert phone.get_by_text("GEN:ledger").count() == 0  # not its code (review 47a N1)
    assert phone.get_by_text("建立隐患排查治理台账，如实记录").is_visible()  # guidance
    assert phone.locator("#photo").get_attribute("accept") == "image/jpeg,image/png"
    assert fits_phone(phone)
    phone.locator("#photo").set_input_files(
        files=[{"name": "ledger.png", "mimeType": "image/png", "buffer": make_png(64, 48)}]
    )
    phone.get_by_label("整改说明").fill("已建立台账")
    phone.get_by_role("button", name="提交整改").click()
    assert "/tickets/" in phone.url
    assert phone.locator("#ticket-status").inner_text() == "已提交"
    assert phone.get_by_text("已建立台账").first.is_visible()
    proof = phone.locator("img.proof")
    assert proof.count() == 1
    assert phone.evaluate("document.querySelector('img.proof').naturalWidth") == 64
    phone.screenshot(path=str(tmp_path / "ticket-submitted.png"), full_page=True)

    # A forged code (one character of the signature changed) shows no firm data.
    token = issued.token
    forged = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    response = phone.goto(f"{live.base}/q/{forged}")
    assert response.status == 403
    assert phone.get_by_text("二维码无效或已失效").first.is_visible()
    assert "恒达" not in phone.content()
    phone.screenshot(path=str(tmp_path / "forged.png"), full_page=True)


def test_back_then_submit_again_shows_the_first_order(live: Live, phone: Any) -> None:
    """Review 47a F2: the order form is no-store, so Back refetches it with a new
    idempotency key; submitting the same order again shows the first order, with a
    notice, and takes no second one. Another half-day is another order."""
    pair = live.pair
    firm = pair.register_firm(22, name="义乌市回退五金厂", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    token = pair.issue(firm).token
    form_url = f"{live.base}/q/{token}/order"

    def fill() -> None:  # what Chromium restores after Back, typed again where it did not
        phone.get_by_label("粉尘防爆").check()
        phone.get_by_label("6月2日上午").check()
        phone.get_by_label("6月3日下午").check()
        phone.get_by_label("联系人").fill("王经理")
        phone.get_by_label("手机号码").fill("13812345678")

    def key() -> str:
        return str(phone.locator('input[name="idempotency_key"]').input_value())

    def orders_of_firm() -> int:
        found = pair.booking.ListOrders(bpb.ListOrdersRequest(enterprise_id=firm), timeout=10)
        return len(found.orders)

    phone.goto(form_url)
    first_key = key()
    fill()
    phone.get_by_role("button", name="提交预约").click()
    first = phone.locator("#order-id").inner_text()
    assert phone.locator("#submitted-before").count() == 0

    phone.go_back()
    assert phone.url == form_url
    assert key() != first_key  # the refetched form: a new key
    fill()
    phone.get_by_role("button", name="提交预约").click()
    assert phone.locator("#order-id").inner_text() == first
    assert "没有重复预约" in phone.locator("#submitted-before").inner_text()
    assert fits_phone(phone)
    assert orders_of_firm() == 1

    phone.go_back()  # a different order of the same firm is still taken
    fill()
    phone.get_by_label("6月4日上午").check()
    phone.get_by_role("button", name="提交预约").click()
    assert phone.locator("#order-id").inner_text() != first
    assert phone.locator("#submitted-before").count() == 0
    assert orders_of_firm() == 2


def test_a_photo_too_big_keeps_the_typed_note(live: Live, phone: Any) -> None:
    """Review 47a F5: a 20 MB photo is refused next to the photo field, and the note typed
    (sent before the photo) is still in its box."""
    pair = live.pair
    firm = pair.register_firm(23, name="义乌市大照片五金厂", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(
        pair.order_request(token, item="dust_explosion", days=(2, 3), key="big-photo"), timeout=10
    )
    visit = pair.booking.RecordVisit(ledger_visit(placed.order_id, "灭火器过期"), timeout=10)
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone="13912345678"), timeout=10
    )
    ticket_url = f"{live.base}/q/{token}/tickets/{visit.tickets[0].ticket_id}"
    phone.goto(ticket_url)  # sign in first, then back to the ticket
    phone.get_by_label("登录手机号").fill("13912345678")
    phone.get_by_role("button", name="获取验证码").click()
    phone.get_by_label("6位验证码").fill(pair.sms.last_code("13912345678"))
    phone.get_by_role("button", name="登录").click()
    assert phone.url == ticket_url

    phone.get_by_label("整改说明").fill("已更换灭火器，旧的已送回收")
    huge = b"\xff\xd8\xff" + b"\x00" * (20 * 1024 * 1024)
    phone.locator("#photo").set_input_files(
        files=[{"name": "big.jpg", "mimeType": "image/jpeg", "buffer": huge}]
    )
    phone.get_by_role("button", name="提交整改").click()
    assert "照片不能超过5MB" in phone.locator("#f-photo .error").inner_text()
    assert phone.get_by_label("整改说明").input_value() == "已更换灭火器，旧的已送回收"
    assert phone.locator("#ticket-status").inner_text() == "待整改"
    assert fits_phone(phone)
