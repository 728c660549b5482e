"""Review 54 D2 over gRPC (real servers, SQLite): RecordVisit's order contact becomes the
firm's sign-in mobile only when the expert confirmed in person that it is the person met
(`contact_confirmed`). A passer-by who scanned the public poster and ordered with their
own mobile gets nothing from a visit recorded with the on-site mobile left blank; a
confirmed contact, or a typed on-site mobile, signs in."""

from __future__ import annotations

from sqlalchemy import select

from services.booking.adapters.orm import firm_cards
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, ledger_visit

STRANGER = "13700000001"


def _visited(pair: Pair, n: int, **visit: object) -> tuple[str, str]:
    """Firm `n` ordered with STRANGER's mobile, its visit recorded with `visit`'s
    fields: (enterprise id, QR token)."""
    firm = pair.register_firm(n, high_risk_domains=["dust_explosion"])
    token = pair.issue(firm).token
    order = pair.booking.CreateOrder(
        pair.order_request(token, item="dust_explosion", phone=STRANGER), timeout=10
    )
    request = ledger_visit(order.order_id, "未建立隐患排查治理台账")
    for name, value in visit.items():
        setattr(request, name, value)
    pair.booking.RecordVisit(request, timeout=10)
    return firm, token


def _sign_in_mobile(pair: Pair, firm: str) -> str:
    with pair.booking_engine.connect() as conn:
        row = conn.execute(
            select(firm_cards.c.sign_in_phone).where(firm_cards.c.enterprise_id == firm)
        ).one()
    return str(row.sign_in_phone)


def _code_sent(pair: Pair, token: str, phone: str) -> bool:
    before = len(pair.sms.sent)
    pair.booking.RequestSignInCode(
        bpb.RequestSignInCodeRequest(qr_token=token, phone=phone), timeout=10
    )
    return any(p == phone for p, _ in pair.sms.sent[before:])


def test_a_blank_on_site_mobile_not_confirmed_gives_the_orderer_nothing(
    sqlite_pair: Pair,
) -> None:
    sqlite_pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    firm, token = _visited(sqlite_pair, 1)
    assert _sign_in_mobile(sqlite_pair, firm) == ""
    assert not _code_sent(sqlite_pair, token, STRANGER)


def test_the_confirmed_contact_signs_in(sqlite_pair: Pair) -> None:
    sqlite_pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    firm, token = _visited(sqlite_pair, 2, contact_confirmed=True)
    assert _sign_in_mobile(sqlite_pair, firm) == STRANGER
    assert _code_sent(sqlite_pair, token, STRANGER)


def test_a_typed_on_site_mobile_signs_in_and_wins_over_the_box(sqlite_pair: Pair) -> None:
    sqlite_pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    firm, token = _visited(sqlite_pair, 3, on_site_mobile="13600001111", contact_confirmed=True)
    assert _sign_in_mobile(sqlite_pair, firm) == "13600001111"
    assert _code_sent(sqlite_pair, token, "13600001111")
    assert not _code_sent(sqlite_pair, token, STRANGER)
