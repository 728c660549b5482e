"""The phone and staff pages' small defects (branch pages-polish), over real HTTP (uvicorn
on a real port, httpx, SQLite): clause codes on the order form and order page, a proof
waiting for its recheck on the firm's lists, the per-QR-token post limit on a form,
another firm's record through a valid QR code, the staff pages' error layout, and a
visit form with the same clause twice sent back with an error."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.entrypoints.web import create_web_app
from services.booking.entrypoints.web.limits import WebLimits
from services.common.http_server import start_http
from services.common.ratelimit import Rate
from tests.booking_env import running_pair
from tests.integration.booking.test_firm_page_web import RISK_REPORT, _order_links
from tests.integration.booking.test_staff_fixes import Web, sqlite_web  # noqa: F401
from tests.integration.booking.test_web import Site, make_png, site  # noqa: F401
from tests.integration.booking.test_web_review_47a import expert_at_order

RISK_REPORT_TEXT = "未按规定每季度至少报告一次安全风险"  # rulesets/gen.yaml risk_report
GM_3_1 = "GM2023:3(1)"
GM_3_1_TEXT = "未对承包单位、承租单位的安全生产工作统一协调、管理"  # rulesets/gm2023.yaml 3(1)
# GM2023:3(1) as inspection documents cite it (labels.cited; review 70: the firm's pages too)
GM_3_1_CITED = "《工贸企业重大事故隐患判定标准》第三条第（一）项"
PHONE_BRAND = "安全生产 · 扫码点单"
STAFF_BRAND = "安全生产 · 工作人员"


def shown(page: str) -> str:
    """What a person reads on the page: its text, without tags and their attributes
    (a hidden input's value, a link's query)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def element(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</(div|dd|ul)>', page, re.S)
    assert found, element_id
    return shown(found.group(1))


# -- 1. a clause as the ticket page shows it: by its number, or a rule by its text ----------


def test_the_order_form_and_the_order_show_a_worded_rule_by_its_text(site: Site) -> None:  # noqa: F811
    firm, token = site.firm(61, high_risk_domains=["dust_explosion"], hazards=[RISK_REPORT])
    site.sign_in(firm, token)
    landing = site.client.get(f"/q/{token}").text
    assert "GEN:" not in shown(landing)  # the hazard's card: its text, not its code
    link = next(x for x in _order_links(landing) if "GEN%3Arisk_report" in x)
    form = site.client.get(f"{link}&ref={GM_3_1}")
    assert form.status_code == 200
    refs = element(form.text, "clause-refs")
    assert RISK_REPORT_TEXT in refs and GM_3_1_CITED in refs and GM_3_1_TEXT in refs
    assert GM_3_1 not in refs  # cited, not the machine id (review 70)
    assert "GEN:" not in shown(form.text)
    # the refs still travel with the form, to be stored on the order
    sent = re.findall(r'name="clause_refs" value="([^"]+)"', form.text)
    assert sent == ["GEN:risk_report", GM_3_1]
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    assert key
    refused = site.order(token, key.group(1), clause_refs=sent, contact_phone="1")
    assert refused.status_code == 400  # the form shown again: the same clauses, as text
    assert RISK_REPORT_TEXT in element(refused.text, "clause-refs")
    assert "GEN:" not in shown(refused.text)
    placed = site.order(token, key.group(1), clause_refs=sent)
    assert placed.status_code == 303, placed.text
    order = site.client.get(placed.headers["location"]).text
    refs = element(order, "clause-refs")
    assert RISK_REPORT_TEXT in refs and GM_3_1_CITED in refs and GM_3_1_TEXT in refs
    assert GM_3_1 not in refs
    assert "GEN:" not in shown(order)


def test_a_worded_rule_without_its_text_is_not_shown_by_its_code(site: Site) -> None:  # noqa: F811
    """While the rules service cannot give a rule's text, the pages say so, not its code."""
    _, token = site.firm(62)

    def unreachable(ref: str) -> None:  # and nothing cached (review 54 D8: a clause the
        raise RulesUnavailable("UNAVAILABLE")  # catalogue answers it does not know is dropped)

    site.pair.ctx.rules.clause = unreachable  # type: ignore[method-assign]
    form = site.client.get(f"/q/{token}/order?ref=SMALL:smoke&ref={GM_3_1}")
    refs = element(form.text, "clause-refs")
    # the national clause still cited, from the standards' names cached at start
    assert messages.CLAUSE_TEXT_UNAVAILABLE in refs and GM_3_1_CITED in refs
    assert "SMALL:" not in shown(form.text)


CRAFTED = [":", "GEN:", "GEN:led ger", "GEN:" + "x" * 60, "GEN:r0", "XX:1"]


def _stored_refs(web: Site, order_id: str) -> list[str]:
    with UnitOfWork(web.pair.booking_engine) as uow:
        order = uow.register.order(order_id)
        assert order is not None
        return list(order.clause_refs)


def test_refs_the_catalogue_does_not_know_are_neither_shown_nor_stored(site: Site) -> None:  # noqa: F811
    """Review 54 D8: a crafted ?ref= that names no clause was shown as "temporarily
    unavailable" and stored on the order (up to 20)."""
    firm, token = site.firm(64)
    site.sign_in(firm, token)
    query = "&".join(f"ref={quote(r)}" for r in [*CRAFTED, GM_3_1])
    form = site.client.get(f"/q/{token}/order?{query}")
    assert form.status_code == 200
    assert re.findall(r'name="clause_refs" value="([^"]+)"', form.text) == [GM_3_1]
    assert messages.CLAUSE_TEXT_UNAVAILABLE not in form.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    assert key
    placed = site.order(token, key.group(1), clause_refs=["GEN:r1", GM_3_1, "GEN:r2"])
    assert placed.status_code == 303, placed.text  # an edited form: its unknown refs dropped
    order_id = placed.headers["location"].rsplit("/", 1)[1]
    assert _stored_refs(site, order_id) == [GM_3_1]
    page = site.client.get(placed.headers["location"]).text
    assert messages.CLAUSE_TEXT_UNAVAILABLE not in page and GM_3_1_TEXT in page


def test_while_the_catalogue_cannot_be_had_the_refs_are_kept(site: Site) -> None:  # noqa: F811
    firm, token = site.firm(65)
    site.sign_in(firm, token)

    def unreachable(ref: str) -> None:
        raise RulesUnavailable("UNAVAILABLE")

    site.pair.ctx.rules.clause = unreachable  # type: ignore[method-assign]
    form = site.client.get(f"/q/{token}/order?ref=GEN:r0&ref={GM_3_1}")
    assert re.findall(r'name="clause_refs" value="([^"]+)"', form.text) == ["GEN:r0", GM_3_1]
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    assert key
    placed = site.order(token, key.group(1), clause_refs=["GEN:r0", GM_3_1])
    assert placed.status_code == 303, placed.text
    assert _stored_refs(site, placed.headers["location"].rsplit("/", 1)[1]) == ["GEN:r0", GM_3_1]


# -- 2. a proof waiting for its recheck is not "overdue" on the firm's lists ---------------


def test_a_ticket_whose_proof_waits_is_not_overdue_on_the_landing_or_the_order(
    site: Site,  # noqa: F811
) -> None:
    firm, token = site.firm(63)
    site.sign_in(firm, token)
    order_id = site.placed(token)
    today = site.pair.clock.today
    ticket_id = site.visit(order_id, due_on=(today + timedelta(days=1)).isoformat())
    site.pair.clock.today = today + timedelta(days=3)
    assert "已逾期" in site.client.get(f"/q/{token}").text  # before the proof: overdue
    sent = site.client.post(
        f"/q/{token}/tickets/{ticket_id}",
        data={"note": "已整改"},
        files={"photo": ("f.png", make_png(), "image/png")},
    )
    assert sent.status_code == 303
    for path in (f"/q/{token}", f"/q/{token}/orders/{order_id}"):
        page = site.client.get(path).text
        assert "已逾期" not in page and "overdue" not in page, path
        assert 'class="banner danger"' not in page, path
        assert f"/tickets/{ticket_id}" in page and "已提交" in page, path
    # due soon, proof sent: no reminder either (the ticket page shows neither)
    site.pair.clock.today = today
    landing = site.client.get(f"/q/{token}").text
    assert "整改提醒" not in landing and "即将到期" not in landing


# -- 3. the per-QR-token post limit on a form: the form comes back, kept -------------------

POSTS = 4  # sign-in (2 posts) per token; then per session: an order, a proof, two more


@pytest.fixture
def limited_site(tmp_path: Path) -> Iterator[Site]:
    """`site`, with a per-QR-token post limit of POSTS, refilled once an hour."""
    limits = WebLimits(
        per_address=Rate.per_minute(1000, burst=1000),
        posts_per_address=Rate.per_minute(1000, burst=1000),
        posts_per_token=Rate(per_second=1 / 3600, burst=POSTS),
    )
    with running_pair(tmp_path) as pair:
        http = start_http(create_web_app(pair.ctx, pair.booking_engine, limits=limits))
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        base = f"http://127.0.0.1:{http.port}"
        with httpx.Client(base_url=base, timeout=20, follow_redirects=False) as client:
            try:
                yield Site(pair, http, client, [])
            finally:
                http.stop()


def too_fast(answer: httpx.Response, text: str = messages.POSTS_TOO_FAST) -> str:
    return text.format(seconds=answer.headers["Retry-After"])


def test_a_form_over_the_post_limit_comes_back_with_what_was_typed(limited_site: Site) -> None:
    web = limited_site
    firm, token = web.firm(64)
    web.sign_in(firm, token)
    ticket_id = web.visit(web.placed(token))
    url = f"/q/{token}/tickets/{ticket_id}"
    sent = web.client.post(url, data={"note": "第一次"}, files={"photo": ("a.png", make_png())})
    assert sent.status_code == 303
    for _ in range(2):  # the session's POSTS posts spent
        assert web.client.post(f"/q/{token}/order", data={}).status_code == 400
    _, key = web.form(token)
    order = web.order(token, key, note="限流时的备注", contact_name="冯师傅")
    assert order.status_code == 429
    assert int(order.headers["Retry-After"]) >= 1
    assert too_fast(order) in order.text and PHONE_BRAND in order.text
    assert 'value="冯师傅"' in order.text and "限流时的备注" in order.text
    assert f'name="idempotency_key" value="{key}"' in order.text  # sent again later: one order
    assert f'value="{web.pair.slot(2)}" checked' in order.text
    proof = web.client.post(url, data={"note": "限流说明"}, files={"photo": ("b.png", make_png())})
    assert proof.status_code == 429 and int(proof.headers["Retry-After"]) >= 1
    assert too_fast(proof, messages.PROOF_POSTS_TOO_FAST) in proof.text
    assert "限流说明" in proof.text
    assert 'id="ticket-status">已提交<' in proof.text  # the ticket's page, nothing new stored
    other = web.client.post(f"/q/{token}/sign-out")  # any other post: the phone page's layout
    assert other.status_code == 429 and int(other.headers["Retry-After"]) >= 1
    assert messages.PAGE_TOO_MANY[0] in other.text and PHONE_BRAND in other.text
    assert 'href="/static/site.css"' in other.text


# -- 4. another firm's record through a valid QR code: not found ---------------------------


def test_another_firms_order_and_ticket_through_a_valid_code_are_not_found(
    site: Site,  # noqa: F811
) -> None:
    firm, token = site.firm(65, name="甲企业五金厂")
    other_firm, other = site.firm(66, name="乙企业纺织厂")
    site.sign_in(firm, token)
    order_id = site.placed(token)
    ticket_id = site.visit(order_id)
    site.client.post(
        f"/q/{token}/tickets/{ticket_id}",
        data={"note": "ok"},
        files={"photo": ("a.png", make_png(), "image/png")},
    )
    page = site.client.get(f"/q/{token}/tickets/{ticket_id}").text
    photo = re.search(r'/photos/([A-Za-z0-9]+)"', page)
    assert photo
    site.sign_in(other_firm, other)  # firm B's own session and QR code
    for path in (
        f"/q/{other}/orders/{order_id}",
        f"/q/{other}/tickets/{ticket_id}",
        f"/q/{other}/photos/{photo.group(1)}",
    ):
        answer = site.client.get(path)
        assert answer.status_code == 404, path
        assert messages.PAGE_NOT_FOUND[1] in answer.text, path
        assert messages.PAGE_QR_INVALID[0] not in answer.text, path
        for secret in ("甲企业", "台账", order_id, ticket_id):
            assert secret not in answer.text, (path, secret)
    nothing = site.client.get(f"/q/{other}/orders/B260601NOSUCH")  # the same answer
    assert nothing.status_code == 404 and messages.PAGE_NOT_FOUND[1] in nothing.text


# -- 5. the staff pages' errors in the staff layout -----------------------------------------


def test_staff_error_pages_have_the_staff_layout(sqlite_web: Web) -> None:  # noqa: F811
    sqlite_web.user("wangfang", "inspector", region="稠城街道")
    c, _ = sqlite_web.signed_in("wangfang")
    answers = {
        "no such page": c.get("/staff/nosuch"),
        "no such ticket": c.get("/staff/tickets/TNOSUCH"),
        "wrong method": c.delete("/staff/tickets"),
        "no CSRF token": c.post("/staff/tickets/TNOSUCH", data={"result": "pass"}),
    }
    for what, answer in answers.items():
        assert answer.status_code in (403, 404, 405), what
        assert STAFF_BRAND in answer.text and PHONE_BRAND not in answer.text, what
        assert "扫码" not in answer.text and 'lang="zh-CN"' in answer.text, what
    assert messages.PAGE_STAFF_NOT_FOUND[1] in answers["no such ticket"].text
    assert messages.PAGE_NO_SUCH_PAGE[0] in answers["no such page"].text
    phone = c.get("/q/nosuch/nothing")  # the phone page keeps its own
    assert phone.status_code == 404 and PHONE_BRAND in phone.text
    tight = WebLimits(  # the rate limits' page too
        per_address=Rate(per_second=1 / 3600, burst=1),
        posts_per_address=Rate.per_minute(1000, burst=1000),
        posts_per_token=Rate.per_minute(1000, burst=1000),
    )
    pair = sqlite_web.pair
    http = start_http(create_web_app(pair.ctx, pair.booking_engine, limits=tight))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http.port}", timeout=20) as client:
            assert client.get("/staff/login").status_code == 200
            refused = client.get("/staff/login")
    finally:
        http.stop()
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert STAFF_BRAND in refused.text and messages.PAGE_TOO_MANY[0] in refused.text


# -- 6. the visit form: the same clause twice, sent back with an error ----------------------


def _findings(page: str) -> list[tuple[str, str, str, str]]:
    """Each finding block as the page numbers it: (number, its ref, its description, its
    error messages)."""
    fieldset = r'<fieldset class="card finding" id="finding-(\d+)">(.*?)</fieldset>'
    blocks = re.findall(fieldset, page, re.S)
    found = []
    for number, body in blocks:
        ref = re.search(rf'name="ref_{number}" value="([^"]*)"', body)
        desc = re.search(rf'name="desc_{number}"[^>]*>([^<]*)</textarea>', body)
        errors = " ".join(re.findall(r'class="error" role="alert"[^>]*>([^<]*)<', body))
        assert ref and desc, number
        found.append((number, ref.group(1), html.unescape(desc.group(1)), errors))
    return found


def test_the_same_clause_twice_comes_back_numbered_as_typed(sqlite_web: Web) -> None:  # noqa: F811
    _, order_id, c, tok = expert_at_order(sqlite_web, 67)
    page = c.get(f"/staff/orders/{order_id}/visit").text
    clauses = re.findall(r'name="pick" value="([^"]+)".*?class="badge sev-(\w+)"', page, re.S)
    other, level = next((r, sev) for r, sev in clauses if r != "GEN:ledger")
    form = {"csrf": tok, "minutes_on_site": "45", "contact_confirmed": "1"}
    typed = [("GEN:ledger", "一号仓库无台账"), ("GEN:ledger", "二号仓库无台账"), (other, "")]
    for i, (ref, desc) in enumerate(typed):
        form |= {f"ref_{i}": ref, f"severity_{i}": "general", f"desc_{i}": desc}
    form["severity_2"] = level  # its clause's own (a MAJOR clause is never GENERAL)
    answer = c.post(f"/staff/orders/{order_id}/visit", data=form)
    assert answer.status_code == 400
    shown_back = _findings(answer.text)
    assert [(n, r, d) for n, r, d, _ in shown_back] == [
        ("0", "GEN:ledger", "一号仓库无台账"),
        ("1", "GEN:ledger", "二号仓库无台账"),
        ("2", other, ""),
    ]
    assert [bool(e) for *_, e in shown_back] == [False, False, True]  # the third's error
    assert "发现的隐患（3项）" in answer.text
    # blocks numbered with gaps (0, 5) come back numbered 0, 1, each with its own error
    gaps = {"csrf": tok, "minutes_on_site": "45", "ref_0": "GEN:ledger", "severity_0": "general"}
    gaps |= {"desc_0": "", "ref_5": "GEN:ledger", "severity_5": "general", "desc_5": "五号"}
    answer = c.post(f"/staff/orders/{order_id}/visit", data=gaps)
    assert answer.status_code == 400
    back = _findings(answer.text)
    assert [(n, r, d, bool(e)) for n, r, d, e in back] == [
        ("0", "GEN:ledger", "", True),
        ("1", "GEN:ledger", "五号", False),
    ]
    form["desc_2"] = "三号"  # corrected: three findings, the same clause twice
    done = c.post(f"/staff/orders/{order_id}/visit", data=form)
    assert done.status_code == 303


# -- review 70: the firm's pages cite a national clause as inspection documents do ---------

CHEM_TITLE = "化工和危险化学品生产经营单位重大生产安全事故隐患判定标准（试行）"


def _hazard(n: int, ref: str, severity: str = "major") -> dict[str, str]:
    return {
        "hazard_id": f"H-70-{n}",
        "clause_ref": ref,
        "severity": severity,
        "found_on": "2026-05-20",
        "due_on": "2026-06-19",
        "status": "open",
    }


def test_the_firm_pages_cite_a_national_clause_not_its_id(site: Site) -> None:  # noqa: F811
    """Review 70: the landing page's hazards, the order form they fill and the self-check
    name a national clause as staff and inspection documents cite it, never by its id."""
    hazards = [_hazard(1, "FIRE35181:6.2"), _hazard(2, "CHEM2017:11"), _hazard(3, GM_3_1)]
    firm, token = site.firm(70, high_risk_domains=["dust_explosion"], hazards=hazards)
    site.sign_in(firm, token)
    landing = shown(site.client.get(f"/q/{token}").text)
    for cited in ("GB 35181-2017 第6.2条", f"《{CHEM_TITLE}》第十一项", GM_3_1_CITED):
        assert cited in landing
    assert not re.search(r"(FIRE35181|CHEM2017|GM2023):", landing)
    links = [link for link in _order_links(site.client.get(f"/q/{token}").text) if "FIRE" in link]
    form = site.client.get(links[0])
    assert "GB 35181-2017 第6.2条" in element(form.text, "clause-refs")
    assert "FIRE35181:" not in shown(form.text)
    questions = shown(site.client.get(f"/q/{token}/self-check").text)
    assert "《工贸企业重大事故隐患判定标准》第十一条第（" in questions  # the dust questions
    assert not re.search(r"(FIRE35181|CHEM2017|GM2023):", questions)
