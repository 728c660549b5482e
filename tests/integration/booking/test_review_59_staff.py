"""The staff pages and the dashboard against what review 59 found (F4, F8, F9, F11):
clause codes shown to staff, the dashboard's access for experts and inspectors, bad
dashboard filters, and the small things (uvicorn on real ports, httpx, a real rules
service; the browser tests are tests/e2e/test_staff_pages.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from urllib.parse import unquote

import pytest

from services.booking.domain import messages
from services.common.values import FIRST_YEAR, LAST_YEAR
from tests.booking_env import Pair, ledger_visit, ledger_visit_form
from tests.e2e.test_staff_pages import dispatched, proof_waiting
from tests.integration.booking.test_staff_fixes import REGION_TOKEN, SUP_TOKEN, Web, _web

LEDGER_TEXT = "未建立隐患排查治理台账"  # GEN:ledger's text (rulesets/gen.yaml)


@pytest.fixture
def site(sqlite_pair: Pair) -> Iterator[Web]:
    yield from _web(sqlite_pair)


def codes(html: str) -> list[str]:
    """Internal clause codes a page shows a person (not inside attributes: a form's
    hidden field carries the ref)."""
    text = re.sub(r"<[^>]*>", " ", html)
    return re.findall(r"\b(?:GEN|SMALL):[a-z_]+", text)


def field_error(html: str, name: str) -> str:
    found = re.search(rf'id="error-{name}">([^<]*)<', html)
    return found.group(1) if found else ""


# -- F4: clauses by their text, never by a code -----------------------------------------------


def test_staff_pages_name_a_rule_by_its_text_not_its_code(site: Web) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "台账缺页")  # GEN:ledger
    order_id, _ = dispatched(pair, 34, "稠城街道", key="k2")
    site.user("wangfang", "inspector", region="稠城街道")
    site.user("zhuanjia", "expert", expert_id="E1")
    site.user("lisi", "supervisor")

    c, _ = site.signed_in("wangfang")
    queue = c.get("/staff/tickets").text
    assert "台账缺页" in queue and LEDGER_TEXT in queue and codes(queue) == []
    ticket = c.get(f"/staff/tickets/{waiting}").text
    assert LEDGER_TEXT in ticket and codes(ticket) == []

    e, _ = site.signed_in("zhuanjia")
    form = e.get(f"/staff/orders/{order_id}/visit", params={"pick": "GEN:ledger"}).text
    assert codes(form) == []
    assert re.search(r"<legend>\s*隐患排查治理台账\s*</legend>", form)  # its title
    assert 'name="ref_0" value="GEN:ledger"' in form  # still sent as the ref
    assert "GM2023:11(3)" in form  # a national clause keeps its number
    listed = form.count('<input type="checkbox" name="pick"')
    assert listed > 1 and messages.CLAUSES_FOR_FIRM.format(n=listed) in form

    pair.clock.today += timedelta(days=60)  # the ticket is overdue now
    s, _ = site.signed_in("lisi")
    board = s.get("/dashboard").text
    overdue = board[board.index('id="overdue"') :]
    assert "台账缺页" in overdue and LEDGER_TEXT in overdue and codes(overdue) == []


def test_the_clause_search_counts_its_results_and_knows_the_standard(site: Web) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 34, "稠城街道")
    site.user("zhuanjia", "expert", expert_id="E1")
    e, _ = site.signed_in("zhuanjia")
    dust = e.get(f"/staff/orders/{order_id}/visit", params={"q": "部令第10号 泄爆"}).text
    found = re.findall(r'name="pick" value="([^"]+)"', dust)
    assert found and all(ref.startswith("GM2023:") for ref in found)  # by its edition
    assert messages.CLAUSES_FOUND.format(n=len(found)) in dust
    none = e.get(f"/staff/orders/{order_id}/visit", params={"q": "没有这种条款"}).text
    assert messages.CLAUSES_FOUND.format(n=0) in none
    assert "适用于该企业的条款：0条" not in none  # a search found nothing: not "none apply"


# -- F8: one rule for the dashboard, by token and by session ----------------------------------


def test_an_expert_is_refused_the_dashboard_with_the_staff_page(site: Web) -> None:
    site.pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    site.user("zhuanjia", "expert", expert_id="E1")
    e, tok = site.signed_in("zhuanjia")
    for path in ("/dashboard", "/dashboard/hazards-by-month.csv"):
        refused = e.get(path)
        assert refused.status_code == 403, path
        assert "www-authenticate" not in refused.headers  # no browser password box
        assert messages.PAGE_DASHBOARD_FORBIDDEN[0] in refused.text
        assert 'action="/staff/logout"' in refused.text and f'value="{tok}"' in refused.text
    token = site.client().get("/dashboard", headers={"Authorization": "Bearer dev-expert"})
    assert token.status_code == 401  # an unknown token: as before


def test_an_inspector_opens_the_dashboard_of_their_area_by_session_as_by_token(
    site: Web,
) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道", "江东街道"])
    proof_waiting(pair, 31, "稠城街道", "本辖区隐患")
    proof_waiting(pair, 33, "江东街道", "外辖区隐患")
    pair.clock.today = date(2026, 9, 1)  # both overdue
    site.user("wangfang", "inspector", region="稠城街道")
    c, _ = site.signed_in("wangfang")
    by_session = c.get("/dashboard")
    assert by_session.status_code == 200
    assert "本辖区隐患" in by_session.text and "外辖区隐患" not in by_session.text
    assert "检查员 · 稠城街道" in by_session.text  # the staff bar, with its region
    assert c.get("/dashboard?region=江东街道").status_code == 403
    by_token = site.client().get("/dashboard", headers={"Authorization": f"Bearer {REGION_TOKEN}"})
    assert by_token.status_code == 200
    assert "本辖区隐患" in by_token.text and "外辖区隐患" not in by_token.text
    assert 'href="/dashboard"' in c.get("/staff/tickets").text  # the way there


# -- F9: a bad filter beside its field, the others kept --------------------------------------


def test_bad_dashboard_filters_are_shown_beside_their_fields(site: Web) -> None:
    site.user("lisi", "supervisor")
    s, _ = site.signed_in("lisi")
    cases = [
        ({"from": "2026-12-01", "to": "2026-01-01"}, "from", messages.PERIOD_REVERSED),
        ({"from": "1900-01-01"}, "from", f"{FIRST_YEAR}年至{LAST_YEAR}年"),
        ({"to": "9999-12-31"}, "to", f"{FIRST_YEAR}年至{LAST_YEAR}年"),
        ({"from": "2026-02-30"}, "from", messages.BAD_DATE),
        ({"from": "2020-01-01", "to": "2026-06-01"}, "from", "最长60个月"),
    ]
    for params, name, said in cases:
        page = s.get("/dashboard", params=params)
        assert page.status_code == 400, params
        assert said in field_error(page.text, name), params
        assert messages.FILTERS_NOT_APPLIED in page.text
        assert 'id="headline"' in page.text and "svg" in page.text  # the board all the same
        for key, value in params.items():  # what was typed is kept
            assert f'name="{key}" type="text" value="{value}"' in page.text or (
                f'name="{key}" type="date" value="{value}"' in page.text
            ), (params, key)
    # a region that is none: beside the region, and the period asked for still applied
    page = s.get("/dashboard", params={"region": "稠城", "from": "2026-05-01"})
    assert page.status_code == 400
    assert "“稠城”不是本地的镇街" in field_error(page.text, "region")
    assert "2026年5月1日至" in page.text and field_error(page.text, "from") == ""
    # a download has no form: a 400 page naming the problem
    csv = s.get("/dashboard/hazards-by-month.csv", params={"from": "2026-02-30"})
    assert csv.status_code == 400 and messages.BAD_DATE in csv.text


def test_a_region_by_its_code_is_shown_by_its_name(site: Web) -> None:
    token = {"Authorization": f"Bearer {SUP_TOKEN}"}
    c = site.client()
    page = c.get("/dashboard", params={"region": "330782001"}, headers=token)
    assert page.status_code == 200
    assert "· 稠城街道" in page.text and "· 330782001" not in page.text
    csv = c.get("/dashboard/whitelist.csv", params={"region": "330782001"}, headers=token)
    name = unquote(csv.headers["content-disposition"].split("UTF-8''")[1])
    assert "稠城街道" in name and "330782001" not in name


# -- F11 -------------------------------------------------------------------------------------


def test_a_refused_staff_page_keeps_the_person_s_bar(site: Web) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道", "江东街道"])
    elsewhere = proof_waiting(pair, 33, "江东街道", "外辖区")
    site.user("wangfang", "inspector", region="稠城街道")
    c, tok = site.signed_in("wangfang")
    # another region's ticket reads as an unknown one (reach-notfound)
    for path, status in ((f"/staff/tickets/{elsewhere}", 404), ("/staff/tickets/T-none", 404)):
        page = c.get(path)
        assert page.status_code == status, path
        assert "wangfang姓名" in page.text and f'value="{tok}"' in page.text, path


def test_a_bad_region_keeps_the_queue_s_choices_and_other_filters(site: Web) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    site.user("wangfang", "inspector", region="稠城街道")
    c, _ = site.signed_in("wangfang")
    page = c.get("/staff/tickets", params={"region": "火星", "due": "1"})
    assert page.status_code == 400
    shown = re.search(r'id="region-error">([^<]*)<', page.text)
    assert shown and shown.group(1) == messages.BAD_REGION
    assert '<option value="稠城街道"' in page.text and "本辖区全部（稠城街道）" in page.text
    assert re.search(r'name="due" value="1"\s+checked', page.text)  # kept, and applied
    assert f'id="q-{waiting}"' not in page.text  # due in 30 days
    page = c.get("/staff/tickets", params={"region": "火星"})
    assert page.status_code == 400 and f'id="q-{waiting}"' in page.text  # the area's queue


def test_the_visit_form_tells_a_non_date_from_an_early_one(site: Web) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 34, "稠城街道")
    site.user("zhuanjia", "expert", expert_id="E1")
    e, tok = site.signed_in("zhuanjia")
    base = ledger_visit_form(tok, "缺失", contact_confirmed="1")
    for due, said in (
        ("2026/12/20", messages.BAD_DATE),
        ("2026-12-20T10:00", messages.BAD_DATE),
        ("2026-05-01", messages.VISIT_BAD_DUE),
    ):
        page = e.post(f"/staff/orders/{order_id}/visit", data={**base, "due_0": due})
        assert page.status_code == 400 and said in page.text, due


def test_a_login_name_with_a_nul_is_not_echoed_with_it(site: Web) -> None:
    c = site.client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/staff/login").text)
    assert token
    form = {"csrf": token.group(1), "username": "wang\x00fang", "password": "x" * 12}
    page = c.post("/staff/login", data=form)
    assert page.status_code == 401
    assert "\x00" not in page.text and 'value="wangfang"' in page.text


def test_a_visit_recorded_early_is_filed_under_its_day(site: Web) -> None:
    pair = site.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 35, "稠城街道")  # booked for a half-day 6 days ahead
    pair.booking.RecordVisit(ledger_visit(order_id, "台账缺页"), timeout=10)  # today
    site.user("zhuanjia", "expert", expert_id="E1")
    e, _ = site.signed_in("zhuanjia")
    page = e.get("/staff/visits").text
    heading = re.findall(r"<h2>([^<]*)</h2>", page[: page.index(f'id="v-{order_id}"')])[-1]
    today = pair.ctx.today()
    assert heading.startswith(f"{today.year}年{today.month}月{today.day}日"), heading
    assert "今天" in heading
