"""Review 52 F2, review 54 D2 on the expert's visit form (/staff/orders/<id>/visit, real
HTTP, SQLite): while the firm has no sign-in mobile, the expert must either tick
"现场联系人即预约联系人（138****5678）" (the order's contact, masked) or type the on-site
mobile; neither comes back beside the field and records nothing (the poster is public:
whoever ordered may be a passer-by). A firm with a sign-in mobile keeps it unless one is
typed; a bad one comes back beside its field. Each change is in the audit trail,
masked, under the expert's name. The phone page's side: tests/e2e/test_firm_cancel.py."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from services.booking.adapters.orm import audit_log, visits
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.integration.booking.test_staff_fixes import Web, sqlite_web  # noqa: F401
from tests.integration.booking.test_web_review_47a import expert_at_order, visit_form

CONTACT = "13812345678"  # tests/booking_env.Pair.order_request's contact mobile


def mobile_of(pair: Any, order_id: str) -> str:
    firm = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    with UnitOfWork(pair.booking_engine) as uow:
        card = uow.register.firm(firm.enterprise_id)
        assert card is not None
        return card.sign_in_phone


def field(page: str) -> str:
    found = re.search(
        r'<div class="field[^"]*">\s*<label for="on_site_mobile">(.*?)</div>', page, re.S
    )
    assert found, "no on-site mobile field"
    return found.group(1)


def test_the_orders_contact_becomes_the_sign_in_mobile_only_when_the_expert_confirms_it(
    sqlite_web: Web,  # noqa: F811
) -> None:
    pair, order_id, c, tok = expert_at_order(sqlite_web, 91)
    page = c.get(f"/staff/orders/{order_id}/visit").text
    shown = field(page)
    assert messages.VISIT_MOBILE_FROM_ORDER in shown
    box = re.search(r'<input type="checkbox" id="contact_confirmed"[^>]*>\s*<span>([^<]*)<', shown)
    assert box and "checked" not in box.group(0)  # never ticked for the expert
    assert box.group(1) == messages.VISIT_CONTACT_CONFIRM.format(mobile="138****5678")
    assert 'id="on_site_mobile"' in shown and 'value=""' in shown
    assert CONTACT not in page  # masked, as to every caller but booking.admin
    assert mobile_of(pair, order_id) == ""
    blank = visit_form(c, order_id, tok, 1)
    del blank["contact_confirmed"]  # the default: nothing ticked, nothing typed
    refused = c.post(f"/staff/orders/{order_id}/visit", data=blank)
    assert refused.status_code == 400
    error = re.search(r'id="on-site-mobile-error">([^<]*)<', field(refused.text))
    assert error and error.group(1) == messages.VISIT_MOBILE_NEEDED
    assert "描述0号" in refused.text  # what was typed comes back
    assert mobile_of(pair, order_id) == "" and sqlite_web.count(visits) == 0
    done = c.post(f"/staff/orders/{order_id}/visit", data=blank | {"contact_confirmed": "1"})
    assert done.status_code == 303
    assert mobile_of(pair, order_id) == CONTACT
    with pair.booking_engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.entity == "firm")).all()
    changes = [(r.caller, (r.after or {}).get("sign_in_phone")) for r in rows]
    callers = [who for who, phone in changes if phone == "138****5678"]
    assert len(callers) == 1 and callers[0].startswith("staff:zhuanjia")
    assert CONTACT not in repr(rows)


def test_a_refused_form_keeps_the_box_ticked(sqlite_web: Web) -> None:  # noqa: F811
    _, order_id, c, tok = expert_at_order(sqlite_web, 94)
    form = visit_form(c, order_id, tok, 1) | {"minutes_on_site": "x"}
    refused = c.post(f"/staff/orders/{order_id}/visit", data=form)
    assert refused.status_code == 400
    assert re.search(r'id="contact_confirmed"[^>]* checked', refused.text)


def test_a_typed_mobile_is_checked_kept_and_taken(sqlite_web: Web) -> None:  # noqa: F811
    pair, order_id, c, tok = expert_at_order(sqlite_web, 92)
    form = visit_form(c, order_id, tok, 1)
    del form["contact_confirmed"]  # the on-site person is not the order's contact
    refused = c.post(
        f"/staff/orders/{order_id}/visit", data=form | {"on_site_mobile": "12012345678"}
    )
    assert refused.status_code == 400
    shown = field(refused.text)
    assert messages.SIGN_IN_BAD_PHONE in shown and 'value="12012345678"' in shown
    assert mobile_of(pair, order_id) == ""  # nothing recorded
    done = c.post(
        f"/staff/orders/{order_id}/visit", data=form | {"on_site_mobile": "136 0000 1111"}
    )
    assert done.status_code == 303
    assert mobile_of(pair, order_id) == "13600001111"


def test_a_firm_with_a_sign_in_mobile_keeps_it_unless_one_is_typed(
    sqlite_web: Web,  # noqa: F811
) -> None:
    pair, order_id, c, tok = expert_at_order(sqlite_web, 93)
    firm = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm.enterprise_id, phone="13912345678"),
        timeout=10,
    )
    shown = field(c.get(f"/staff/orders/{order_id}/visit").text)
    assert messages.VISIT_MOBILE_ON_RECORD.format(mobile="139****5678") in shown
    assert 'placeholder="139****5678"' in shown
    assert "contact_confirmed" not in shown  # nothing to confirm: optional
    form = visit_form(c, order_id, tok, 1)
    del form["contact_confirmed"]
    done = c.post(f"/staff/orders/{order_id}/visit", data=form)
    assert done.status_code == 303
    assert mobile_of(pair, order_id) == "13912345678"


def test_an_admin_reads_the_firms_mobile_whole_on_the_visit_form(
    sqlite_web: Web,  # noqa: F811
) -> None:
    """Review 66 point 2: booking.admin reads every mobile whole (authz.sees_phones), the
    visit form's too; the expert still reads it masked."""
    pair, order_id, expert, _ = expert_at_order(sqlite_web, 94)
    sqlite_web.user("guanli", "admin")
    admin, _ = sqlite_web.signed_in("guanli")
    shown = field(admin.get(f"/staff/orders/{order_id}/visit").text)
    assert messages.VISIT_CONTACT_CONFIRM.format(mobile=CONTACT) in shown
    assert "138****5678" not in shown
    assert CONTACT not in expert.get(f"/staff/orders/{order_id}/visit").text
    firm = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10)
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm.enterprise_id, phone="13912345678"),
        timeout=10,
    )
    shown = field(admin.get(f"/staff/orders/{order_id}/visit").text)
    assert messages.VISIT_MOBILE_ON_RECORD.format(mobile="13912345678") in shown
    assert 'placeholder="13912345678"' in shown
