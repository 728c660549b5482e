"""The phone page's order form: a control character at either end of the key, the contact
or the note is refused beside its field and nothing is stored (str.strip() had trimmed a
U+001F away and taken the order: the page has no gRPC interceptor in front of it)."""

from __future__ import annotations

import pytest

from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain.staff import EVERY
from services.booking.service_layer.orders import list_orders
from tests.integration.booking.test_web import Site, block, site  # noqa: F401


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_control_character_at_an_end_of_a_form_field_is_a_form_error(
    site: Site,  # noqa: F811
    where: str,
) -> None:
    firm, token = site.firm(13)
    _, key = site.form(token)

    def bad(text: str) -> str:
        return "\x1f" + text if where == "start" else text + "\x1f"

    refused_key = site.order(token, bad(key))
    assert refused_key.status_code == 400, refused_key.headers.get("location")
    refused = site.order(token, key, contact_name=bad("王经理"), note=bad("二车间"))
    assert refused.status_code == 400, refused.headers.get("location")
    assert "控制字符" in block(refused.text, "contact_name")
    assert "控制字符" in block(refused.text, "note")
    orders, _ = list_orders(UnitOfWork(site.pair.booking_engine), firm, "", 10, "", EVERY)
    assert orders == []
