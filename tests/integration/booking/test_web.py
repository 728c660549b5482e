"""The phone page over real HTTP (uvicorn on a real port, httpx), against the running pair.

Covers: landing, the order form's errors next to their fields, double submission, the
confirmation, bad tokens (forged, edited, revoked) → 403 with no firm data, another
firm's records → 404 (a session of another firm: its sign-in page) with none, proof-of-fix
uploads, /verify, /dashboard, /healthz, error pages, headers.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine, select

from services.booking.adapters.orm import photos
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.domain.staff import EVERY
from services.booking.entrypoints.web import create_web_app
from services.booking.entrypoints.web.uploads import UploadLimits, Uploads
from services.booking.service_layer.orders import list_orders
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.http_server import HttpServer, start_http
from tests.booking_env import Pair, ledger_visit, running_pair

CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)  # review 64 F7: frame-ancestors, base-uri, object-src


def make_png(width: int = 4, height: int = 4) -> bytes:
    """A small valid PNG (8-bit RGB), built with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = (b"\x00" + b"\x20\xa0\x40" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class Site:
    pair: Pair
    http: HttpServer
    client: httpx.Client
    calls: list[str]

    def firm(self, n: int, name: str = "", **fields: object) -> tuple[str, str]:
        """Register firm n and issue its code: (enterprise_id, token)."""
        extra = dict(fields)
        if name:
            extra["name"] = name
        enterprise_id = self.pair.register_firm(n, **extra)
        return enterprise_id, self.pair.issue(enterprise_id).token

    def sign_in(self, enterprise_id: str, token: str, phone: str = "13912345678") -> None:
        """The firm's person signs in on the page (the code from the in-memory SMS)."""
        self.pair.booking.SetSignInPhone(
            bpb.SetSignInPhoneRequest(enterprise_id=enterprise_id, phone=phone), timeout=10
        )
        asked = self.client.post(f"/q/{token}/sign-in", data={"phone": phone})
        assert asked.status_code == 200, asked.text
        code = self.pair.sms.last_code(phone)
        done = self.client.post(f"/q/{token}/sign-in/code", data={"phone": phone, "code": code})
        assert done.status_code == 303 and "firm_session" in self.client.cookies

    def form(self, token: str) -> tuple[httpx.Response, str]:
        page = self.client.get(f"/q/{token}/order")
        assert page.status_code == 200
        found = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
        assert found
        return page, found.group(1)

    def order(self, token: str, key: str, **changes: object) -> httpx.Response:
        data: dict[str, object] = {
            "item_codes": ["dust_explosion"],
            "preferred_slots": [self.pair.slot(2), self.pair.slot(3, "PM")],
            "contact_name": "王经理",
            "contact_phone": "13812345678",
            "note": "二车间",
            "idempotency_key": key,
        }
        data.update(changes)
        return self.client.post(f"/q/{token}/order", data=data)

    def placed(self, token: str) -> str:
        _, key = self.form(token)
        response = self.order(token, key)
        assert response.status_code == 303, response.text
        return response.headers["location"].rsplit("/", 1)[1]

    def visit(self, order_id: str, due_on: str = "") -> str:
        visit = self.pair.booking.RecordVisit(
            ledger_visit(order_id, "未建立隐患排查治理台账", due_on=due_on), timeout=10
        )
        return str(visit.tickets[0].ticket_id)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_pair(tmp_path) as pair:
        calls: list[str] = []
        app = create_web_app(pair.ctx, pair.booking_engine, on_outbox=lambda: calls.append("wake"))
        http = start_http(app)
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        with httpx.Client(
            base_url=f"http://127.0.0.1:{http.port}", timeout=20, follow_redirects=False
        ) as client:
            try:
                yield Site(pair, http, client, calls)
            finally:
                http.stop()


def block(page: str, field: str) -> str:
    """The HTML of one form field's block (its input/checkboxes and its messages)."""
    # a group's block may name its error after its id (aria-describedby, review 63)
    found = re.search(
        rf'<(fieldset|div) class="field[^"]*" id="f-{field}"[^>]*>(.*?)</\1>', page, re.S
    )
    assert found, f"no block for {field}"
    return found.group(2)


def checked(page: str, name: str) -> set[str]:
    return set(re.findall(rf'name="{name}" value="([^"]*)" checked', page))


def forge(token: str) -> str:
    """Change one character in the middle of the signature."""
    i = len(token) - 10
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


# ---------------------------------------------------------------- landing and order


def test_landing_shows_the_firm_its_menu_and_headers(site: Site) -> None:
    _, token = site.firm(1, name="义乌市恒达五金制品有限公司")
    page = site.client.get(f"/q/{token}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "义乌市恒达五金制品有限公司" in page.text
    for item in site.pair.ctx.menu.values():
        assert item.name in page.text and item.description in page.text
    assert f'href="/q/{token}/order"' in page.text
    assert "<script" not in page.text.lower()
    assert 'name="viewport"' in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"  # review 54 D6
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-store"
    css = site.client.get("/static/site.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_order_form_offers_fourteen_days_of_half_day_slots(site: Site) -> None:
    _, token = site.firm(2)
    page, key = site.form(token)
    values = re.findall(r'name="preferred_slots" value="([^"]+)"', page.text)
    today = site.pair.clock.today
    assert values[0] == f"{today + timedelta(days=1)} AM"
    assert values[-1] == f"{today + timedelta(days=14)} PM"
    assert len(values) == 28 and f"{today} AM" not in values
    assert "6月2日上午" in page.text and "6月15日下午" in page.text
    assert len(key) >= 32
    chosen = site.client.get(f"/q/{token}/order", params={"item": "gas_safety"})
    assert checked(chosen.text, "item_codes") == {"gas_safety"}


def test_form_errors_are_shown_next_to_their_fields_and_input_is_kept(site: Site) -> None:
    firm, token = site.firm(3)
    _, key = site.form(token)
    response = site.order(
        token,
        key,
        item_codes=[],
        preferred_slots=[site.pair.slot(4)],
        contact_phone="1381234567",
        note="二车间<b>除尘</b>",
    )
    assert response.status_code == 400
    text = response.text
    assert "请至少选择一项服务" in block(text, "item_codes")
    assert "请至少选择2个半天时段" in block(text, "preferred_slots")
    assert "请填写11位手机号码" in block(text, "contact_phone")
    assert "请填写11位手机号码" not in block(text, "contact_name")
    assert 'class="error"' not in block(text, "contact_name")
    # what was typed is kept, escaped
    assert checked(text, "preferred_slots") == {site.pair.slot(4)}
    assert 'value="王经理"' in block(text, "contact_name")
    assert 'value="1381234567"' in block(text, "contact_phone")
    assert "二车间&lt;b&gt;除尘&lt;/b&gt;" in block(text, "note")
    assert f'name="idempotency_key" value="{key}"' in text
    # fix two of three: the remaining error stays, the checked boxes stay checked
    again = site.order(
        token,
        key,
        item_codes=["dust_explosion", "first_lesson"],
        preferred_slots=[site.pair.slot(4)],
    )
    assert again.status_code == 400
    assert checked(again.text, "item_codes") == {"dust_explosion", "first_lesson"}
    assert 'class="error"' not in block(again.text, "item_codes")
    assert "请至少选择2个半天时段" in block(again.text, "preferred_slots")
    assert site.calls == []
    orders, _ = list_orders(UnitOfWork(site.pair.booking_engine), firm, "", 10, "", EVERY)
    assert orders == []


def test_an_error_of_one_slot_or_item_is_shown_beside_its_list(site: Site) -> None:
    """Review 72: the service names a bad item by its index (`preferred_slots[1]`,
    `item_codes[1]`); the page still shows the error beside the list, in Chinese."""
    _, token = site.firm(4)
    _, key = site.form(token)
    response = site.order(
        token,
        key,
        item_codes=["dust_explosion", "no_such_item"],
        preferred_slots=[site.pair.slot(2), site.pair.slot(30)],
    )
    assert response.status_code == 400
    assert "请选择今后14天内的时段" in block(response.text, "preferred_slots")
    assert "未知的服务项目" in block(response.text, "item_codes")
    assert "[1]" not in response.text
    assert site.calls == []


def test_control_characters_in_the_form_are_shown_as_errors_and_nothing_is_stored(
    site: Site,
) -> None:
    firm, token = site.firm(13)
    _, key = site.form(token)
    response = site.order(token, key, contact_name="王\x00经理", note="二车间\x1b")
    assert response.status_code == 400
    assert "控制字符" in block(response.text, "contact_name")
    assert "控制字符" in block(response.text, "note")
    lines = site.order(token, key, note="二车间\r\n三车间")  # a text area breaks lines
    assert lines.status_code == 303, lines.text
    orders, _ = list_orders(UnitOfWork(site.pair.booking_engine), firm, "", 10, "", EVERY)
    assert [o.note for o in orders] == ["二车间\n三车间"]  # as typed: one character a break


def test_bytes_that_are_not_utf8_are_a_form_error_not_stored_as_replacement_marks(
    site: Site,
) -> None:
    """Review 47a N3: a name sent as %ED%A0%80 (not UTF-8) was stored as three U+FFFD."""
    firm, token = site.firm(14)
    _, key = site.form(token)
    body = (
        "item_codes=dust_explosion"
        f"&preferred_slots={site.pair.slot(2).replace(' ', '+')}"
        f"&preferred_slots={site.pair.slot(3, 'PM').replace(' ', '+')}"
        "&contact_name=%ED%A0%80&contact_phone=13812345678"
        f"&idempotency_key={key}"
    )
    response = site.client.post(
        f"/q/{token}/order",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "无法识别的字符" in block(response.text, "contact_name")
    orders, _ = list_orders(UnitOfWork(site.pair.booking_engine), firm, "", 10, "", EVERY)
    assert orders == []


def test_a_missing_idempotency_key_asks_to_resubmit_with_a_fresh_one(site: Site) -> None:
    _, token = site.firm(4)
    response = site.order(token, "")
    assert response.status_code == 400
    assert "页面已过期" in response.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', response.text)
    assert key and len(key.group(1)) >= 32
    assert checked(response.text, "item_codes") == {"dust_explosion"}


def test_the_same_form_posted_twice_makes_one_order(site: Site) -> None:
    firm, token = site.firm(5)
    _, key = site.form(token)
    first, second = site.order(token, key), site.order(token, key)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert re.fullmatch(
        rf"/q/{re.escape(token)}/orders/B\d{{6}}[0-9A-Z]{{6}}", first.headers["location"]
    )
    orders, _ = list_orders(UnitOfWork(site.pair.booking_engine), firm, "", 10, "", EVERY)
    assert len(orders) == 1
    assert "wake" in site.calls


def test_the_confirmation_shows_the_booking_number_and_the_expert(site: Site) -> None:
    firm, token = site.firm(6, name="义乌市宏达塑料厂")
    site.sign_in(firm, token)
    order_id = site.placed(token)
    page = site.client.get(f"/q/{token}/orders/{order_id}")
    assert page.status_code == 200
    assert f'id="order-id">{order_id}<' in page.text
    assert "已派单" in page.text
    assert 'id="expert">专家E1<' in page.text
    assert "6月3日上午" in page.text  # the first preferred half-day
    assert "138****5678" in page.text and "13812345678" not in page.text
    assert page.headers["cache-control"] == "no-store"
    landing = site.client.get(f"/q/{token}")
    assert order_id in landing.text and "专家E1" in landing.text


def test_an_order_no_expert_can_take_shows_the_dispatch_note(site: Site) -> None:
    firm, token = site.firm(7)
    site.sign_in(firm, token)
    _, key = site.form(token)
    response = site.order(token, key, item_codes=["gas_safety"])
    order_id = response.headers["location"].rsplit("/", 1)[1]
    page = site.client.get(f"/q/{token}/orders/{order_id}")
    assert "已提交，待派单" in page.text
    assert "暂无可派专家" in page.text
    assert 'id="expert"' not in page.text


def test_while_rules_is_down_the_firm_page_says_so_and_still_takes_orders(site: Site) -> None:
    firm, token = site.firm(8, name="义乌市宏泰木业厂", high_risk_domains=["dust_explosion"])
    site.sign_in(firm, token)
    assert 'id="status-headline"' in site.client.get(f"/q/{token}").text
    site.pair.rules_server.stop(None)
    page = site.client.get(f"/q/{token}")
    assert page.status_code == 200
    assert "暂时无法获取企业状态（规则服务不可用），您仍可以预约专家。" in page.text
    order_id = site.placed(token)
    assert "已派单" in site.client.get(f"/q/{token}/orders/{order_id}").text


# ---------------------------------------------------------------- bad tokens


def test_forged_edited_and_revoked_tokens_get_403_without_firm_data(site: Site) -> None:
    mine, token = site.firm(8, name="甲企业五金厂")
    other, _ = site.firm(9, name="乙企业纺织厂")
    order_id = site.placed(token)
    kid, _, serial, signature = token.split(".")
    edited = f"{kid}.{other}.{serial}.{signature}"
    stale = token
    fresh = site.pair.issue(mine).token  # reissued: the first code is revoked
    for bad in (forge(fresh), edited, stale, "nonsense", "k2." + "A" * 18 + ".x.y"):
        for path in (
            f"/q/{bad}",
            f"/q/{bad}/order",
            f"/q/{bad}/orders/{order_id}",
            f"/q/{bad}/orders/NOSUCHORDER",
            f"/q/{bad}/tickets/T123",
            f"/q/{bad}/photos/P123",
        ):
            response = site.client.get(path)
            assert response.status_code == 403, (bad, path)
            assert "二维码无效或已失效" in response.text
            for secret in ("甲企业", "乙企业", order_id, mine, "稠城"):
                assert secret not in response.text, (bad, path, secret)
            assert response.headers["cache-control"] == "no-store"
        posted = site.order(bad, "k-1")
        assert posted.status_code == 403 and "甲企业" not in posted.text
    assert site.client.get(f"/q/{fresh}").status_code == 200


def test_another_firms_order_is_404_and_a_session_of_another_firm_signs_in_again(
    site: Site,
) -> None:
    """Firm A's session with firm B's valid code: A's order through B's code is not found
    (test_pages_polish: as for B's own session). A ticket or photo through B's code is
    sent to B's sign-in page, as without a session (review 52: it was 403 "二维码无效或
    已失效", which B's code is not); nothing of A's is shown, nothing is uploaded."""
    firm, token = site.firm(10, name="甲企业五金厂")
    _, other = site.firm(11, name="乙企业纺织厂")
    site.sign_in(firm, token)
    order_id = site.placed(token)
    ticket_id = site.visit(order_id)
    upload = site.client.post(
        f"/q/{token}/tickets/{ticket_id}",
        data={"note": "ok"},
        files={"photo": ("a.png", make_png(), "image/png")},
    )
    assert upload.status_code == 303
    page = site.client.get(f"/q/{token}/tickets/{ticket_id}")
    photo_id = re.search(r'/photos/([A-Za-z0-9]+)"', page.text)
    assert photo_id
    response = site.client.get(f"/q/{other}/orders/{order_id}")
    assert response.status_code == 404
    assert "甲企业" not in response.text and "台账" not in response.text
    for path in (f"/q/{other}/tickets/{ticket_id}", f"/q/{other}/photos/{photo_id.group(1)}"):
        response = site.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/q/{other}/sign-in?next=" + quote(path, safe="")
        assert "甲企业" not in response.text and "台账" not in response.text
    stolen = site.client.post(
        f"/q/{other}/tickets/{ticket_id}",
        data={"note": "x"},
        files={"photo": ("a.png", make_png(), "image/png")},
    )
    assert stolen.status_code == 303 and "/sign-in?next=" in stolen.headers["location"]
    listed = site.pair.booking.ListTickets(bpb.ListTicketsRequest(), timeout=10).tickets
    assert [t.proof_note for t in listed if t.ticket_id == ticket_id] == ["ok"]  # none saved
    assert site.client.get(f"/q/{token}/orders/NOSUCH").status_code == 404


# ---------------------------------------------------------------- tickets and uploads


def test_a_proof_past_the_tickets_photos_is_refused_beside_the_photo(
    site: Site, monkeypatch: Any
) -> None:
    """Review 47a N4: the page says why, next to the photo field, not "already verified"."""
    monkeypatch.setattr("services.booking.domain.photos.MAX_PROOFS_PER_ROUND", 1)
    firm, token = site.firm(15)
    site.sign_in(firm, token)
    url = f"/q/{token}/tickets/{site.visit(site.placed(token))}"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    first = site.client.post(url, data={"note": "一"}, files={"photo": ("a.png", png, "image/png")})
    assert first.status_code == 303, first.text
    second = site.client.post(
        url, data={"note": "二"}, files={"photo": ("b.png", png, "image/png")}
    )
    assert second.status_code == 409
    assert "请等待检查人员复查" in block(second.text, "photo")
    assert "已复查通过" not in second.text


def test_proof_of_fix_upload_rejects_bad_files_and_accepts_a_png(site: Site) -> None:
    firm, token = site.firm(12)
    site.sign_in(firm, token)
    order_id = site.placed(token)
    ticket_id = site.visit(order_id)
    url = f"/q/{token}/tickets/{ticket_id}"
    page = site.client.get(url)
    assert page.status_code == 200
    assert "未建立隐患排查治理台账" in page.text
    assert "GEN:ledger" not in page.text  # a rule named by a word: its text alone (47a N1)
    assert "2026年7月1日" in page.text  # found 6月1日, 30 days for GENERAL
    assert "待整改" in page.text
    assert "建立隐患排查治理台账，如实记录" in page.text  # guidance from the rules service
    assert 'accept="image/jpeg,image/png"' in page.text
    assert 'enctype="multipart/form-data"' in page.text

    gif = site.client.post(
        url,
        data={"note": "已整改<i>"},
        files={"photo": ("a.png", b"GIF89a" + b"\x00" * 100, "image/png")},
    )
    assert gif.status_code == 400
    assert "只接受JPEG或PNG格式的照片" in block(gif.text, "photo")
    assert "已整改&lt;i&gt;" in block(gif.text, "note")

    big = make_png() + b"\x00" * (5 * 1024 * 1024)
    too_big = site.client.post(
        url, data={"note": "大照片"}, files={"photo": ("big.png", big, "image/png")}
    )
    assert too_big.status_code == 400
    assert "照片不能超过5MB" in block(too_big.text, "photo")
    assert "大照片" in block(too_big.text, "note")

    huge = site.client.post(
        url,
        data={"note": "x"},
        files={"photo": ("huge.png", b"\x89PNG" + b"\x00" * (7 << 20), "image/png")},
    )
    assert huge.status_code == 413
    assert "照片不能超过5MB" in huge.text

    long_note = site.client.post(
        url, data={"note": "长" * 1001}, files={"photo": ("fix.png", make_png(), "image/png")}
    )
    assert long_note.status_code == 400
    assert "说明最多1000个字" in block(long_note.text, "note")

    missing = site.client.post(url, data={"note": "忘了照片"})
    assert missing.status_code == 400
    assert "请上传整改后的照片" in block(missing.text, "photo")
    assert site.calls.count("wake") == 1  # the order only

    png = make_png(6, 5)
    done = site.client.post(
        url, data={"note": "已建立台账"}, files={"photo": ("fix.png", png, "image/png")}
    )
    assert done.status_code == 303 and done.headers["location"] == url
    assert site.calls.count("wake") == 2
    page = site.client.get(url)
    assert 'id="ticket-status">已提交<' in page.text
    assert "已建立台账" in page.text
    photo = re.search(r'src="(/q/[^"]+/photos/[A-Za-z0-9]+)"', page.text)
    assert photo
    served = site.client.get(html.unescape(photo.group(1)))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == png
    assert served.headers["x-content-type-options"] == "nosniff"


def test_landing_reminds_of_tickets_due_within_three_days_and_marks_overdue(site: Site) -> None:
    firm, token = site.firm(13)
    site.sign_in(firm, token)
    order_id = site.placed(token)
    today = site.pair.clock.today
    site.visit(order_id, due_on=(today + timedelta(days=2)).isoformat())
    page = site.client.get(f"/q/{token}")
    assert "整改提醒" in page.text and "即将到期" in page.text
    assert "已逾期" not in page.text
    site.pair.clock.today = today + timedelta(days=5)
    page = site.client.get(f"/q/{token}")
    assert "已逾期" in page.text and "整改提醒" not in page.text


# ---------------------------------------------------------------- verify, dashboard, health


def test_verify_shows_a_genuine_inspection_code_and_rejects_a_bogus_one(site: Site) -> None:
    firm, _ = site.firm(14, name="义乌市诚信五金厂")
    verdict = site.pair.rules.CheckInspection(
        rpb.CheckInspectionRequest(
            enterprise_id=firm,
            authority="义乌市应急管理局",
            kind=rpb.INSPECTION_KIND_COMPLAINT,
            planned_on=(site.pair.clock.today + timedelta(days=3)).isoformat(),
            grounds="群众投诉：粉尘较大",
        ),
        timeout=10,
    )
    assert verdict.allowed and verdict.inspection_code
    page = site.client.get(f"/verify/{verdict.inspection_code}")
    assert page.status_code == 200
    assert "义乌市应急管理局" in page.text
    assert "义乌市诚信五金厂" in page.text
    assert "投诉举报核查" in page.text
    assert "群众投诉：粉尘较大" in page.text
    assert "2026年6月4日" in page.text  # planned_on
    code = verdict.inspection_code  # its last character changed (a code ending in x: to y)
    altered = code[:-1] + ("y" if code.endswith("x") else "x")
    for bogus in ("JC-" + "A" * 32, "hello", altered, "x" * 300):
        response = site.client.get(f"/verify/{bogus}")
        assert response.status_code == 404
        assert "不是有效的行政检查码" in response.text
        assert "义乌市应急管理局" not in response.text


def test_dashboard_renders_the_figures_and_the_overdue_list(site: Site) -> None:
    _, token = site.firm(15, name="义乌市逾期示例厂")
    order_id = site.placed(token)
    today = site.pair.clock.today
    site.visit(order_id, due_on=(today + timedelta(days=1)).isoformat())
    site.pair.clock.today = today + timedelta(days=4)
    # orders are stamped with the wall clock, the pair's clock is pinned: ask for a range
    # that holds both
    wall = date.today()
    page = site.client.get(
        "/dashboard", params={"from": "2026-01-01", "to": (wall + timedelta(days=1)).isoformat()}
    )
    assert page.status_code == 200
    assert 'id="bookings-received">1<' in page.text
    assert 'id="bookings-answered">1<' in page.text
    assert 'id="hazards-found">1<' in page.text
    assert "按地区" in page.text and "稠城街道" in page.text
    assert "按领域" in page.text and "粉尘涉爆" in page.text
    assert "按月份" in page.text
    overdue = page.text[page.text.index('id="overdue"') :]
    assert (
        "义乌市逾期示例厂" in overdue and "未建立隐患排查治理台账" in overdue
    )  # GEN:ledger's text
    assert "GEN:ledger" not in overdue  # never its code (review 59 F4)
    plain = site.client.get("/dashboard")
    assert plain.status_code == 200 and "逾期未整改清单" in plain.text
    bad = site.client.get("/dashboard", params={"from": "yesterday"})
    assert bad.status_code == 400
    county = site.client.get("/dashboard", params={"region": "义乌市"})
    assert county.status_code == 200
    nowhere = site.client.get("/dashboard", params={"region": "稠城"})
    assert nowhere.status_code == 400
    assert "不是本地的镇街" in nowhere.text and "稠城街道" in nowhere.text  # beside the field


def test_healthz_is_ok_and_503_when_the_database_is_unreachable(site: Site, tmp_path: Path) -> None:
    ok = site.client.get("/healthz")
    assert (ok.status_code, ok.text) == (200, "ok")
    gone = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    broken = start_http(create_web_app(site.pair.ctx, gone))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{broken.port}", timeout=20) as client:
            assert client.get("/healthz").status_code == 503
            page = client.get("/q/" + site.pair.issue(site.pair.register_firm(16)).token)
            assert page.status_code == 503
            assert "服务暂时不可用" in page.text
    finally:
        broken.stop()
        gone.dispose()


def test_unexpected_errors_give_a_500_page_without_a_traceback(site: Site) -> None:
    class Broken:
        """A rules client that fails in an unexpected way."""

        def fail(self, *args: object) -> Any:
            raise RuntimeError("secret internals /etc/passwd")

        firm = clause_exists = report = verify_code = fail

    app = create_web_app(replace(site.pair.ctx, rules=Broken()), site.pair.booking_engine)
    server = start_http(app)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=20) as client:
            response = client.get("/verify/JC-" + "A" * 32)
            assert response.status_code == 500
            assert "系统出错了" in response.text
            assert "Traceback" not in response.text and "secret internals" not in response.text
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["x-content-type-options"] == "nosniff"
            missing = client.get("/no/such/page")
            assert missing.status_code == 404 and "页面不存在" in missing.text
    finally:
        server.stop()


def test_oversized_form_bodies_are_refused(site: Site) -> None:
    _, token = site.firm(17)
    response = site.client.post(
        f"/q/{token}/order",
        content=b"a=" + b"x" * (200 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


def test_firm_names_are_escaped(site: Site) -> None:
    _, token = site.firm(18, name="<script>alert(1)</script>五金厂")
    page = site.client.get(f"/q/{token}")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;五金厂" in page.text


def test_landing_lists_orders_under_way_apart_from_those_that_ended(site: Site) -> None:
    """The firm's orders under way come first; closed and cancelled ones are folded
    away under their count, as verified tickets are."""
    firm, token = site.firm(8)
    site.sign_in(firm, token)
    first = site.placed(token)
    landing = site.client.get(f"/q/{token}").text
    assert first in _section(landing, "orders") and 'id="past-orders"' not in landing
    site.pair.booking.CancelOrder(
        bpb.CancelOrderRequest(order_id=first, reason="企业来电取消"), timeout=10
    )
    landing = site.client.get(f"/q/{token}").text
    assert "暂无进行中的预约" in landing and "还没有预约" not in landing
    assert "专家免费上门指导" in _section(landing, "orders")  # still invited to book
    past = _section(landing, "past-orders", tag="details")
    assert first in past and "已结束的预约 1 项" in past and "已取消" in past
    second = site.placed(token)
    landing = site.client.get(f"/q/{token}").text
    under_way = _section(landing, "orders").split('id="past-orders"')[0]
    assert second in under_way and first not in under_way
    assert first in _section(landing, "past-orders", tag="details")


def _section(page: str, element_id: str, tag: str = "section") -> str:
    """The HTML of the element with `element_id` (up to its closing tag)."""
    start = page.index(f'<{tag} id="{element_id}"')
    return page[start : page.index(f"</{tag}>", start)]


def test_a_proof_photo_is_spooled_and_written_with_a_writers_slot(tmp_path: Path) -> None:
    """Review 66 point 5: the firm's proof form is received as the expert's visit form
    (web/uploads.py): a phone's 4 MB JPEG is spooled to disk as it arrives, within the
    process's spool room (past it: refused beside the photo, the note kept), and written
    with one of the process's writer slots (none free within the wait: 503 with
    Retry-After, the note kept); then taken."""
    four_mb = b"\xff\xd8\xff" + b"\x07" * (4 * 1024 * 1024 - 3)  # a JPEG by its magic
    with running_pair(tmp_path) as pair:
        for limits, answer in (
            (UploadLimits(writers=1, wait=0.3, directory=str(tmp_path)), 503),
            (UploadLimits(spool_bytes=1024 * 1024, directory=str(tmp_path)), 400),
        ):
            uploads = Uploads(limits)
            http = start_http(create_web_app(pair.ctx, pair.booking_engine, uploads=uploads))
            try:
                with httpx.Client(
                    base_url=f"http://127.0.0.1:{http.port}", timeout=60, follow_redirects=False
                ) as client:
                    site = Site(pair, http, client, [])
                    if not pair.booking.ListExperts(bpb.ListExpertsRequest(), timeout=10).experts:
                        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
                    firm, token = site.firm(70 + answer % 10)
                    site.sign_in(firm, token)
                    ticket_id = site.visit(site.placed(token))
                    url = f"/q/{token}/tickets/{ticket_id}"
                    assert uploads.try_write() if answer == 503 else True  # the only slot
                    refused = client.post(
                        url,
                        data={"note": "已整改"},
                        files={"photo": ("p.jpg", four_mb, "image/jpeg")},
                    )
                    assert refused.status_code == answer, refused.text[:500]
                    assert "已整改" in block(refused.text, "note")
                    if answer == 503:
                        assert messages.PROOF_WRITERS_BUSY in refused.text
                        assert refused.headers["retry-after"] == "30"
                        uploads.written()
                        done = client.post(
                            url,
                            data={"note": "已整改"},
                            files={"photo": ("p.jpg", four_mb, "image/jpeg")},
                        )
                        assert done.status_code == 303, done.text[:500]
                        with pair.booking_engine.connect() as conn:
                            sizes = (
                                conn.execute(
                                    select(photos.c.size).where(photos.c.purpose == "proof")
                                )
                                .scalars()
                                .all()
                            )
                        assert sizes == [len(four_mb)]
                    else:
                        assert messages.VISIT_SPOOL_FULL in block(refused.text, "photo")
            finally:
                http.stop()
