"""The firm's own pages over HTTP, what the review of issue 11 found (defects 1, 5, 6 and
the doubts): booking from a hazard whose clause id has "_", a bad yes/no answer in the
self-check, a photo link without a session, the return to the page the visitor came
from after signing in, and the self-check result's wording when nothing was answered.
Real servers (tests/integration/booking/test_web.py's `site`), SQLite."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from sqlalchemy import select

from services.booking.adapters.orm import orders
from services.booking.domain import messages
from services.booking.domain.orders import MAX_CLAUSE_REFS
from services.booking.entrypoints.web import create_web_app
from services.booking.entrypoints.web.firm_session import return_path
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.http_server import start_http
from tests.booking_env import running_pair
from tests.integration.booking.test_web import Site, make_png
from tests.support import ROOT

MOBILE = "13912345678"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """As test_web.py's: the pair, the phone page on a free port, a client."""
    with running_pair(tmp_path) as pair:
        http = start_http(create_web_app(pair.ctx, pair.booking_engine))
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        base = f"http://127.0.0.1:{http.port}"
        with httpx.Client(base_url=base, timeout=20, follow_redirects=False) as client:
            try:
                yield Site(pair, http, client, [])
            finally:
                http.stop()


RISK_REPORT = {
    "hazard_id": "H-41-1",
    "clause_ref": "GEN:risk_report",
    "severity": "general",
    "found_on": "2026-05-20",
    "due_on": "2026-06-19",
    "status": "open",
}


def _book_from(site: Site, token: str, link: str) -> httpx.Response:
    form = site.client.get(link)
    assert form.status_code == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    assert key
    refs = re.findall(r'name="clause_refs" value="([^"]+)"', form.text)
    items = re.findall(r'name="item_codes" value="([^"]+)" checked', form.text)
    return site.order(token, key.group(1), clause_refs=refs, item_codes=items or ["fire_safety"])


def _order_links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(/q/[^"]+/order\?[^"]*)"', page)]


def test_the_firm_books_from_a_hazard_and_a_finding_whose_clause_id_has_an_underscore(
    site: Site,
) -> None:
    firm, token = site.firm(41, high_risk_domains=["dust_explosion"], hazards=[RISK_REPORT])
    site.sign_in(firm, token)
    links = [
        link
        for link in _order_links(site.client.get(f"/q/{token}").text)
        if "GEN%3Arisk_report" in link
    ]
    assert len(links) == 2  # the hazard's button and "book all"
    for link in links:
        booked = _book_from(site, token, link)
        assert booked.status_code == 303, re.findall(r"条款编号格式不正确[^<]*", booked.text)
    result = site.client.post(f"/q/{token}/self-check", data={"gen.no_emergency_plan": "yes"})
    links = [link for link in _order_links(result.text) if "GEN%3Aemergency_plan" in link]
    assert links
    booked = _book_from(site, token, links[0])
    assert booked.status_code == 303
    order_id = booked.headers["location"].rsplit("/", 1)[1]
    with site.pair.booking_engine.connect() as conn:
        refs = conn.scalar(select(orders.c.clause_refs).where(orders.c.id == order_id))
    assert refs == ["GEN:emergency_plan"]


@pytest.mark.parametrize("bad", ["maybe", "1", "true", "yes\x00", "是"])
def test_a_bad_yes_no_answer_is_an_error_at_its_question_and_answers_are_kept(
    site: Site, bad: str
) -> None:
    firm, token = site.firm(42, high_risk_domains=["dust_explosion"])
    site.sign_in(firm, token)
    form = site.client.get(f"/q/{token}/self-check").text
    yes_no = sorted(set(re.findall(r'type="radio" name="([^"]+)"', form)))
    numbers = re.findall(r'inputmode="decimal" name="([^"]+)"', form)
    assert len(yes_no) >= 2 and numbers
    data = {yes_no[0]: bad, yes_no[1]: "yes", numbers[0]: "3"}
    page = site.client.post(f"/q/{token}/self-check", data=data)
    assert page.status_code == 400
    block = re.search(
        rf'id="q-{re.escape(yes_no[0])}">(.*?)</div>\s*(<div class="card|</fieldset)',
        page.text,
        re.S,
    )
    assert block and messages.SELF_CHECK_BAD_YES_NO in html.unescape(block.group(1))
    assert page.text.count('class="error" role="alert"') == 1
    assert re.search(rf'name="{re.escape(yes_no[1])}" value="yes" checked', page.text)
    assert re.search(rf'name="{re.escape(numbers[0])}" maxlength="12" value="3"', page.text)


def test_a_photo_or_ticket_link_without_a_session_signs_in_and_returns_there(
    site: Site,
) -> None:
    firm, token = site.firm(43, name="义乌市森木家具厂")
    site.sign_in(firm, token)
    ticket_id = site.visit(site.placed(token))
    upload = site.client.post(
        f"/q/{token}/tickets/{ticket_id}",
        data={"note": "已整改"},
        files={"photo": ("a.png", make_png(), "image/png")},
    )
    assert upload.status_code == 303
    photo_id = re.search(
        r'/photos/([A-Za-z0-9]+)"', site.client.get(upload.headers["location"]).text
    )
    assert photo_id
    with httpx.Client(base_url=str(site.client.base_url), follow_redirects=False) as anon:
        for path in (f"/q/{token}/photos/{photo_id.group(1)}", f"/q/{token}/tickets/{ticket_id}"):
            sent = anon.get(path)
            assert sent.status_code == 303, path
            assert sent.headers["location"] == f"/q/{token}/sign-in?next={quote(path, safe='')}"
            assert not sent.content.startswith(b"\x89PNG")
            form = anon.get(sent.headers["location"])
            assert f'name="next" value="{path}"' in form.text
            code_page = anon.post(f"/q/{token}/sign-in", data={"phone": MOBILE, "next": path})
            assert f'name="next" value="{path}"' in code_page.text
            done = anon.post(
                f"/q/{token}/sign-in/code",
                data={"phone": MOBILE, "code": site.pair.sms.last_code(MOBILE), "next": path},
            )
            assert done.status_code == 303 and done.headers["location"] == path
            back = anon.get(path)
            assert back.status_code == 200
            anon.post(f"/q/{token}/sign-out")
        assert back.text and "整改" in back.text


def test_sign_in_returns_only_to_the_tokens_own_pages(site: Site) -> None:
    firm, token = site.firm(44)
    site.pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    site.client.post(f"/q/{token}/sign-in", data={"phone": MOBILE})
    done = site.client.post(
        f"/q/{token}/sign-in/code",
        data={"phone": MOBILE, "code": site.pair.sms.last_code(MOBILE), "next": "//evil.test/x"},
    )
    assert done.status_code == 303 and done.headers["location"] == f"/q/{token}"
    home = f"/q/{token}"
    for bad in (
        "https://evil.test/",
        "//evil.test",
        "/\\evil.test",
        "/dashboard",
        "/q/OTHER.TOKEN/tickets/T1",
        f"{home}/../../dashboard",
        f"{home}/tickets/T1?x=1",
        f"{home}/tickets/T1/../../x",
        f"{home}/tickets/",
        f"{home}extra",
        f"{home}/sign-in",
        "",
    ):
        assert return_path(token, bad) == home, bad
    for good in (home, f"{home}/self-check", f"{home}/tickets/T1", f"{home}/orders/B260601AB"):
        assert return_path(token, good) == good


def test_the_self_check_result_says_what_it_rests_on(site: Site) -> None:
    firm, token = site.firm(45, hazards=[RISK_REPORT])
    site.sign_in(firm, token)
    nothing = site.client.post(f"/q/{token}/self-check", data={})
    assert nothing.status_code == 200
    assert "按您的回答" not in nothing.text
    assert messages.SELF_CHECK_BASIS_RECORD in nothing.text  # GEN:risk_report is on record
    answered = site.client.post(f"/q/{token}/self-check", data={"gen.no_emergency_plan": "no"})
    assert messages.SELF_CHECK_BASIS_ANSWERS in answered.text
    other, clean = site.firm(46)
    site.sign_in(other, clean)
    none = site.client.post(f"/q/{clean}/self-check", data={})
    assert "按您的回答" not in none.text
    assert (
        messages.SELF_CHECK_NONE_UNANSWERED in none.text
        or messages.SELF_CHECK_BASIS_RECORD in none.text
    )


def test_more_clause_refs_than_allowed_on_the_form_are_an_error_not_cut(site: Site) -> None:
    _, token = site.firm(47)
    _, key = site.form(token)
    # clauses the rules catalogue knows (the form drops any other: review 54 D8)
    standard = yaml.safe_load((ROOT / "rulesets/gm2023.yaml").read_text(encoding="utf-8"))
    refs = [f"GM2023:{c['id']}" for c in standard["clauses"][: MAX_CLAUSE_REFS + 1]]
    assert len(refs) == MAX_CLAUSE_REFS + 1
    page = site.order(token, key, clause_refs=refs)
    assert page.status_code == 400
    assert messages.TOO_MANY_CLAUSE_REFS.format(n=MAX_CLAUSE_REFS) in page.text


def test_hazards_of_the_decision_without_tickets_are_not_called_none(site: Site) -> None:
    """Review 63: a hazard rules knows (an inspection's) has no ticket here; the tickets
    section under it said "暂无待整改隐患" (nothing to fix) and now says why it is empty.
    A firm without hazards still reads "暂无待整改隐患"."""
    firm, token = site.firm(43, high_risk_domains=["dust_explosion"], hazards=[RISK_REPORT])
    site.sign_in(firm, token)
    page = site.client.get(f"/q/{token}").text
    tickets = page[page.index('id="tickets"') :]
    assert "暂无待整改隐患" not in tickets
    assert messages.HAZARDS_WITHOUT_TICKETS in tickets
    clean, clean_token = site.firm(44)
    site.client.cookies.clear()
    site.sign_in(clean, clean_token, phone="13912345670")
    page = site.client.get(f"/q/{clean_token}").text
    assert "暂无待整改隐患" in page and messages.HAZARDS_WITHOUT_TICKETS not in page
