"""The staff pages against what the review of issue 12 tried (review-12.md): control
characters in every staff text field, the dashboard for a region-limited token, sign-in
answers and throttling, logout from the dashboard, far deadlines, expired sessions,
tampered visit forms and banners (uvicorn on real ports, httpx, real databases)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import structlog
from sqlalchemy import Engine, func, select, update

from services.booking.adapters.orm import (
    audit_log,
    staff_accounts,
    staff_sessions,
    tickets,
    visits,
)
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.domain.staff import AddressThrottle, csrf_token
from services.booking.domain.tickets import MAX_DEADLINE_DAYS
from services.booking.entrypoints.web import create_web_app
from services.booking.service_layer import staff_accounts as accounts
from services.booking.service_layer import staff_sessions as sessions
from services.booking.service_layer import staff_views
from services.booking.service_layer.staff_sessions import Outcome
from services.common.auth import TokenStore
from services.common.context import Principal
from services.common.http_server import start_http
from tests.booking_env import Pair, ledger_visit_form
from tests.e2e.test_staff_pages import PASSWORD, Staff, dispatched, proof_waiting, ticket
from tests.integration.booking.test_staff_accounts import add

SUP_TOKEN = "staff-dashboard-token-0123456789"
REGION_TOKEN = "region-inspector-token-0123456789"


class Web(Staff):
    """The staff site of test_staff_pages, with the sign-in and counting steps these
    tests repeat."""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=60)

    def signed_in(self, username: str) -> tuple[httpx.Client, str]:
        c = self.client()
        assert login(c, username).status_code == 303
        return c, csrf_token(c.cookies["staff_session"])

    def count(self, table: object) -> int:
        with self.pair.booking_engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _tokens() -> TokenStore:
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    return TokenStore(
        {
            key(SUP_TOKEN): Principal("sup", frozenset({"booking.read"})),
            key(REGION_TOKEN): Principal(
                "cc-insp",
                frozenset({"booking.inspector", "booking.read"}),
                None,
                None,
                "稠城街道",
            ),
        }
    )


def _web(pair: Pair) -> Iterator[Web]:
    http = start_http(create_web_app(pair.ctx, pair.booking_engine, staff=_tokens()))
    try:
        yield Web(pair, http)
    finally:
        http.stop()


@pytest.fixture
def web(pair: Pair) -> Iterator[Web]:
    yield from _web(pair)


@pytest.fixture
def sqlite_web(sqlite_pair: Pair) -> Iterator[Web]:
    yield from _web(sqlite_pair)


def hidden_value(html: str, name: str) -> str:
    """The value of the page's hidden field `name` (the form's CSRF token, its key)."""
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


def csrf_of(html: str) -> str:
    return hidden_value(html, "csrf")


def login(c: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(c.get("/staff/login").text)
    return c.post("/staff/login", data={"csrf": token, "username": username, "password": password})


def refused_text() -> str:
    return messages.STAFF_SIGN_IN_REFUSED.format(n=5, minutes=15)


def history_len(pair: Pair, ticket_id: str) -> int:
    with pair.booking_engine.connect() as conn:
        return len(
            conn.execute(select(audit_log.c.id).where(audit_log.c.entity_id == ticket_id)).all()
        )


# -- 1. control characters ---------------------------------------------------------------


def test_control_characters_are_refused_next_to_the_field(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    order_id, _ = dispatched(pair, 34, "稠城街道", key="k2")
    web.user("wangfang", "inspector", region="稠城街道")
    web.user("zhuanjia", "expert", expert_id="E1")
    before = history_len(pair, waiting)

    c, tok = web.signed_in("wangfang")
    bad = "a\x00b\x1b[31m"
    form = {"csrf": tok, "result": "fail", "note": bad, "new_due_on": "2026-07-01"}
    answer = c.post(f"/staff/tickets/{waiting}", data=form)
    assert answer.status_code == 400
    assert messages.CONTROL_CHARACTERS in answer.text
    assert history_len(pair, waiting) == before  # nothing written
    # line breaks are allowed in a note
    form["note"] = "第一行\r\n第二行"
    assert c.post(f"/staff/tickets/{waiting}", data=form).status_code == 303
    # an id with NUL names no record (and never reaches the database)
    assert c.get("/staff/tickets/T%00x").status_code == 404

    e, etok = web.signed_in("zhuanjia")
    visit = ledger_visit_form(etok, "台账\x00缺失")
    answer = e.post(f"/staff/orders/{order_id}/visit", data=visit)
    assert answer.status_code == 400
    assert messages.CONTROL_CHARACTERS in answer.text
    assert web.count(visits) == 1  # proof_waiting's visit only

    # sign-in: a name with a control character is the same answer as an unknown name
    answer = login(web.client(), "nul\x00user")
    assert answer.status_code == 401
    assert refused_text() in answer.text
    assert web.count(staff_accounts) == 2


def test_a_recheck_note_as_long_as_the_page_allows_reaches_the_field_check(web: Web) -> None:
    """A urlencoded Chinese character is 9 bytes as Starlette counts them: a note of about
    910 characters (maxlength 1000) hit the form's 8 KB part limit and got a bare 400 page,
    the note lost (review finding 9)."""
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    web.user("wangfang", "inspector", region="稠城街道")
    c, tok = web.signed_in("wangfang")
    form = {"csrf": tok, "result": "fail", "note": "隐" * 1001, "new_due_on": "2026-07-01"}
    answer = c.post(f"/staff/tickets/{waiting}", data=form)
    assert answer.status_code == 400
    assert messages.PROOF_TOO_LONG.format(n=1000) in answer.text  # next to the field
    assert "隐" * 1001 in answer.text  # the text kept in the textarea
    form["note"] = "隐" * 999 + "😀"  # 1,000 characters, the last 12 bytes encoded
    assert c.post(f"/staff/tickets/{waiting}", data=form).status_code == 303
    assert "隐" * 999 + "😀" in ticket(pair, waiting).history[-1].reason
    again = proof_waiting(pair, 32, "稠城街道", "本辖区")
    form["note"] = "隐\r\n" * 500  # a browser sends a textarea's line breaks as CRLF
    assert c.post(f"/staff/tickets/{again}", data=form).status_code == 303  # 1,000 typed
    assert "隐\n" * 499 + "隐" in ticket(pair, again).history[-1].reason


def test_every_staff_and_phone_form_takes_its_longest_field_in_chinese(sqlite_web: Web) -> None:
    """The order note (500), the password (256) and the sign-in return path are sized the
    same way: the field's own check answers, not the form parser."""
    web = sqlite_web
    pair = web.pair
    firm = pair.register_firm(41, industry="light_industry", high_risk_domains=["dust_explosion"])
    token = pair.issue(firm).token
    c = web.client()
    page = c.get(f"/q/{token}/order")
    assert page.status_code == 200, page.text[:300]
    answer = c.post(
        f"/q/{token}/order",
        data={"idempotency_key": "k-long", "contact_name": "郑", "note": "隐" * 501},
    )
    assert answer.status_code == 400, answer.text[:300]
    assert messages.NOTE_TOO_LONG.format(n=500) in answer.text
    typed = {"idempotency_key": "k-crlf", "contact_name": "郑", "note": "隐\r\n" * 250}
    answer = c.post(f"/q/{token}/order", data=typed)  # 500 characters as typed
    assert answer.status_code == 400, answer.text[:300]  # no slot picked …
    assert messages.NOTE_TOO_LONG.format(n=500) not in answer.text  # … but the note fits
    answer = login(web.client(), "wangfang", "密" * 256)
    assert answer.status_code == 401 and refused_text() in answer.text


# -- 3. the dashboard of a region-limited inspector token ----------------------------------


def test_dashboard_keeps_a_region_token_to_its_region(sqlite_web: Web) -> None:
    pair = sqlite_web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道", "江东街道"])
    proof_waiting(pair, 31, "稠城街道", "本辖区隐患")
    proof_waiting(pair, 33, "江东街道", "外辖区隐患")
    pair.clock.today = date(2026, 9, 1)  # both overdue
    c = sqlite_web.client()
    limited = c.get("/dashboard", headers={"Authorization": f"Bearer {REGION_TOKEN}"})
    assert limited.status_code == 200
    assert "本辖区隐患" in limited.text and "外辖区隐患" not in limited.text
    other = c.get("/dashboard?region=江东街道", headers={"Authorization": f"Bearer {REGION_TOKEN}"})
    assert other.status_code == 403 and "外辖区隐患" not in other.text
    everyone = c.get("/dashboard", headers={"Authorization": f"Bearer {SUP_TOKEN}"})
    assert "本辖区隐患" in everyone.text and "外辖区隐患" in everyone.text


# -- 4, 5. one answer to every failed sign-in, a throttle by address, no name in the logs ---


def test_unknown_locked_disabled_and_wrong_get_one_answer(sqlite_web: Web) -> None:
    sqlite_web.user("lisi", "supervisor")
    sqlite_web.user("zhaoliu", "supervisor")
    accounts.disable_user(SqlUnitOfWork(sqlite_web.pair.booking_engine), "zhaoliu")
    c = sqlite_web.client()
    wrong = [login(c, "lisi", "wrong-password") for _ in range(5)]  # the 5th locks
    locked = login(c, "lisi")  # the right password while locked
    unknown = login(c, "nobody-here")
    disabled = login(c, "zhaoliu")
    answers = [*wrong, locked, unknown, disabled]
    assert {a.status_code for a in answers} == {401}
    errors = {re.search(r'id="login-error">([^<]*)<', a.text).group(1) for a in answers}  # type: ignore[union-attr]
    assert errors == {refused_text()}


def test_sign_in_logs_no_name_it_did_not_sign_in(sqlite_web: Web) -> None:
    sqlite_web.user("lisi", "supervisor")
    with structlog.testing.capture_logs() as logged:
        login(sqlite_web.client(), "Pw-in-username-field-9")
        login(sqlite_web.client(), "lisi")
    lines = [e for e in logged if e["event"] == "staff sign-in"]
    assert [e["outcome"] for e in lines] == ["wrong", "signed_in"]
    assert "Pw-in-username-field-9" not in repr(logged)
    assert lines[1]["user"] == "lisi"


def test_failures_from_one_address_are_throttled(staff_engine: Engine) -> None:
    add(staff_engine, "wangfang")
    few = AddressThrottle(max_failures=3, window=timedelta(minutes=15))

    def attempt(name: str, password: str, address: str = "10.0.0.7") -> Outcome:
        return sessions.sign_in(
            SqlUnitOfWork(staff_engine), name, password, address=address, throttle=few
        ).outcome

    assert [attempt(f"guess{i}", "x") for i in range(3)] == [Outcome.WRONG] * 3
    # that address is refused now, even with the right password, and counts no account
    assert attempt("wangfang", "wrong-password") == Outcome.THROTTLED
    assert attempt("wangfang", PASSWORD) == Outcome.THROTTLED
    with staff_engine.connect() as conn:
        row = conn.execute(select(staff_accounts.c.failed_attempts)).one()
    assert row.failed_attempts == 0
    # another address is not
    assert attempt("wangfang", PASSWORD, "10.0.0.8") == Outcome.SIGNED_IN
    # the window passes
    later = sessions.sign_in(
        SqlUnitOfWork(staff_engine),
        "wangfang",
        PASSWORD,
        address="10.0.0.7",
        throttle=AddressThrottle(max_failures=3, window=timedelta(0)),
    )
    assert later.outcome == Outcome.SIGNED_IN


# -- 6. a supervisor signs out from the dashboard -------------------------------------------


def test_supervisor_signs_out_from_the_dashboard(sqlite_web: Web) -> None:
    sqlite_web.user("lisi", "supervisor")
    c, tok = sqlite_web.signed_in("lisi")
    board = c.get("/dashboard")
    assert board.status_code == 200
    assert 'action="/staff/logout"' in board.text and f'value="{tok}"' in board.text
    out = c.post("/staff/logout", data={"csrf": tok})
    assert out.status_code == 303 and out.headers["location"] == "/staff/login?out=1"
    assert c.get("/dashboard").status_code == 401
    # a token holder has no session to end: no form
    token = {"Authorization": f"Bearer {SUP_TOKEN}"}
    assert "/staff/logout" not in sqlite_web.client().get("/dashboard", headers=token).text


# -- 8. an ended session on a form: the login page says so ---------------------------------


def test_an_expired_session_on_a_form_goes_to_the_login(sqlite_web: Web) -> None:
    pair = sqlite_web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    sqlite_web.user("wangfang", "inspector", region="稠城街道")
    c, tok = sqlite_web.signed_in("wangfang")
    idle = datetime.now(UTC) - timedelta(minutes=31)
    with pair.booking_engine.begin() as conn:
        conn.execute(update(staff_sessions).values(last_seen_at=idle, created_at=idle))
    form = {"csrf": tok, "result": "fail", "note": "未整改", "new_due_on": "2026-07-01"}
    answer = c.post(f"/staff/tickets/{waiting}", data=form)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/login?ended=1"
    assert messages.STAFF_SESSION_ENDED in c.get("/staff/login?ended=1").text
    assert c.post("/staff/logout", data={"csrf": tok}).status_code == 303  # not the 403 page


# -- 7. a failed recheck's new deadline has a horizon ---------------------------------------


def test_a_far_new_deadline_is_refused_next_to_the_field(sqlite_web: Web) -> None:
    pair = sqlite_web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    waiting = proof_waiting(pair, 31, "稠城街道", "本辖区")
    sqlite_web.user("wangfang", "inspector", region="稠城街道")
    c, tok = sqlite_web.signed_in("wangfang")
    today = pair.ctx.today()
    last = today + timedelta(days=MAX_DEADLINE_DAYS)
    too_far = messages.DEADLINE_TOO_FAR.format(days=MAX_DEADLINE_DAYS, last=messages.a_day(last))
    for due in ((last + timedelta(days=1)).isoformat(), "2199-12-31", "9999-12-31"):
        form = {"csrf": tok, "result": "fail", "note": "未整改", "new_due_on": due}
        answer = c.post(f"/staff/tickets/{waiting}", data=form)
        assert answer.status_code == 400, due
        assert too_far in answer.text and "须为今天之后" not in answer.text, due
    with pair.booking_engine.connect() as conn:
        status = conn.execute(select(tickets.c.status).where(tickets.c.id == waiting)).scalar_one()
    assert status == "submitted"
    form["new_due_on"] = last.isoformat()
    assert c.post(f"/staff/tickets/{waiting}", data=form).status_code == 303


# -- 9. a tampered visit form: the clause must apply to the firm ----------------------------


def test_a_finding_must_cite_a_clause_of_the_firm(sqlite_web: Web) -> None:
    pair = sqlite_web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 34, "稠城街道")  # a dust-explosion firm
    sqlite_web.user("zhuanjia", "expert", expert_id="E1")
    c, tok = sqlite_web.signed_in("zhuanjia")
    assert pair.ctx.rules.clause_exists("CHEM2017:1")  # it exists, but not for this firm
    # the order's contact is the firm's (review 54 D2)
    finding = ledger_visit_form(tok, "缺失", contact_confirmed="1")
    for ref in ("CHEM2017:1", "XX:1"):  # a chemicals clause; no clause at all
        answer = c.post(f"/staff/orders/{order_id}/visit", data={**finding, "ref_0": ref})
        assert answer.status_code == 400, ref
        shown = re.search(r'id="ref-error-0">([^<]*)<', answer.text)
        assert shown and shown.group(1) == messages.VISIT_CLAUSE_NOT_FOR_FIRM, ref
        assert f'name="ref_0" value="{ref}"' in answer.text
    assert sqlite_web.count(visits) == 0
    done = c.post(f"/staff/orders/{order_id}/visit", data={**finding, "ref_0": "GEN:ledger"})
    assert done.status_code == 303 and sqlite_web.count(visits) == 1


# -- 10. confirmation banners come from fixed codes -------------------------------------------


def test_banners_never_echo_the_query(sqlite_web: Web) -> None:
    sqlite_web.pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    sqlite_web.user("wangfang", "inspector", region="稠城街道")
    sqlite_web.user("zhuanjia", "expert", expert_id="E1")
    c, _ = sqlite_web.signed_in("wangfang")
    injected = "已被管理员注销，请拨打400"
    page = c.get("/staff/tickets", params={"done": injected, "r": "pass"})
    assert page.status_code == 200 and injected not in page.text
    assert 'id="done"' not in page.text
    assert messages.RECHECK_DONE_PASS in c.get("/staff/tickets?done=pass").text
    e, _ = sqlite_web.signed_in("zhuanjia")
    page = e.get("/staff/visits", params={"recorded": injected})
    assert injected not in page.text and 'id="recorded"' not in page.text
    assert messages.VISIT_RECORDED in e.get("/staff/visits?recorded=1").text


def test_the_queue_shows_the_most_urgent_proofs_when_there_are_more(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond QUEUE_LIMIT waiting proofs the queue lists the most urgent (overdue first,
    then by deadline) and says there are more; its filters are applied before the limit.
    (It used to take the first QUEUE_LIMIT by id, then sort and filter those.)"""
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    ids = sorted(proof_waiting(pair, n, "稠城街道", f"问题{n}") for n in (41, 42, 43))
    today = pair.clock.today
    with pair.booking_engine.begin() as conn:  # the highest id is the most urgent
        for days, ticket_id in zip((30, 5, -1), ids, strict=True):
            conn.execute(
                update(tickets)
                .where(tickets.c.id == ticket_id)
                .values(due_on=today + timedelta(days=days))
            )
    monkeypatch.setattr(staff_views, "QUEUE_LIMIT", 2)
    web.user("wangfang", "inspector", region="稠城街道")
    c, _ = web.signed_in("wangfang")

    page = c.get("/staff/tickets").text
    listed = re.findall(r'id="q-([^"]+)"', page)
    assert listed == [ids[2], ids[1]]
    assert "还有更多" in page
    overdue = c.get("/staff/tickets", params={"overdue": "1"}).text
    assert re.findall(r'id="q-([^"]+)"', overdue) == [ids[2]]
    assert "还有更多" not in overdue and "共 1 件待复查" in overdue
    soon = c.get("/staff/tickets", params={"due": "1"}).text
    assert re.findall(r'id="q-([^"]+)"', soon) == [ids[2], ids[1]]


def test_the_visit_form_refuses_more_than_fifty_findings_and_drops_none(
    sqlite_web: Web,
) -> None:
    """Review 47a F8: findings numbered 50 and up were dropped and the visit "recorded"."""
    pair = sqlite_web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 34, "稠城街道")
    sqlite_web.user("zhuanjia", "expert", expert_id="E1")
    c, tok = sqlite_web.signed_in("zhuanjia")

    def block(i: int) -> dict[str, str]:
        return {f"ref_{i}": "GEN:ledger", f"severity_{i}": "general", f"desc_{i}": f"缺失{i}"}

    many = {"csrf": tok, "minutes_on_site": "60"}
    for i in range(51):
        many.update(block(i))
    answer = c.post(f"/staff/orders/{order_id}/visit", data=many)
    assert answer.status_code == 400
    shown = re.search(r'id="form-error">([^<]*)<', answer.text)
    assert shown and shown.group(1) == messages.VISIT_TOO_MANY
    assert sqlite_web.count(visits) == 0
    # a block numbered past 50 is a finding like any other, not dropped
    late = {"csrf": tok, "minutes_on_site": "60", "contact_confirmed": "1", **block(3)}
    late |= block(72)
    done = c.post(f"/staff/orders/{order_id}/visit", data=late)
    assert done.status_code == 303
    assert sqlite_web.count(visits) == 1
    assert sqlite_web.count(tickets) == 2
