"""The staff pages in a real browser (Chromium, 360 px wide, JavaScript off).

An inspector signs in, passes one ticket and fails another from the recheck queue; an
expert signs in and records a visit with a finding picked from the clause list and a
photo; a POST without the CSRF token is refused; an expert cannot open another
expert's visit, nor an inspector another region's ticket (the page, and a gRPC token
with a region alike: each answered as an unknown id, 404 / NOT_FOUND); five wrong
passwords lock the account; a supervisor's session opens the dashboard, an expert's gets
the staff pages' 403. A screenshot of every page
goes to the test's tmp_path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from services.booking.adapters.orm import audit_log, photos, staff_sessions
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer import staff_accounts
from services.booking.service_layer.staff_accounts import NewAccount
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.auth import TokenStore
from services.common.http_server import HttpServer, start_http
from services.common.security import Security
from tests.booking_env import Pair, ledger_visit, running_pair
from tests.e2e.conftest import make_png

PASSWORD = "correct-horse-7"
ARTIFACTS = bool(os.environ.get("TEST_ARTIFACTS"))
PNG = make_png(16, 12)
GM_11_3 = "《工贸企业重大事故隐患判定标准》第十一条第（三）项"  # GM2023:11(3), as staff cite it
STAFF_TOKEN = "staff-dashboard-token-0123456789"


@dataclass
class Staff:
    pair: Pair
    http: HttpServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"

    def user(self, username: str, role: str, region: str = "", expert_id: str = "") -> None:
        staff_accounts.add_user(
            UnitOfWork(self.pair.booking_engine),
            self.pair.ctx.regions,
            NewAccount(username, f"{username}姓名", role, PASSWORD, region, expert_id),
        )


@pytest.fixture
def staff(tmp_path: Path) -> Iterator[Staff]:
    with running_pair(tmp_path) as pair:
        tokens = TokenStore.load(
            _tokens_file(
                tmp_path, [{"caller": "sup", "scopes": ["booking.read"], "token": STAFF_TOKEN}]
            )
        )
        http = start_http(create_web_app(pair.ctx, pair.booking_engine, staff=tokens))
        try:
            yield Staff(pair, http)
        finally:
            http.stop()


def _tokens_file(tmp: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp / "tokens.json"
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    return path


def fits_phone(page: Any) -> bool:
    width = page.evaluate(
        "Math.max(document.body.scrollWidth, document.documentElement.scrollWidth)"
    )
    return int(width) <= 360


def shot(page: Any, tmp: Path, name: str) -> None:
    """Check the page fits a phone without scripts and save its screenshot: in the test's
    tmp_path, or in $TEST_ARTIFACTS/staff-pages when set (CI keeps that folder)."""
    assert page.locator("script").count() == 0
    assert fits_phone(page), f"{name} is wider than 360 px"
    folder = Path(os.environ["TEST_ARTIFACTS"]) / "staff-pages" if ARTIFACTS else tmp
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/staff/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def dispatched(
    pair: Pair, n: int, region: str, expert: str = "E1", key: str = "k"
) -> tuple[str, str]:
    """A firm of `region` with an order dispatched to `expert`: (order id, QR token)."""
    firm = pair.register_firm(
        n, name=f"测试五金{n}号厂", region=region, high_risk_domains=["dust_explosion"]
    )
    qr = pair.issue(firm)
    placed = pair.booking.CreateOrder(
        pair.order_request(qr.token, item="dust_explosion", days=(n % 10 + 1, n % 10 + 2), key=key),
        timeout=10,
    )
    assert placed.status == bpb.ORDER_STATUS_DISPATCHED and placed.expert_id == expert
    return placed.order_id, qr.token


def proof_waiting(pair: Pair, n: int, region: str, text: str) -> str:
    """A ticket with the firm's proof uploaded, waiting for a recheck: its id."""
    order_id, token = dispatched(pair, n, region)
    photos = [bpb.Photo(content=PNG, content_type="image/png")]
    visit = pair.booking.RecordVisit(ledger_visit(order_id, text, photos=photos), timeout=10)
    ticket_id = visit.tickets[0].ticket_id
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id,
            qr_token=token,
            note=f"{text}：已整改",
            photo=bpb.Photo(content=PNG),
        ),
        timeout=10,
    )
    return ticket_id


def ticket(pair: Pair, ticket_id: str) -> bpb.Ticket:
    found = pair.booking.ListTickets(bpb.ListTicketsRequest(page_size=100), timeout=10)
    return next(t for t in found.tickets if t.ticket_id == ticket_id)


def test_inspector_passes_one_ticket_and_fails_another(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道", "江东街道"])
    second = proof_waiting(pair, 32, "稠城街道", "未建立台账乙")  # found 6月1日: due 7月1日
    pair.clock.today = date(2026, 6, 10)
    first = proof_waiting(pair, 31, "稠城街道", "未建立台账甲")  # due 7月10日
    elsewhere = proof_waiting(pair, 33, "江东街道", "未建立台账丙")
    pair.clock.today = date(2026, 7, 5)  # the second is overdue now, the first due in 5 days
    staff.user("wangfang", "inspector", region="330782001")  # by code: stored as 稠城街道

    sign_in(phone, staff.base, "wangfang")
    assert phone.url == f"{staff.base}/staff/tickets"
    assert "wangfang姓名" in phone.locator("#who").inner_text()
    queue = phone.locator("#queue a.card")
    # 江东街道's ticket is not in this inspector's queue; the overdue one comes first
    assert [queue.nth(i).get_attribute("id") for i in range(queue.count())] == [
        f"q-{second}",
        f"q-{first}",
    ]
    assert "已逾期" in queue.first.inner_text()
    shot(phone, tmp_path, "inspector-queue")
    phone.get_by_label("仅看已逾期").check()
    phone.get_by_role("button", name="筛选").click()
    assert phone.locator("#queue a.card").count() == 1
    assert phone.locator(f"#q-{second}").count() == 1
    phone.goto(f"{staff.base}/staff/tickets?region=江东街道")  # outside their region
    assert phone.get_by_text("无权查看").is_visible()
    phone.goto(f"{staff.base}/staff/tickets?region=稠城街道&due=1")
    assert phone.locator("#queue a.card").count() == 2  # both due within 7 days (or past)
    phone.goto(f"{staff.base}/staff/tickets")

    # pass the first: the finding (clause text, note, photo) beside the proof
    phone.locator(f"#q-{first}").click()
    assert phone.locator("#firm").inner_text() == "测试五金31号厂"
    assert "未建立台账甲" in phone.locator("#finding").inner_text()
    assert phone.locator("#clause-text").inner_text()  # the rules service's clause text
    assert phone.locator("#finding img.finding").count() == 1
    assert phone.evaluate("document.querySelector('#finding img').naturalWidth") == 16
    assert "已整改" in phone.locator("#proof-note").inner_text()
    assert phone.evaluate("document.querySelector('#proof img').naturalWidth") == 16
    shot(phone, tmp_path, "inspector-ticket")
    phone.get_by_label("通过", exact=True).check()
    phone.get_by_role("button", name="提交复查结论").click()
    assert phone.url == f"{staff.base}/staff/tickets?done=pass&ticket={first}"
    assert phone.locator("#done").inner_text() == "已保存复查结果：通过"
    assert phone.locator("#saved").inner_text() == "测试五金31号厂：未建立台账甲"
    assert phone.locator("#queue a.card").count() == 1
    assert ticket(pair, first).status == bpb.TICKET_STATUS_VERIFIED

    # fail the second: without a new deadline first (a Chinese error beside the field)
    phone.locator(f"#q-{second}").click()
    phone.get_by_label("不通过，退回整改").check()
    phone.get_by_label("复查意见").fill("台账缺少整改责任人")
    phone.get_by_role("button", name="提交复查结论").click()
    assert "新整改期限" in phone.locator("#f-new_due_on .error").inner_text()
    assert phone.get_by_label("复查意见").input_value() == "台账缺少整改责任人"
    shot(phone, tmp_path, "inspector-ticket-error")
    phone.get_by_label("新整改期限").fill("2026-07-20")
    phone.get_by_role("button", name="提交复查结论").click()
    assert phone.url == f"{staff.base}/staff/tickets?done=fail&ticket={second}"
    assert phone.locator("#done").inner_text() == "已保存复查结果：不通过，已退回整改"
    assert phone.locator("#queue a.card").count() == 0
    shot(phone, tmp_path, "inspector-queue-done")
    failed = ticket(pair, second)
    assert failed.status == bpb.TICKET_STATUS_OPEN and failed.due_on == "2026-07-20"

    # every action in the audit trail under the person's name
    with pair.booking_engine.connect() as conn:
        callers = {
            row.entity_id: row.caller
            for row in conn.execute(select(audit_log).where(audit_log.c.entity == "ticket"))
            if row.action == "update"
        }
    assert callers[first].startswith("staff:wangfang") and "wangfang姓名" in callers[first]
    assert callers[second].startswith("staff:wangfang")

    # another region's ticket: refused by its URL as well, as an unknown one (reach-notfound)
    response = phone.goto(f"{staff.base}/staff/tickets/{elsewhere}")
    assert response.status == 404
    assert phone.get_by_text(messages.PAGE_STAFF_NOT_FOUND[1]).is_visible()
    shot(phone, tmp_path, "inspector-other-region")

    # logout ends the session in the database
    phone.goto(f"{staff.base}/staff/tickets")
    phone.get_by_role("button", name="退出").click()
    assert phone.url.endswith("/staff/login?out=1")
    with pair.booking_engine.connect() as conn:
        assert not list(
            conn.execute(select(staff_sessions).where(staff_sessions.c.username == "wangfang"))
        )
    assert phone.goto(f"{staff.base}/staff/tickets").url.endswith("/staff/login")


def test_expert_records_a_visit_from_the_clause_list(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 41, "稠城街道")
    staff.user("chen", "expert", expert_id="E1")

    sign_in(phone, staff.base, "chen")
    assert phone.url == f"{staff.base}/staff/visits"
    card = phone.locator(f"#v-{order_id}")
    assert "测试五金41号厂" in card.inner_text()
    assert "粉尘防爆" in card.locator(".items").inner_text()
    shot(phone, tmp_path, "expert-visits")
    card.get_by_role("link", name="记录检查").click()
    assert phone.url.endswith(f"/staff/orders/{order_id}/visit")
    shot(phone, tmp_path, "expert-visit-form")

    # search the clauses that apply to the firm, pick one
    phone.get_by_label("搜索条款（编号或关键词）").fill("GM2023:11(3)")
    phone.get_by_role("button", name="搜索").click()
    clauses = phone.locator("#clauses label.clause")
    assert clauses.count() == 1
    clauses.first.locator("input").check()
    phone.get_by_role("button", name="添加所选条款").click()
    block = phone.locator("#finding-0")
    assert GM_11_3 in block.inner_text()  # cited as staff cite it (review 66)
    assert phone.locator("#severity_0").input_value() == "major"  # preset from the clause
    assert phone.locator("#due_0").input_value() == "2026-06-16"  # 15 days for MAJOR
    shot(phone, tmp_path, "expert-visit-picked")
    # a file that only claims to be a PNG, and no description: Chinese errors by the fields
    phone.locator("#photo_0").set_input_files(
        files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"not an image"}]
    )
    phone.get_by_role("button", name="提交检查记录").click()
    assert "只接受JPEG或PNG格式的照片" in phone.locator("#finding-0").inner_text()
    assert "请填写隐患描述" in phone.locator("#finding-0").inner_text()
    assert phone.locator("#severity_0").input_value() == "major"
    # the firm has no sign-in mobile: the expert must confirm the order's contact or
    # type the on-site mobile (review 54 D2)
    assert phone.locator("#on-site-mobile-error").inner_text() == messages.VISIT_MOBILE_NEEDED
    shot(phone, tmp_path, "expert-visit-error")
    assert (
        pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10).status
        == bpb.ORDER_STATUS_DISPATCHED
    )
    phone.locator("#desc_0").fill("干式除尘器未设泄爆装置")
    phone.get_by_label(messages.VISIT_CONTACT_CONFIRM.format(mobile="138****5678")).check()
    phone.locator("#photo_0").set_input_files(
        files=[{"name": "site.png", "mimeType": "image/png", "buffer": PNG}]
    )
    phone.get_by_role("button", name="提交检查记录").click()
    assert phone.url.endswith("/staff/visits?recorded=1")
    assert phone.locator("#recorded").inner_text() == "已保存检查记录"
    assert phone.locator(f"#v-{order_id} .badges").inner_text().startswith("专家已上门")
    shot(phone, tmp_path, "expert-visit-recorded")

    found = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    assert found.status == bpb.ORDER_STATUS_VISITED
    listed = pair.booking.ListTickets(bpb.ListTicketsRequest(page_size=10), timeout=10).tickets
    assert [(t.clause_ref, t.severity, t.due_on) for t in listed] == [
        ("GM2023:11(3)", bpb.SEVERITY_MAJOR, "2026-06-16")
    ]
    with pair.booking_engine.connect() as conn:
        kinds = [r.purpose for r in conn.execute(select(photos))]
        callers = [
            r.caller for r in conn.execute(select(audit_log).where(audit_log.c.entity == "visit"))
        ]
    assert kinds == ["finding"]
    assert callers and callers[0].startswith("staff:chen")


def test_csrf_roles_and_regions_are_enforced(staff: Staff, phone: Any, tmp_path: Path) -> None:
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"], days=range(1, 8))
    pair.expert("E2", ["dust_explosion"], ["江东街道"], days=range(1, 8))
    mine, _ = dispatched(pair, 51, "稠城街道")
    theirs, _ = dispatched(pair, 52, "江东街道", expert="E2")
    staff.user("chen", "expert", expert_id="E1")

    # a POST without the CSRF token: refused before the password is even looked at
    refused = phone.request.post(
        f"{staff.base}/staff/login", form={"username": "chen", "password": PASSWORD}
    )
    assert refused.status == 403 and "页面已过期或来源不明" in refused.text()
    sign_in(phone, staff.base, "chen")
    assert phone.url.endswith("/staff/visits")
    refused = phone.request.post(
        f"{staff.base}/staff/orders/{mine}/visit", multipart={"minutes_on_site": "30"}
    )
    assert refused.status == 403 and "页面已过期或来源不明" in refused.text()
    assert (
        pair.booking.GetOrder(bpb.GetOrderRequest(order_id=mine), timeout=10).status
        == bpb.ORDER_STATUS_DISPATCHED
    )

    # another expert's visit: neither its page nor a post with a valid token
    assert phone.locator(f"#v-{theirs}").count() == 0
    response = phone.goto(f"{staff.base}/staff/orders/{theirs}/visit")
    # answered as an unknown order (tickets-fixes): the expert learns nothing of it
    assert response.status == 404
    assert phone.get_by_text(messages.PAGE_STAFF_NOT_FOUND[1]).is_visible()
    shot(phone, tmp_path, "expert-other-visit")
    phone.goto(f"{staff.base}/staff/orders/{mine}/visit")
    csrf = phone.locator("input[name=csrf]").first.input_value()
    refused = phone.request.post(
        f"{staff.base}/staff/orders/{theirs}/visit",
        multipart={"csrf": csrf, "minutes_on_site": "30"},
    )
    assert refused.status == 404  # as an unknown order (reach-notfound)
    assert (
        pair.booking.GetOrder(bpb.GetOrderRequest(order_id=theirs), timeout=10).status
        == bpb.ORDER_STATUS_DISPATCHED
    )
    # an expert has no recheck queue of a region
    assert phone.goto(f"{staff.base}/staff/tickets").status == 403


def test_a_grpc_token_with_a_region_sees_only_that_region(staff: Staff, tmp_path: Path) -> None:
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道", "江东街道"])
    here = proof_waiting(pair, 61, "稠城街道", "本辖区")
    there = proof_waiting(pair, 62, "江东街道", "外辖区")
    tokens = TokenStore.load(
        _tokens_file(
            tmp_path,
            [
                {
                    "caller": "chengcheng-inspector",
                    "token": "inspector-token-0123456789",
                    "scopes": ["booking.inspector"],
                    "region": "稠城街道",
                },
                {
                    "caller": "city-inspector",
                    "token": "city-token-0123456789",
                    "scopes": ["booking.inspector"],
                },
            ],
        )
    )
    server, port = booking_grpc.create_server(
        pair.ctx, pair.booking_engine, security=Security(tokens)
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = booking_pb2_grpc.BookingServiceStub(channel)
    local = (("authorization", "Bearer inspector-token-0123456789"),)
    city = (("authorization", "Bearer city-token-0123456789"),)
    try:
        listed = stub.ListTickets(bpb.ListTicketsRequest(), metadata=local, timeout=10)
        assert [t.ticket_id for t in listed.tickets] == [here]
        listed = stub.ListTickets(bpb.ListTicketsRequest(), metadata=city, timeout=10)
        assert {t.ticket_id for t in listed.tickets} == {here, there}
        with pytest.raises(grpc.RpcError) as refused:
            stub.RecheckTicket(
                bpb.RecheckTicketRequest(ticket_id=there, passed=True), metadata=local, timeout=10
            )
        # as an unknown ticket (reach-notfound)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert refused.value.details() == messages.no_such("ticket", there)
        assert ticket(pair, there).status == bpb.TICKET_STATUS_SUBMITTED
        passed = stub.RecheckTicket(
            bpb.RecheckTicketRequest(ticket_id=here, passed=True), metadata=local, timeout=10
        )
        assert passed.status == bpb.TICKET_STATUS_VERIFIED
    finally:
        channel.close()
        server.stop(None)


def test_five_wrong_passwords_lock_the_account(staff: Staff, phone: Any, tmp_path: Path) -> None:
    staff.user("lisi", "supervisor")
    refused = "用户名或密码不正确，或账户已锁定（连续5次密码错误锁定15分钟）"
    for attempt in range(1, 6):  # the same answer before and after the lock
        sign_in(phone, staff.base, "lisi", "wrong-password")
        assert phone.locator("#login-error").inner_text() == refused, attempt
    shot(phone, tmp_path, "login-wrong")
    sign_in(phone, staff.base, "lisi")  # the right password, while locked
    assert phone.locator("#login-error").inner_text() == refused
    assert phone.url.endswith("/staff/login")
    # the admin's reset unlocks it
    staff_accounts.reset_password(UnitOfWork(staff.pair.booking_engine), "lisi", PASSWORD)
    sign_in(phone, staff.base, "lisi")
    assert phone.url.endswith("/dashboard")  # a supervisor's start page


def test_supervisor_session_opens_the_dashboard_others_do_not(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    staff.pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    staff.user("zhao", "supervisor")
    staff.user("chen", "expert", expert_id="E1")
    dashboard = f"{staff.base}/dashboard"
    assert phone.request.get(dashboard).status == 401  # no session, no token (Basic prompt)
    sign_in(phone, staff.base, "zhao")
    response = phone.goto(f"{staff.base}/dashboard")
    assert response.status == 200
    shot(phone, tmp_path, "supervisor-dashboard")
    cookie = next(c for c in phone.context.cookies() if c["name"] == "staff_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    phone.context.clear_cookies()
    sign_in(phone, staff.base, "chen")
    assert phone.url.endswith("/staff/visits")
    # an expert's session does not open it: the staff pages' 403, not the browser's
    # password box (review 59 F8: a 401 with the Basic challenge)
    refused = phone.goto(dashboard)
    assert refused is not None and refused.status == 403
    assert phone.get_by_text(messages.PAGE_DASHBOARD_FORBIDDEN[0]).is_visible()
    assert "chen姓名" in phone.locator("#who").inner_text()
    shot(phone, tmp_path, "expert-dashboard-refused")
    # the bearer token still opens it
    assert (
        phone.request.get(
            f"{staff.base}/dashboard", headers={"authorization": f"Bearer {STAFF_TOKEN}"}
        ).status
        == 200
    )


def test_the_finding_expert_rechecks_and_lands_on_their_findings(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    """Review 59 F1: the recheck was saved, then the expert was sent to the queue they may
    not open (403 "无权查看"); nothing in the pages led to the tickets they found."""
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    mine = proof_waiting(pair, 31, "稠城街道", "未建立台账甲")
    staff.user("chen", "expert", expert_id="E1")
    sign_in(phone, staff.base, "chen")
    assert phone.url.endswith("/staff/visits")
    phone.locator("#findings-link").click()
    assert phone.url.endswith("/staff/findings")
    assert "1件" in phone.locator("#waiting h2").inner_text()
    shot(phone, tmp_path, "expert-findings")
    phone.locator(f"#f-{mine}").click()
    assert phone.locator(".crumb a").inner_text() == f"‹ {messages.FINDINGS_LINK}"
    phone.get_by_label("通过", exact=True).check()
    response_status = []
    phone.on("response", lambda r: response_status.append(r.status))
    phone.get_by_role("button", name="提交复查结论").click()
    assert 403 not in response_status
    assert "/staff/findings?" in phone.url
    assert phone.locator("#done").inner_text() == messages.RECHECK_DONE_PASS
    assert "测试五金31号厂" in phone.locator("#saved").inner_text()
    shot(phone, tmp_path, "expert-after-recheck")
    assert ticket(pair, mine).status == bpb.TICKET_STATUS_VERIFIED
    phone.locator("#saved").click()
    assert phone.locator("#ticket-status").inner_text() == "复查通过"
    phone.goto(f"{staff.base}/staff/visits")  # the visit lists what it found, and how it stands
    assert phone.locator(f"ul.found a[href='/staff/tickets/{mine}']").count() == 1
    shot(phone, tmp_path, "expert-visits-found")


def test_line_breaks_are_shown_and_a_long_finding_stays_a_short_card(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    """Review 59 F6: a note's and a description's line breaks were lost on every page;
    F7: a 1,000-character finding made one queue card about 2,000 px tall on a phone."""
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, token = dispatched(pair, 31, "稠城街道")
    described = "灭火器压力不足\n请重新更换"
    long_text = "安全出口堆放杂物" + "甲" * 990
    photo = [bpb.Photo(content=PNG, content_type="image/png")]
    found = pair.booking.RecordVisit(
        ledger_visit(order_id, described, long_text, photos=photo), timeout=10
    )
    short_id, long_id = (t.ticket_id for t in found.tickets)
    for ticket_id in (short_id, long_id):
        pair.booking.SubmitRectification(
            bpb.SubmitRectificationRequest(
                ticket_id=ticket_id,
                qr_token=token,
                note="已更换灭火器\n见照片",
                photo=bpb.Photo(content=PNG),
            ),
            timeout=10,
        )
    staff.user("wangfang", "inspector", region="稠城街道")
    sign_in(phone, staff.base, "wangfang")

    card = phone.locator(f"#q-{long_id}").bounding_box()
    assert card is not None and card["height"] < 200, card
    assert "甲" * 200 not in phone.locator(f"#q-{long_id}").inner_text()
    shot(phone, tmp_path, "queue-long-finding")

    phone.locator(f"#q-{short_id}").click()
    assert phone.locator("#finding .desc").inner_text() == described
    assert phone.locator("#proof-note").inner_text() == "已更换灭火器\n见照片"
    phone.get_by_label("不通过，退回整改").check()
    phone.get_by_label("复查意见").fill("灭火器压力不足\n请重新更换")
    phone.get_by_label("新整改期限").fill("2026-07-20")
    phone.get_by_role("button", name="提交复查结论").click()
    phone.goto(f"{staff.base}/staff/tickets/{short_id}")
    assert phone.locator(".history .why").last.inner_text() == "灭火器压力不足\n请重新更换"
    shot(phone, tmp_path, "ticket-line-breaks")

    # the firm's ticket page, too (signed in with its mobile)
    firm = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm.enterprise_id, phone="13912345678"),
        timeout=10,
    )
    phone.goto(f"{staff.base}/q/{token}/tickets/{short_id}")
    phone.get_by_label("登录手机号").fill("13912345678")
    phone.get_by_role("button", name="获取验证码").click()
    phone.get_by_label("6位验证码").fill(pair.sms.last_code("13912345678"))
    phone.get_by_role("button", name="登录").click()
    assert phone.locator(".desc").first.inner_text() == described
    assert phone.locator("#proof-note").inner_text() == "已更换灭火器\n见照片"
    assert phone.locator(".history .why").last.inner_text() == "灭火器压力不足\n请重新更换"
    phone.goto(f"{staff.base}/staff/tickets/{long_id}")
    assert phone.locator("#finding .desc").inner_text() == long_text  # all of it here


def test_a_second_tab_s_recheck_says_what_happened_and_keeps_the_note(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    """Review 59 F2: two tabs on one ticket; the first passes it, the second's failure
    came back 409 with no message, its note and deadline gone."""
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "未建立台账甲")
    staff.user("wangfang", "inspector", region="稠城街道")
    sign_in(phone, staff.base, "wangfang")
    second = phone.context.new_page()
    try:
        second.goto(f"{staff.base}/staff/tickets/{waiting}")
        phone.goto(f"{staff.base}/staff/tickets/{waiting}")
        phone.get_by_label("通过", exact=True).check()
        phone.get_by_role("button", name="提交复查结论").click()
        assert phone.locator("#done").inner_text() == messages.RECHECK_DONE_PASS

        second.get_by_label("不通过，退回整改").check()
        second.get_by_label("复查意见").fill("还有问题\n消防通道仍堵塞")
        second.get_by_label("新整改期限").fill("2026-07-20")
        with second.expect_response(f"**/staff/tickets/{waiting}") as answer:
            second.get_by_role("button", name="提交复查结论").click()
        assert answer.value.status == 409
        banner = second.locator("#form-error")
        assert banner.is_visible()
        assert messages.RECHECK_NOT_WAITING in banner.inner_text()
        assert second.locator("#taken").inner_text().startswith("您已于")  # own other tab
        assert second.locator("#typed-note").inner_text() == "还有问题\n消防通道仍堵塞"
        assert "2026年7月20日" in second.locator("#typed").inner_text()
        assert second.locator("#ticket-status").inner_text() == "复查通过"
        shot(second, tmp_path, "inspector-second-tab")
    finally:
        second.close()
    assert ticket(pair, waiting).status == bpb.TICKET_STATUS_VERIFIED


def test_a_tab_opened_before_a_failed_recheck_cannot_pass_the_firm_s_new_proof(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    """recheck-round: tab A open on round 1's proof; tab B fails it; the firm sends new
    proof; tab A's pass was saved on a proof its inspector never saw."""
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, token = dispatched(pair, 31, "稠城街道")
    visit = pair.booking.RecordVisit(ledger_visit(order_id, "未建立台账甲"), timeout=10)
    waiting = visit.tickets[0].ticket_id

    def proof(note: str) -> None:
        pair.booking.SubmitRectification(
            bpb.SubmitRectificationRequest(
                ticket_id=waiting, qr_token=token, note=note, photo=bpb.Photo(content=PNG)
            ),
            timeout=10,
        )

    proof("台账照片")
    staff.user("wangfang", "inspector", region="稠城街道")
    sign_in(phone, staff.base, "wangfang")
    tab_b = phone.context.new_page()
    try:
        phone.goto(f"{staff.base}/staff/tickets/{waiting}")  # tab A
        tab_b.goto(f"{staff.base}/staff/tickets/{waiting}")
        tab_b.get_by_label("不通过，退回整改").check()
        tab_b.get_by_label("复查意见").fill("照片不清楚")
        tab_b.get_by_label("新整改期限").fill("2026-07-20")
        tab_b.get_by_role("button", name="提交复查结论").click()
        assert tab_b.locator("#done").inner_text() == messages.RECHECK_DONE_FAIL
    finally:
        tab_b.close()
    proof("台账已补全并张贴在车间门口")

    phone.get_by_label("通过", exact=True).check()
    phone.get_by_label("复查意见").fill("台账齐全")
    with phone.expect_response(f"**/staff/tickets/{waiting}") as answer:
        phone.get_by_role("button", name="提交复查结论").click()
    assert answer.value.status == 409
    assert messages.RECHECK_PROOF_CHANGED in phone.locator("#form-error").inner_text()
    assert phone.locator("#changed").inner_text().startswith("您已于")  # tab B's failure
    assert phone.locator("#typed-note").inner_text() == "台账齐全"
    assert phone.locator("#proof-note").inner_text() == "台账已补全并张贴在车间门口"
    assert not phone.get_by_label("通过", exact=True).is_checked()  # a fresh form
    shot(phone, tmp_path, "inspector-proof-changed")
    assert ticket(pair, waiting).status == bpb.TICKET_STATUS_SUBMITTED
    phone.locator("#see-proof").click()
    assert phone.url.endswith("#proof")

    # the fresh form is about the new proof: a pass from it is saved
    phone.get_by_label("通过", exact=True).check()
    phone.get_by_role("button", name="提交复查结论").click()
    assert phone.locator("#done").inner_text() == messages.RECHECK_DONE_PASS
    assert ticket(pair, waiting).status == bpb.TICKET_STATUS_VERIFIED


def test_staff_pages_cite_a_national_clause_as_staff_cite_it(
    staff: Staff, phone: Any, tmp_path: Path
) -> None:
    """Review 66 point 1: the inspector's queue and ticket page and the expert's clause
    picker name a national clause as an inspection document cites it (the standard's
    title and its article and item; a GB standard's number and section), beside its
    text, not by the ref machines use (GM2023:11(3)), which gRPC and JSON keep."""
    pair = staff.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, token = dispatched(pair, 61, "稠城街道")
    visit = pair.booking.RecordVisit(
        bpb.RecordVisitRequest(
            order_id=order_id,
            findings=[
                bpb.FindingInput(
                    clause_ref="GM2023:11(3)",
                    severity=bpb.SEVERITY_MAJOR,
                    description="干式除尘器无泄爆装置",
                )
            ],
        ),
        timeout=10,
    )
    ticket_id = visit.tickets[0].ticket_id
    assert visit.tickets[0].clause_ref == "GM2023:11(3)"  # machines keep the ref
    pair.booking.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket_id, qr_token=token, note="已加装泄爆片", photo=bpb.Photo(content=PNG)
        ),
        timeout=10,
    )
    staff.user("wangfang", "inspector", region="稠城街道")
    sign_in(phone, staff.base, "wangfang")
    card = phone.locator(f"#q-{ticket_id}").inner_text()
    assert GM_11_3 in card and "GM2023" not in card
    phone.locator(f"#q-{ticket_id}").click()
    cited = phone.locator("#clause-text").inner_text()
    assert cited.startswith(GM_11_3) and "GM2023" not in cited
    assert "干式除尘系统未采取泄爆、惰化、抑爆" in cited  # the text beside it
    shot(phone, tmp_path, "inspector-ticket-cited")

    second, _ = dispatched(pair, 62, "稠城街道", key="k2")
    phone.goto(f"{staff.base}/staff/logout")
    phone.context.clear_cookies()
    staff.user("zhuanjia", "expert", expert_id="E1")
    sign_in(phone, staff.base, "zhuanjia")
    phone.goto(f"{staff.base}/staff/orders/{second}/visit?q=泄爆")
    picker = phone.locator("#clauses").inner_text()
    assert GM_11_3 in picker and "GM2023:" not in picker
