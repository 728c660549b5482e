"""Review 63: the phone page as a small firm's owner meets it on a cheap Android phone
(360 × 640, device scale 2, touch, zh-CN), and as a screen reader reads it.

- Every field's error is tied to its field (aria-invalid, aria-describedby naming the
  error's element), on the sign-in form, the proof form and the self-check, and every id
  a field names is on the page once.
- A self-check question names its 是/否 group (and its number box), so a screen reader
  reads the question with the answers.
- The signed-in firm reads its risk colour.
- A file chosen but empty (0 bytes) is told as such, not as "no photo".
- With JavaScript, a camera photo over 5 MB is shrunk on the phone and taken; without
  it the refusal says how to make the photo smaller.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from services.booking.domain import messages
from services.booking.domain.photos import MAX_PHOTO_BYTES
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import ledger_visit
from tests.e2e.conftest import Live, make_png
from tests.e2e.test_phone_page import fits_phone

MOBILE = "13912345678"


def _phone(browser: Browser, js: bool) -> Any:
    return browser.new_context(
        viewport={"width": 360, "height": 640},
        device_scale_factor=2,
        has_touch=True,
        is_mobile=True,
        locale="zh-CN",
        java_script_enabled=js,
    )


@pytest.fixture
def android(browser: Browser) -> Iterator[Page]:
    """A cheap Android phone's browser, JavaScript on."""
    context = _phone(browser, js=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def plain(browser: Browser) -> Iterator[Page]:
    """The same phone with JavaScript off."""
    context = _phone(browser, js=False)
    try:
        yield context.new_page()
    finally:
        context.close()


def _firm_with_ticket(live: Live, n: int) -> tuple[str, str, str]:
    """A dust firm with one order visited (one finding): its id, QR token, ticket id."""
    pair = live.pair
    firm = pair.register_firm(n, name=f"义乌市第{n}五金厂", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(
        pair.order_request(token, item="dust_explosion", days=(2, 3), key=f"r63-{n}"), timeout=10
    )
    visit = pair.booking.RecordVisit(ledger_visit(placed.order_id, "灭火器过期"), timeout=10)
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    return firm, token, visit.tickets[0].ticket_id


def _sign_in(page: Page, live: Live, token: str) -> None:
    page.goto(f"{live.base}/q/{token}/sign-in")
    page.get_by_label("登录手机号").fill(MOBILE)
    page.get_by_role("button", name="获取验证码").click()
    page.get_by_label("6位验证码").fill(live.pair.sms.last_code(MOBILE))
    page.get_by_role("button", name="登录").click()
    assert page.url == f"{live.base}/q/{token}"


def _tied(page: Page, field: Any) -> str:
    """The text of the error a field is described by, checking it is marked invalid and
    that the id it names is on the page exactly once."""
    assert field.get_attribute("aria-invalid") == "true"
    described = field.get_attribute("aria-describedby")
    assert described, "the field names no error"
    assert page.locator(f'[id="{described}"]').count() == 1
    return str(page.locator(f'[id="{described}"]').inner_text())


def _ids_unique(page: Page) -> None:
    ids = page.evaluate("Array.from(document.querySelectorAll('[id]'), e => e.id)")
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_sign_in_errors_are_tied_to_their_fields(live: Live, plain: Page) -> None:
    _firm, token, _ticket = _firm_with_ticket(live, 63)
    plain.goto(f"{live.base}/q/{token}/sign-in")
    plain.get_by_label("登录手机号").fill("1391234")
    plain.get_by_role("button", name="获取验证码").click()
    assert "11位手机号码" in _tied(plain, plain.get_by_label("登录手机号"))
    plain.get_by_label("登录手机号").fill(MOBILE)
    plain.get_by_role("button", name="获取验证码").click()
    right = live.pair.sms.last_code(MOBILE)
    plain.get_by_label("6位验证码").fill(f"{(int(right) + 1) % 10**6:06d}")
    plain.get_by_role("button", name="登录").click()
    assert "验证码" in _tied(plain, plain.get_by_label("6位验证码"))
    _ids_unique(plain)
    assert fits_phone(plain)
    # signed in: the decision names the firm's risk colour (a white-listed firm: blue)
    plain.get_by_label("6位验证码").fill(right)
    plain.get_by_role("button", name="登录").click()
    assert plain.locator("#risk-level").inner_text() == "风险等级：蓝色（低风险）"


def test_proof_note_error_is_tied_and_an_empty_file_is_told(live: Live, plain: Page) -> None:
    _firm, token, ticket = _firm_with_ticket(live, 64)
    _sign_in(plain, live, token)
    plain.goto(f"{live.base}/q/{token}/tickets/{ticket}")
    # a note over 1,000 characters (a browser without maxlength, a paste in an old one)
    plain.locator("#note").evaluate("e => e.removeAttribute('maxlength')")
    plain.get_by_label("整改说明").fill("长" * 1001)
    plain.locator("#photo").set_input_files(
        files=[{"name": "ok.png", "mimeType": "image/png", "buffer": make_png(32, 24)}]
    )
    plain.get_by_role("button", name="提交整改").click()
    assert "1000" in _tied(plain, plain.get_by_label("整改说明"))
    _ids_unique(plain)
    # a photo chosen but empty: "empty file", not "please upload a photo"
    plain.get_by_label("整改说明").fill("已更换")
    plain.locator("#photo").set_input_files(
        files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": b""}]
    )
    plain.get_by_role("button", name="提交整改").click()
    assert _tied(plain, plain.locator("#photo")) == messages.PHOTO_EMPTY
    assert plain.get_by_label("整改说明").input_value() == "已更换"
    assert plain.locator("#ticket-status").inner_text() == "待整改"


def test_self_check_questions_name_their_answers(live: Live, plain: Page) -> None:
    _firm, token, _ticket = _firm_with_ticket(live, 65)
    _sign_in(plain, live, token)
    plain.goto(f"{live.base}/q/{token}/self-check")
    question = plain.locator('[id="q-dust.dry_collector_unprotected"]')
    asked = question.locator("p").first.inner_text()
    group = plain.get_by_role("radiogroup", name=asked)
    assert group.count() == 1
    assert group.get_by_role("radio", name="是").count() == 1
    number = plain.locator("input[inputmode=decimal]").first
    if number.count():  # a question answered by a number: the box is named by it too
        number.fill("很多")
        plain.get_by_role("button", name="查看自查结果").click()
        number = plain.locator("input[inputmode=decimal]").first
        box = number.evaluate("e => e.closest('.question').querySelector('p').innerText")
        assert plain.get_by_role("textbox", name=box).count() >= 1
        assert _tied(plain, number)
    _ids_unique(plain)


def _camera_jpeg(page: Page) -> bytes:
    """A real JPEG of a phone camera's size (4000 × 3000, noisy, over 5 MB), drawn by the
    browser itself (no Pillow here)."""
    encoded = page.evaluate(
        """async () => {
            const c = document.createElement('canvas'); c.width = 4000; c.height = 3000;
            const x = c.getContext('2d'); const d = x.createImageData(4000, 3000);
            for (let i = 0; i < d.data.length; i += 4) {
                const v = (Math.random() * 255) | 0;
                d.data[i] = v; d.data[i + 1] = 255 - v; d.data[i + 2] = (v * 7) & 255;
                d.data[i + 3] = 255;
            }
            x.putImageData(d, 0, 0);
            const blob = await new Promise(r => c.toBlob(r, 'image/jpeg', 0.95));
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let s = ''; for (let i = 0; i < bytes.length; i += 32768)
                s += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
            return btoa(s);
        }"""
    )
    return base64.b64decode(encoded)


def test_a_camera_photo_over_5_mb_is_shrunk_on_the_phone(live: Live, android: Page) -> None:
    _firm, token, ticket = _firm_with_ticket(live, 66)
    _sign_in(android, live, token)
    android.goto(f"{live.base}/q/{token}/tickets/{ticket}")
    photo = _camera_jpeg(android)
    assert MAX_PHOTO_BYTES < len(photo) <= 12 * 1024 * 1024
    android.get_by_label("整改说明").fill("已更换灭火器")
    android.locator("#photo").set_input_files(
        files=[{"name": "IMG_20260602.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    # the page's CSP allows no eval: Playwright's expect polls without it
    expect(android.locator("#photo-shrink")).to_have_text(messages.PHOTO_SHRUNK, timeout=30_000)
    expect(android.get_by_role("button", name="提交整改")).to_be_enabled()
    android.get_by_role("button", name="提交整改").click()
    assert android.locator("#ticket-status").inner_text() == "已提交"
    width = android.evaluate(
        "new Promise(r => { const i = document.querySelector('img.proof');"
        " i.complete ? r(i.naturalWidth) : i.onload = () => r(i.naturalWidth); })"
    )
    assert width == 2560  # the longer side, as drawn again on the phone
    assert fits_phone(android)


def test_without_javascript_a_big_photo_is_refused_with_what_to_do(live: Live, plain: Page) -> None:
    _firm, token, ticket = _firm_with_ticket(live, 67)
    _sign_in(plain, live, token)
    plain.goto(f"{live.base}/q/{token}/tickets/{ticket}")
    plain.locator("#photo").set_input_files(
        files=[
            {
                "name": "IMG_1.jpg",
                "mimeType": "image/jpeg",
                "buffer": b"\xff\xd8\xff\xe0" + b"\x00" * (MAX_PHOTO_BYTES + 10),
            }
        ]
    )
    plain.get_by_role("button", name="提交整改").click()
    said = _tied(plain, plain.locator("#photo"))
    assert "5MB" in said and "分辨率" in said
