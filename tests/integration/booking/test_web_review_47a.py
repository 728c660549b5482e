"""The web pages against what review 47a found (review-47a.md): a visit with many phone
photos, the same order submitted again after Back, bodies over a form's limit, the
revocation reason on the firm's page, and the minor notes (uvicorn on real ports, httpx,
SQLite)."""

from __future__ import annotations

import http.client
import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from services.booking.adapters.orm import photos, visits
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.domain.findings import MAX_VISIT_PHOTO_BYTES
from services.booking.domain.staff import EVERY
from services.booking.entrypoints.web.middleware import HEAD_ROOM, VISIT_BODY_LIMIT
from services.booking.service_layer import tickets
from services.booking.service_layer.orders import list_orders
from services.booking.service_layer.outbox import deliver_pending
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as rpb
from tests.e2e.test_staff_pages import dispatched
from tests.integration.booking.test_staff_fixes import SUP_TOKEN, Web, sqlite_web  # noqa: F401
from tests.integration.booking.test_web import Site, block, make_png, site  # noqa: F401

MB = 1024 * 1024


def jpeg(size: int, tag: int) -> bytes:
    """A JPEG by its magic bytes (what the photo check reads), `size` bytes long."""
    return b"\xff\xd8\xff" + bytes([tag % 256]) * (size - 3)


def visit_form(c: httpx.Client, order_id: str, tok: str, n: int) -> dict[str, str]:
    """The visit form with `n` findings, each a different clause of the firm (the
    page's clause list) with the clause's own severity (its least), as the page numbers
    them; the expert confirms that the person met is the order's contact (review 54 D2:
    a firm without a sign-in mobile gets one from its visit)."""
    page = c.get(f"/staff/orders/{order_id}/visit").text
    refs = re.findall(
        r'type="checkbox" name="pick" value="([^"]+)".*?class="badge sev-(\w+)"', page, re.S
    )
    assert len(refs) >= n, len(refs)
    form = {"csrf": tok, "minutes_on_site": "75", "contact_confirmed": "1"}
    for i, (ref, severity) in enumerate(refs[:n]):
        form |= {f"ref_{i}": ref, f"severity_{i}": severity, f"desc_{i}": f"描述{i}号"}
    return form


def expert_at_order(web: Web, firm: int) -> tuple[Any, str, Any, str]:
    """Expert E1 signed in on the staff pages, with an order of firm `firm` dispatched
    to them: (the pair, the order id, the signed-in client, its CSRF token)."""
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, firm, "稠城街道")
    web.user("zhuanjia", "expert", expert_id="E1")
    c, tok = web.signed_in("zhuanjia")
    return pair, order_id, c, tok


# -- F1. a visit with many phone photos --------------------------------------------------------


def test_twenty_findings_each_with_a_phone_photo_are_recorded(sqlite_web: Web) -> None:  # noqa: F811
    pair, order_id, c, tok = expert_at_order(sqlite_web, 41)
    files = {f"photo_{i}": (f"p{i}.jpg", jpeg(4 * MB, i), "image/jpeg") for i in range(20)}
    answer = c.post(
        f"/staff/orders/{order_id}/visit", data=visit_form(c, order_id, tok, 20), files=files
    )
    assert answer.status_code == 303, answer.text[:2000]
    assert sqlite_web.count(visits) == 1
    with pair.booking_engine.connect() as conn:
        sizes = conn.execute(select(photos.c.size)).scalars().all()
    assert sorted(sizes) == [4 * MB] * 20


def test_photos_over_the_visits_total_keep_every_typed_finding(sqlite_web: Web) -> None:  # noqa: F811
    pair, order_id, c, tok = expert_at_order(sqlite_web, 42)
    each = 5 * MB  # at the limit of one photo
    n = MAX_VISIT_PHOTO_BYTES // each + 2  # two too many for the total
    form = visit_form(c, order_id, tok, n) | {
        "due_3": (pair.ctx.today().replace(day=1)).isoformat()
    }
    files = {f"photo_{i}": (f"p{i}.jpg", jpeg(each, i), "image/jpeg") for i in range(n)}
    answer = c.post(f"/staff/orders/{order_id}/visit", data=form, files=files)
    assert answer.status_code == 400
    total = MAX_VISIT_PHOTO_BYTES // MB
    top = re.search(r'id="form-error">([^<]*)<', answer.text)
    assert top and top.group(1) == messages.VISIT_PHOTOS_RESELECT.format(total=total, each=5)
    assert messages.PHOTO_TOO_LARGE not in answer.text  # no photo is over 5 MB
    assert f"发现的隐患（{n}项）" in answer.text
    for i in range(n):  # every description typed, and the deadline typed, are kept
        assert f">描述{i}号</textarea>" in answer.text
    assert f'value="{form["due_3"]}"' in answer.text
    over = messages.VISIT_PHOTO_OVER_TOTAL.format(total=total)
    assert answer.text.count(over) == 2  # next to the two photos past the total
    assert sqlite_web.count(visits) == 0 and sqlite_web.count(photos) == 0


def test_a_body_over_the_visits_limit_says_what_the_limits_are(sqlite_web: Web) -> None:  # noqa: F811
    _, order_id, c, _ = expert_at_order(sqlite_web, 43)
    # a body declared over the limit is answered once its head is read (http.client
    # sends what it is given; the server answers from the declared length)
    conn = http.client.HTTPConnection("127.0.0.1", sqlite_web.http.port, timeout=30)
    headers = {
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(VISIT_BODY_LIMIT + 1),
        "Cookie": f"staff_session={c.cookies['staff_session']}",
    }
    head = (
        b'--x\r\nContent-Disposition: form-data; name="photo_0"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + jpeg(2 * HEAD_ROOM, 0)
    )
    conn.request("POST", f"/staff/orders/{order_id}/visit", body=iter([head]), headers=headers)
    reply = conn.getresponse()
    text = reply.read().decode()
    conn.close()
    assert reply.status == 413  # as every page's body past its limit (review 48 N1)
    limit = VISIT_BODY_LIMIT // MB
    assert messages.VISIT_TOO_LARGE.format(limit=limit, each=5, total=100) in text
    assert messages.PHOTO_TOO_LARGE not in text
    assert sqlite_web.count(visits) == 0


# -- F2. the same order submitted again with a new key ---------------------------------------


def test_the_same_order_with_a_new_key_shows_the_open_one(site: Site) -> None:  # noqa: F811
    firm, token = site.firm(44)
    first = site.placed(token)
    _, key = site.form(token)  # Back: the form fetched again, a new key
    edited = site.order(token, key, contact_name="李经理", note="再提交一次")
    # other contact or note (review 48 F4): not dropped unsaid, not booked twice either
    assert edited.status_code == 409
    assert "没有保存" in edited.text and "李经理" in edited.text and "再提交一次" in edited.text
    link = re.search(r'<a href="([^"]+)" id="earlier-order">', edited.text)
    assert link and link.group(1).endswith(first)
    assert len(orders_of(site, firm)) == 1
    again = site.order(token, key, contact_name="王经理 ")  # as first sent (spaces aside)
    assert again.status_code == 303
    assert again.headers["location"] == f"/q/{token}/orders/{first}?again=1"
    shown = site.client.get(again.headers["location"])
    assert messages.ORDER_SUBMITTED_BEFORE in shown.text and first in shown.text
    assert len(orders_of(site, firm)) == 1
    plain = site.client.get(f"/q/{token}/orders/{first}?again=<b>x</b>")
    assert messages.ORDER_SUBMITTED_BEFORE not in plain.text and "<b>x" not in plain.text

    site.pair.booking.CancelOrder(
        bpb.CancelOrderRequest(order_id=first, reason="企业电话取消"), timeout=10
    )
    _, key = site.form(token)  # once it is cancelled, the same order is a new one
    taken = site.order(token, key)
    assert taken.status_code == 303 and "again" not in taken.headers["location"]
    assert len(orders_of(site, firm)) == 2


def orders_of(on: Site, firm: str) -> list[object]:
    found, _ = list_orders(UnitOfWork(on.pair.booking_engine), firm, "", 10, "", EVERY)
    return list(found)


# -- F5. bodies over a form's limit ------------------------------------------------------------


def test_a_photo_too_big_for_the_request_keeps_the_note(site: Site) -> None:  # noqa: F811
    firm, token = site.firm(45)
    site.sign_in(firm, token)
    ticket_id = site.visit(site.placed(token))
    url = f"/q/{token}/tickets/{ticket_id}"
    page = site.client.get(url).text
    assert page.index('name="note"') < page.index('name="photo"')  # sent first by browsers
    huge = b"\xff\xd8\xff" + b"\x00" * (20 * MB)
    note = "已更换灭火器，\n见照片<b>"
    answer = site.client.post(
        url, data={"note": note}, files={"photo": ("big.jpg", huge, "image/jpeg")}
    )
    assert answer.status_code == 413
    assert messages.PHOTO_TOO_LARGE in block(answer.text, "photo")
    assert ">已更换灭火器，\n见照片&lt;b&gt;</textarea>" in block(answer.text, "note")


def test_forms_without_photos_say_the_text_is_too_long_not_the_photo(site: Site) -> None:  # noqa: F811
    _, token = site.firm(46)
    _, key = site.form(token)
    answer = site.order(token, key, note="长" * 10_000)
    assert answer.status_code == 413
    title, text = messages.PAGE_TOO_LARGE
    assert title in answer.text and text in answer.text
    assert "照片" not in answer.text


# -- F7. a revocation's reason on the firm's page ---------------------------------------------


def test_an_overdue_hazard_after_the_white_list_ended_shows_no_revocation(
    site: Site,  # noqa: F811
) -> None:
    """F7 named the overdue hazard of a revocation ("白名单因事件撤销：隐患T…逾期未整改")
    by its finding, once. The overdue notice revokes nothing here (review 51 C2): the
    hazard's finding, delivered before it, had already ended the firm's entry, so the page
    says what blocks the firm (the open hazard), with no revocation and no ticket id. A
    revocation naming a ticket is shown by its finding (tests/unit/booking/test_guidance.py)."""
    pair = site.pair
    firm, token = site.firm(
        47, industry="light_industry", high_risk_domains=["dust_explosion"], standardization_grade=2
    )
    site.sign_in(firm, token)
    due = pair.clock.today + timedelta(days=1)
    ticket_id = site.visit(site.placed(token), due_on=due.isoformat())
    pair.clock.today = due + timedelta(days=1)
    assert tickets.sweep(UnitOfWork(pair.booking_engine), pair.ctx) == 1
    assert deliver_pending(UnitOfWork(pair.booking_engine), pair.ctx.rules).delivered == 2
    page = site.client.get(f"/q/{token}").text
    found = re.findall(r'<li class="blocker">([^<]*)</li>', page)
    assert not [s for s in found if "白名单因事件撤销" in s], found
    found_on = messages.a_day(due - timedelta(days=1))  # the visit's day, as pages write it
    assert messages.BLOCKER_SENTENCES["open_hazard"].format(arose=found_on) in found
    assert ticket_id not in page.replace(f"/tickets/{ticket_id}", "")  # only in its link


def test_a_revocation_names_a_rule_named_by_a_word_by_its_title_not_its_code(
    site: Site,  # noqa: F811
) -> None:
    """Review 53 N10: the firm read "白名单因事件撤销：发现重大隐患 SMALL:evacuation" had the
    hazard cited a rule the register names by a word; it reads the rule's title, as every
    firm page shows such a rule (shown_clause). A national standard's numbered clause is
    cited as the page's clause lists cite it (labels.cited; review 70)."""
    pair = site.pair
    shown = []
    for n, ref in ((49, "SMALL:evacuation"), (50, "GM2023:3(2)")):
        firm, token = site.firm(n)
        site.sign_in(firm, token)
        day = pair.clock.today.isoformat()
        shown_day = messages.a_day(pair.clock.today)  # as every page writes a day
        event = rpb.EnterpriseEvent(
            event_id=f"major-{n}",
            enterprise_id=firm,
            kind=rpb.EVENT_KIND_MAJOR_HAZARD_FOUND,
            occurred_on=day,
            hazard=rpb.HazardDetail(hazard_id=f"H{n}", clause_ref=ref, due_on=day),
        )
        pair.rules.ReportEvent(rpb.ReportEventRequest(event=event), timeout=10)
        page = site.client.get(f"/q/{token}").text
        found = re.findall(r'<li class="blocker">([^<]*)</li>', page)
        shown += [s for s in found if "白名单因事件撤销" in s]
    assert shown == [
        f"{shown_day} 白名单因事件撤销：发现重大隐患“疏散通道安全出口堵塞”",
        # review 70: a national clause cited as inspection documents cite it (labels.cited)
        f"{shown_day} 白名单因事件撤销：发现重大隐患"
        " 《工贸企业重大事故隐患判定标准》第三条第（二）项",
    ]


# -- minor notes ---------------------------------------------------------------------------------


def test_n2_a_bad_severity_is_said_in_chinese_only(sqlite_web: Web) -> None:  # noqa: F811
    _, order_id, c, tok = expert_at_order(sqlite_web, 48)
    form = visit_form(c, order_id, tok, 1) | {"severity_0": "MAJOR"}
    answer = c.post(f"/staff/orders/{order_id}/visit", data=form)
    assert answer.status_code == 400
    shown = re.search(
        r'id="severity_0".*?<p class="error" role="alert">([^<]*)<', answer.text, re.S
    )
    assert shown and shown.group(1) == messages.FINDING_SEVERITY
    assert not re.search(r"[A-Za-z]", shown.group(1))


def test_n4_a_ticket_with_its_proof_submitted_says_it_waits_not_that_it_is_overdue(
    site: Site,  # noqa: F811
) -> None:
    pair = site.pair
    firm, token = site.firm(49)
    site.sign_in(firm, token)
    due = pair.clock.today + timedelta(days=1)
    ticket_id = site.visit(site.placed(token), due_on=due.isoformat())
    url = f"/q/{token}/tickets/{ticket_id}"
    pair.clock.today = due + timedelta(days=2)
    overdue = site.client.get(url).text
    assert "已逾期" in overdue and 'id="proof-waiting"' not in overdue
    png = make_png()
    sent = site.client.post(
        url, data={"note": "已整改"}, files={"photo": ("f.png", png, "image/png")}
    )
    assert sent.status_code == 303
    page = site.client.get(url).text
    assert "已逾期" not in page and "请尽快整改并上传照片" not in page
    waiting = re.search(r'id="proof-waiting">([^<]*)<', page)
    assert waiting and waiting.group(1) == messages.PROOF_WAITING
    assert 'id="ticket-status">已提交<' in page


def test_n10_a_control_character_in_the_region_is_shown_escaped(sqlite_web: Web) -> None:  # noqa: F811
    c = sqlite_web.client()
    bearer = {"authorization": f"Bearer {SUP_TOKEN}"}
    answer = c.get("/dashboard", params={"region": "稠城\x00街\x1b道"}, headers=bearer)
    assert answer.status_code == 400
    assert "\x00" not in answer.text and "\x1b" not in answer.text
    assert "“稠城\\x00街\\x1b道”" in answer.text


def test_n11_a_negative_count_says_why_it_is_refused(site: Site) -> None:  # noqa: F811
    firm, token = site.firm(50, high_risk_domains=["dust_explosion"])
    site.sign_in(firm, token)
    form = site.client.get(f"/q/{token}/self-check").text
    number = re.findall(r'inputmode="decimal" name="([^"]+)"', form)[0]
    said = {}
    for raw in ("-1", "9999999", "abc"):
        page = site.client.post(f"/q/{token}/self-check", data={number: raw})
        assert page.status_code == 400, raw
        found = re.search(rf'id="q-{re.escape(number)}">.*?role="alert">([^<]*)<', page.text, re.S)
        assert found, raw
        said[raw] = found.group(1)
    assert said["-1"] == messages.SELF_CHECK_NEGATIVE
    assert said["9999999"] == messages.SELF_CHECK_TOO_BIG.format(n=1_000_000)
    assert said["abc"] == messages.SELF_CHECK_BAD_NUMBER


def test_n9_the_dashboard_without_credentials_links_to_the_staff_login(sqlite_web: Web) -> None:  # noqa: F811
    c = sqlite_web.client()
    for path in ("/dashboard", "/dashboard/hazards-by-month.csv"):
        answer = c.get(path)
        assert answer.status_code == 401, path  # scripts see the refusal as before
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["www-authenticate"].startswith("Basic")
        assert re.search(r'<a [^>]*href="/staff/login"[^>]*>工作人员登录</a>', answer.text)
        assert messages.PAGE_DASHBOARD_SIGN_IN[1] in answer.text


def test_n6_a_form_with_nothing_in_it_shows_every_fields_error(site: Site) -> None:  # noqa: F811
    _, token = site.firm(51)
    answer = site.client.post(f"/q/{token}/order", data={})
    assert answer.status_code == 400
    assert messages.FORM_EXPIRED in answer.text
    assert messages.NO_ITEM in block(answer.text, "item_codes")
    assert messages.TOO_FEW_SLOTS.format(n=2) in block(answer.text, "preferred_slots")
    assert messages.NO_NAME in block(answer.text, "contact_name")
    assert messages.BAD_PHONE in block(answer.text, "contact_phone")
