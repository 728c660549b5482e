"""The firm's own calls over gRPC (issue 11): the QR token alone may only order and read
an order's number and status; everything else needs the firm's session from the
one-time code (RequestSignInCode + SignIn, metadata firm-session). Real servers, a real
tokens file, SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from services.booking.adapters.orm import audit_log
from services.booking.domain import messages
from services.booking.entrypoints import grpc_server as booking_grpc
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.auth import TokenStore
from services.common.security import Security
from tests.booking_env import Pair, running_pair

TOKENS = {
    "admin": ("tok-admin-firm-access-0123", ["booking.admin"]),
    "reader": ("tok-reader-firm-access-012", ["booking.read"]),
    "expert-E1": ("tok-expert-firm-access-01", ["booking.expert"]),
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MOBILE = "13912345678"
Stub = booking_pb2_grpc.BookingServiceStub


def auth(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[name][0]}"),)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Pair, Stub]]:
    path = tmp_path / "tokens.json"
    entries = [
        {"token": tok, "caller": name, "scopes": scopes}
        | ({"expert_id": "E1"} if name == "expert-E1" else {})
        for name, (tok, scopes) in TOKENS.items()
    ]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    with running_pair(tmp_path) as pair:
        server, port = booking_grpc.create_server(
            pair.ctx, pair.booking_engine, security=Security(TokenStore.load(path))
        )
        server.start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pair, Stub(channel)
        server.stop(None)


def refused(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details() or ""


def _firm(pair: Pair, stub: Stub, n: int = 1) -> tuple[str, str]:
    firm = pair.register_firm(n, high_risk_domains=["dust_explosion"])
    token = stub.IssueQrCode(
        bpb.IssueQrCodeRequest(enterprise_id=firm), metadata=auth("admin"), timeout=10
    ).token
    return firm, token


def _sign_in(pair: Pair, stub: Stub, firm: str, token: str) -> tuple[tuple[str, str], ...]:
    stub.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE),
        metadata=auth("admin"),
        timeout=10,
    )
    stub.RequestSignInCode(bpb.RequestSignInCodeRequest(qr_token=token, phone=MOBILE), timeout=10)
    done = stub.SignIn(
        bpb.SignInRequest(qr_token=token, phone=MOBILE, code=pair.sms.last_code(MOBILE)),
        timeout=10,
    )
    assert done.enterprise_id == firm and done.expires_at
    return (("firm-session", done.session_token),)


def test_the_qr_token_alone_orders_and_reads_only_number_and_status(secured) -> None:  # type: ignore[no-untyped-def]
    pair, stub = secured
    firm, token = _firm(pair, stub)
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    request = pair.order_request(token, item="dust_explosion")
    request.clause_refs.append("GM2023:11(3)")
    placed = stub.CreateOrder(request, timeout=10)
    assert placed.order_id and placed.status == bpb.ORDER_STATUS_DISPATCHED
    assert placed == bpb.Order(order_id=placed.order_id, status=placed.status)
    public = stub.GetOrder(
        bpb.GetOrderRequest(order_id=placed.order_id, qr_token=token), timeout=10
    )
    assert public == bpb.Order(order_id=placed.order_id, status=placed.status)
    private_calls = [
        lambda: stub.ListOrders(bpb.ListOrdersRequest(enterprise_id=firm), timeout=10),
        lambda: stub.CancelOrder(
            bpb.CancelOrderRequest(order_id=placed.order_id, qr_token=token), timeout=10
        ),
        lambda: stub.SubmitRectification(
            bpb.SubmitRectificationRequest(
                ticket_id="T1", qr_token=token, photo=bpb.Photo(content=PNG)
            ),
            timeout=10,
        ),
    ]
    # ListOrders carries no QR token: no credential at all (review 47b F9)
    wanted = [grpc.StatusCode.UNAUTHENTICATED] + [grpc.StatusCode.PERMISSION_DENIED] * 2
    for call, status in zip(private_calls, wanted, strict=True):
        code, message = refused(call)
        assert code == status and "企业本人登录" in message
    # a made-up session is no session
    fake = (("firm-session", "0" * 32 + "." + "A" * 43 + "." + "B" * 43),)
    code, _ = refused(lambda: stub.ListOrders(bpb.ListOrdersRequest(), metadata=fake, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED

    # signed in: the whole order with its clause refs, its own orders only
    session = _sign_in(pair, stub, firm, token)
    mine = stub.GetOrder(
        bpb.GetOrderRequest(order_id=placed.order_id), metadata=session, timeout=10
    )
    assert mine.expert_name == "专家E1" and list(mine.clause_refs) == ["GM2023:11(3)"]
    assert mine.expert_id == ""  # staff ids stay off the firm's view (review 56)
    listed = stub.ListOrders(bpb.ListOrdersRequest(), metadata=session, timeout=10)
    assert [o.order_id for o in listed.orders] == [placed.order_id]
    assert list(listed.orders[0].clause_refs) == ["GM2023:11(3)"]
    other_firm = pair.register_firm(2)
    code, _ = refused(
        lambda: stub.ListOrders(
            bpb.ListOrdersRequest(enterprise_id=other_firm), metadata=session, timeout=10
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # the refs are the firm's and its expert's: not booking.read's listings
    staff = stub.ListOrders(bpb.ListOrdersRequest(), metadata=auth("reader"), timeout=10)
    assert staff.orders and not staff.orders[0].clause_refs
    by_expert = stub.GetOrder(
        bpb.GetOrderRequest(order_id=placed.order_id), metadata=auth("expert-E1"), timeout=10
    )
    assert list(by_expert.clause_refs) == ["GM2023:11(3)"]
    cancelled = stub.CancelOrder(
        bpb.CancelOrderRequest(order_id=placed.order_id), metadata=session, timeout=10
    )
    assert cancelled.status == bpb.ORDER_STATUS_CANCELLED and cancelled.history[-1].actor == "firm"


def test_wrong_expired_foreign_and_too_many_codes_are_refused(secured) -> None:  # type: ignore[no-untyped-def]
    pair, stub = secured
    firm, token = _firm(pair, stub, 3)
    other, other_token = _firm(pair, stub, 4)
    for enterprise in (firm, other):
        stub.SetSignInPhone(
            bpb.SetSignInPhoneRequest(enterprise_id=enterprise, phone=MOBILE),
            metadata=auth("admin"),
            timeout=10,
        )
    # an unknown number: the same answer, no message
    answer = stub.RequestSignInCode(
        bpb.RequestSignInCodeRequest(qr_token=token, phone="13700000000"), timeout=10
    )
    assert answer.expires_in_seconds == 600 and pair.sms.sent == []
    # a code sent for the other firm does not sign this one in
    stub.RequestSignInCode(
        bpb.RequestSignInCodeRequest(qr_token=other_token, phone=MOBILE), timeout=10
    )
    foreign = pair.sms.last_code(MOBILE)
    code, message = refused(
        lambda: stub.SignIn(
            bpb.SignInRequest(qr_token=token, phone=MOBILE, code=foreign), timeout=10
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "验证码错误或已过期" in message
    # five wrong tries, then even the right code is refused
    stub.RequestSignInCode(bpb.RequestSignInCodeRequest(qr_token=token, phone=MOBILE), timeout=10)
    right = pair.sms.last_code(MOBILE)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(5):
        code, message = refused(
            lambda: stub.SignIn(
                bpb.SignInRequest(qr_token=token, phone=MOBILE, code=wrong), timeout=10
            )
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED
    code, message = refused(
        lambda: stub.SignIn(bpb.SignInRequest(qr_token=token, phone=MOBILE, code=right), timeout=10)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "输错次数过多" in message
    # a malformed code names its field
    code, _ = refused(
        lambda: stub.SignIn(
            bpb.SignInRequest(qr_token=token, phone=MOBILE, code="12ab"), timeout=10
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_the_sign_in_mobile_is_set_by_admin_or_the_visiting_expert_and_audited(secured) -> None:  # type: ignore[no-untyped-def]
    pair, stub = secured
    firm, token = _firm(pair, stub, 5)
    setting = bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE)
    code, _ = refused(lambda: stub.SetSignInPhone(setting, metadata=auth("reader"), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = refused(lambda: stub.SetSignInPhone(setting, timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    shown = stub.SetSignInPhone(setting, metadata=auth("admin"), timeout=10)
    assert shown.phone == MOBILE  # booking.admin reads it unmasked
    # the dispatched expert confirms the person on site: a new sign-in mobile
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = stub.CreateOrder(pair.order_request(token, item="dust_explosion"), timeout=10)
    stub.RecordVisit(
        bpb.RecordVisitRequest(order_id=placed.order_id, on_site_mobile="13600001111"),
        metadata=auth("expert-E1"),
        timeout=10,
    )
    stub.RequestSignInCode(
        bpb.RequestSignInCodeRequest(qr_token=token, phone="13600001111"), timeout=10
    )
    assert pair.sms.sent[-1][0] == "13600001111"
    with pair.booking_engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.entity == "firm")).all()
    changes = [(r.caller, (r.after or {}).get("sign_in_phone")) for r in rows]
    assert ("admin", "139****5678") in changes and ("expert-E1", "136****1111") in changes
    assert "13912345678" not in repr(rows) and "13600001111" not in repr(rows)


def test_the_firms_refusals_over_grpc_are_in_chinese(secured) -> None:  # type: ignore[no-untyped-def]
    """Review of issue 11, defect 7: every refusal a firm's own call meets is Chinese."""
    pair, stub = secured
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    firm, token = _firm(pair, stub, 6)
    other, other_token = _firm(pair, stub, 7)
    theirs = stub.CreateOrder(pair.order_request(other_token, item="dust_explosion"), timeout=10)
    session = _sign_in(pair, stub, firm, token)
    no_card = pair.register_firm(8)  # on the rules register, no QR code yet
    cases = [
        (
            lambda: stub.ListOrders(
                bpb.ListOrdersRequest(enterprise_id=other), metadata=session, timeout=10
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            messages.SIGN_IN_OWN_ORDERS_ONLY,
        ),
        (
            lambda: stub.GetOrder(
                bpb.GetOrderRequest(order_id=theirs.order_id), metadata=session, timeout=10
            ),
            grpc.StatusCode.NOT_FOUND,  # as an unknown id: told nothing (reach-notfound)
            messages.no_such("order", theirs.order_id),
        ),
        (
            lambda: stub.CancelOrder(
                bpb.CancelOrderRequest(order_id=theirs.order_id), metadata=session, timeout=10
            ),
            grpc.StatusCode.NOT_FOUND,  # as an unknown id (reach-notfound)
            messages.no_such("order", theirs.order_id),
        ),
        (
            lambda: stub.GetOrder(
                bpb.GetOrderRequest(order_id="B000000NOSUCH"), metadata=session, timeout=10
            ),
            grpc.StatusCode.NOT_FOUND,
            messages.no_such("order", "B000000NOSUCH"),
        ),
        (
            lambda: stub.GetOrder(bpb.GetOrderRequest(order_id=theirs.order_id), timeout=10),
            grpc.StatusCode.UNAUTHENTICATED,  # no credential at all (review 47b F9)
            messages.NEEDS_CREDENTIAL,
        ),
        (
            lambda: stub.CreateOrder(pair.order_request("garbage"), timeout=10),
            grpc.StatusCode.PERMISSION_DENIED,
            "二维码无效（格式不正确）",
        ),
        (
            lambda: stub.SetSignInPhone(
                bpb.SetSignInPhoneRequest(enterprise_id=no_card, phone=MOBILE),
                metadata=auth("admin"),
                timeout=10,
            ),
            grpc.StatusCode.NOT_FOUND,
            messages.SIGN_IN_NO_QR_CODE,
        ),
    ]
    for call, status, text in cases:
        code, message = refused(call)
        assert code == status and message.startswith(text), message


def test_no_credential_at_all_is_unauthenticated_a_credential_not_enough_permission_denied(
    secured,  # type: ignore[no-untyped-def]
) -> None:
    """Review 47b F9: GetOrder, ListOrders, CancelOrder and SubmitRectification with no
    bearer token, no QR token and no session answer UNAUTHENTICATED (sign in), as every
    other RPC does; a QR token or a session that is sent but is not enough stays
    PERMISSION_DENIED (not allowed)."""
    pair, stub = secured
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    _, token = _firm(pair, stub, 9)
    order = stub.CreateOrder(pair.order_request(token, item="dust_explosion"), timeout=10)
    calls = {
        "GetOrder": lambda t, md: stub.GetOrder(
            bpb.GetOrderRequest(order_id=order.order_id, qr_token=t), metadata=md, timeout=10
        ),
        "ListOrders": lambda t, md: stub.ListOrders(
            bpb.ListOrdersRequest(), metadata=md, timeout=10
        ),
        "CancelOrder": lambda t, md: stub.CancelOrder(
            bpb.CancelOrderRequest(order_id=order.order_id, qr_token=t), metadata=md, timeout=10
        ),
        "SubmitRectification": lambda t, md: stub.SubmitRectification(
            bpb.SubmitRectificationRequest(
                ticket_id="T1", qr_token=t, photo=bpb.Photo(content=PNG, content_type="image/png")
            ),
            metadata=md,
            timeout=10,
        ),
    }
    stale = (("firm-session", "no-such-session"),)
    for name, call in calls.items():
        code, _ = refused(lambda c=call: c("", ()))
        assert code == grpc.StatusCode.UNAUTHENTICATED, name
        code, _ = refused(lambda c=call: c("", stale))
        assert code == grpc.StatusCode.PERMISSION_DENIED, name
        if name != "GetOrder":  # the QR token alone reads GetOrder's confirmation
            code, _ = refused(lambda c=call: c(token, ()))
            assert code == (
                grpc.StatusCode.PERMISSION_DENIED
                if name != "ListOrders"  # ListOrders has no qr_token: no credential
                else grpc.StatusCode.UNAUTHENTICATED
            ), name
    assert stub.GetOrder(bpb.GetOrderRequest(order_id=order.order_id, qr_token=token)).status


def test_the_firms_session_reads_its_history_as_its_page_shows_it(secured) -> None:  # type: ignore[no-untyped-def]
    """Review 54 D5: an order taken from expert Y, who declared a conflict of interest
    with the firm, and dispatched to Z. The firm's session reads the experts by name and
    a neutral reason; the authority reads the precise one."""
    pair, stub = secured
    firm, token = _firm(pair, stub, 9)
    pair.expert("Y", ["dust_explosion"], ["稠城街道"])
    placed = stub.CreateOrder(pair.order_request(token, item="dust_explosion"), timeout=10)
    pair.expert("Z", ["dust_explosion"], ["北苑街道"])
    pair.expert("Y", ["dust_explosion"], ["稠城街道"], conflicts=[firm])
    session = _sign_in(pair, stub, firm, token)
    asked = bpb.GetOrderRequest(order_id=placed.order_id)
    as_firm = stub.GetOrder(asked, metadata=session, timeout=10)
    listed = stub.ListOrders(bpb.ListOrdersRequest(), metadata=session, timeout=10).orders
    as_admin = stub.GetOrder(asked, metadata=auth("admin"), timeout=10)
    slot = "，" + as_admin.history[1].reason.split("，")[1]  # the half-day's label
    assert [h.reason for h in as_firm.history] == [
        messages.ORDER_TAKEN,
        messages.DISPATCHED_TO.format(expert="专家Y", slot=slot[1:]),
        messages.TAKEN_FOR_FIRM["again"],
        messages.DISPATCHED_TO.format(expert="专家Z", slot=slot[1:]),
    ]
    assert [h.reason for h in listed[0].history] == [h.reason for h in as_firm.history]
    assert as_firm.expert_name == "专家Z"
    precise = [h.reason for h in as_admin.history]
    assert precise[1] == f"派单给专家 Y{slot}" and "需回避本企业" in precise[2]


def test_the_firms_session_reads_experts_by_name_and_staff_actors_neutrally(secured) -> None:  # type: ignore[no-untyped-def]
    """Review 56: over gRPC the firm's session read Order.expert_id, Ticket.expert_id
    and each Transition.actor raw (an expert's id, a staff caller's name), where the
    phone page shows the expert's name and 专家/工作人员. The firm's session reads the
    name (Order.expert_name, Ticket.expert_name), no id, and the actors "firm",
    "dispatcher" and "staff" (every service or staff caller); staff read them as
    stored."""
    pair, stub = secured
    firm, token = _firm(pair, stub, 10)
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    placed = stub.CreateOrder(pair.order_request(token, item="dust_explosion"), timeout=10)
    found = bpb.FindingInput(clause_ref="GEN:ledger", severity=bpb.SEVERITY_GENERAL)
    found.description = "未建立隐患排查治理台账"
    visit = stub.RecordVisit(
        bpb.RecordVisitRequest(order_id=placed.order_id, findings=[found]),
        metadata=auth("expert-E1"),
        timeout=10,
    )
    session = _sign_in(pair, stub, firm, token)
    asked = bpb.GetOrderRequest(order_id=placed.order_id)
    as_firm = stub.GetOrder(asked, metadata=session, timeout=10)
    listed = stub.ListOrders(bpb.ListOrdersRequest(), metadata=session, timeout=10).orders[0]
    for order in (as_firm, listed):
        assert order.expert_id == "" and order.expert_name == "专家E1"
        assert [h.actor for h in order.history] == ["firm", "dispatcher", "staff"]
    as_admin = stub.GetOrder(asked, metadata=auth("admin"), timeout=10)
    assert as_admin.expert_id == "E1" and as_admin.expert_name == "专家E1"
    assert [h.actor for h in as_admin.history] == ["firm", "dispatcher", "expert-E1"]
    proved = stub.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=visit.tickets[0].ticket_id, photo=bpb.Photo(content=PNG)
        ),
        metadata=session,
        timeout=10,
    )
    assert proved.expert_id == "" and proved.expert_name == "专家E1"
    assert [h.actor for h in proved.history] == ["staff", "firm"]
    staff = stub.ListTickets(bpb.ListTicketsRequest(), metadata=auth("admin"), timeout=10)
    [ticket] = staff.tickets
    assert ticket.expert_id == "E1" and ticket.expert_name == "专家E1"
    assert [h.actor for h in ticket.history] == ["expert-E1", "firm"]
    assert "E1" not in repr([as_firm, listed, proved]).replace("专家E1", "")
