"""The staff pages against review 59 (review-59.md): the expert who found a ticket
rechecks it and lands on a page they may open, with a list of their own findings (F1); a
recheck another tab already made is explained, what was typed kept (F2); the visit form
names every bad field at once (F5); the recheck queue shows an excerpt of a long
description, the ticket page all of it (F7). uvicorn on a real port, httpx, SQLite; the
line breaks (F6) are checked in a browser (tests/e2e/test_staff_pages.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest

from services.booking.domain import messages
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair
from tests.e2e.test_staff_pages import dispatched
from tests.integration.booking.test_staff_fixes import Web, _web


@pytest.fixture
def web(sqlite_pair: Pair) -> Iterator[Web]:
    yield from _web(sqlite_pair)


def text_of(page: str) -> str:
    """The page's text, tags dropped and entities read (what a person reads, roughly)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def links(page: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', page)


# -- F5: every error of the visit form at once ---------------------------------------------------


def test_the_visit_form_names_every_bad_field_at_once(web: Web) -> None:
    pair = web.pair
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 34, "稠城街道")
    web.user("chen", "expert", expert_id="E1")
    e, tok = web.signed_in("chen")
    form = {
        "csrf": tok,
        "minutes_on_site": "-5",
        "on_site_mobile": "138😀",
        "ref_0": "GEN:ledger",
        "severity_0": "general",
        "desc_0": "",
        "ref_1": "GEN:ledger",
        "severity_1": "bogus",
        "desc_1": "台账缺失",
        "due_1": "1999-01-01",
    }
    answer = e.post(f"/staff/orders/{order_id}/visit", data=form)
    assert answer.status_code == 400
    shown = text_of(answer.text)
    assert messages.SIGN_IN_BAD_PHONE in shown
    assert messages.VISIT_BAD_MINUTES in shown
    assert messages.FINDING_DESCRIPTION.format(n=1000) in shown
    assert messages.FINDING_SEVERITY in shown
    assert messages.VISIT_BAD_DUE in shown
    # minutes that are no number at all, with the rest as bad
    form["minutes_on_site"] = "一小时"
    answer = e.post(f"/staff/orders/{order_id}/visit", data=form)
    shown = text_of(answer.text)
    assert answer.status_code == 400
    assert messages.VISIT_BAD_MINUTES in shown and messages.SIGN_IN_BAD_PHONE in shown
    assert messages.FINDING_DESCRIPTION.format(n=1000) in shown
    # a good phone and no confirmation on a firm without a sign-in mobile: that too
    form["on_site_mobile"] = ""
    answer = e.post(f"/staff/orders/{order_id}/visit", data=form)
    shown = text_of(answer.text)
    assert messages.VISIT_BAD_MINUTES in shown and messages.VISIT_MOBILE_NEEDED in shown
    assert (
        pair.booking.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10).status
        == bpb.ORDER_STATUS_DISPATCHED
    )
