"""The ids and filters booking's reads take (domain/lookups.py): every id booking makes
passes (new_id's tickets, visits and photos, order numbers, the demo city's), so the check
refuses only text that names no record (review 58 F5)."""

from __future__ import annotations

from datetime import date

import pytest

from services.booking.domain import lookups
from services.booking.service_layer.orders import new_order_id
from services.common.clock import new_id
from services.common.demo_city import city
from services.common.errors import ValidationError
from services.common.values import PREVIEW_CHARS
from services.common.vocabulary import record_id_problem
from tests.support import uscc


def test_every_id_booking_makes_is_a_record_id() -> None:
    made = [new_id(prefix) for prefix in ("", "T", "V", "P") for _ in range(50)]
    made += [new_order_id(date(2026, 6, 1)) for _ in range(200)]
    demo = city(date(2026, 6, 1))
    made += [o.id for o in demo.orders] + [t.id for t in demo.tickets()]
    assert demo.tickets() and all(record_id_problem(i) is None for i in made), made[:5]


@pytest.mark.parametrize(
    "value", ["", " B1", "B1 ", "B-1", "B_1", "B.1", "订单", "Ｂ１", "B" * 33, "B1\n", "B\u200b1"]
)
def test_text_no_id_could_be_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        lookups.record_id(value, "ticket", "ticket_id")
    [violation] = info.value.violations
    assert violation.field == "ticket_id" and "整改单" in violation.description


def test_a_firm_filter_is_empty_or_a_credit_code_quoted_short() -> None:
    assert lookups.firm_filter("") == ""
    assert lookups.firm_filter(uscc(3)) == uscc(3)
    value = "9" * 10_000
    with pytest.raises(ValidationError) as info:
        lookups.firm_filter(value)
    [violation] = info.value.violations
    assert violation.field == "enterprise_id"
    assert value[: PREVIEW_CHARS + 1] not in violation.description
    with pytest.raises(ValidationError):
        lookups.firm_id("")  # required where a firm must be named


def test_a_domain_filter_is_empty_or_one_of_the_nine() -> None:
    assert lookups.domain_filter("") == "" and lookups.domain_filter("gas") == "gas"
    for value in ("GAS", "gas ", "燃气", "fire_safety"):  # fire_safety: a service item
        with pytest.raises(ValidationError):
            lookups.domain_filter(value)
