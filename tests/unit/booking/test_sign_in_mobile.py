"""Review 52 F2, review 54 D2: the firm's sign-in mobile is "the register's contact, or
the phone of its first confirmed order" (docs/booking.md). The expert confirms it in
person at the visit, in its transaction: the mobile of the person the expert met when
given (replacing one on record, as before), else, while the firm has none, the visited
order's contact mobile only when the expert confirmed that the person met is that
contact (the poster is public: whoever ordered may be a passer-by). Use cases with the
in-memory fakes."""

from __future__ import annotations

from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.findings import FindingInput
from services.booking.domain.sign_in import mobile_after_visit
from services.booking.service_layer import sign_in, visits
from services.common.errors import ValidationError
from tests.unit.booking.fakes import FIRM, FakeUnitOfWork
from tests.unit.booking.test_use_cases import add_expert, finding, place

CONTACT = "13812345678"  # test_use_cases.place's contact mobile
ON_SITE = "13600001111"
ADMIN_SET = "13912345678"


def visit(
    uow: FakeUnitOfWork, ctx: Any, token: str, key: str = "k", on_site: str = "", **more: Any
) -> Any:
    add_expert(uow, ctx)
    order = place(uow, ctx, token, key)
    return visits.record_visit(
        uow, ctx, order.id, [finding()], visited_on="", minutes=30, actor="E1",
        on_site_mobile=on_site, **more,
    )  # fmt: skip


def signs_in(uow: FakeUnitOfWork, ctx: Any, token: str, phone: str) -> str:
    """Ask for a code for `phone` and sign in with it: the session's firm, or ""."""
    sign_in.request_code(uow, ctx, token, phone)
    sent = [p for p, _ in ctx.sms.sent]
    if phone not in sent:
        return ""
    return sign_in.sign_in(uow, ctx, token, phone, ctx.sms.last_code(phone)).enterprise_id


@pytest.mark.parametrize(
    ("current", "on_site", "confirmed", "after"),
    [
        ("", "", True, CONTACT),  # the first order's phone, confirmed by the expert
        ("", "", False, ""),  # not confirmed: whoever ordered may be a passer-by
        ("", ON_SITE, False, ON_SITE),  # the person the expert met
        ("", ON_SITE, True, ON_SITE),  # typed wins over the box
        (ADMIN_SET, "", True, ADMIN_SET),  # one on record stays
        (ADMIN_SET, "", False, ADMIN_SET),
        (ADMIN_SET, ON_SITE, False, ON_SITE),  # the expert's confirmed one replaces it
    ],
)
def test_the_mobile_after_a_visit(current: str, on_site: str, confirmed: bool, after: str) -> None:
    assert mobile_after_visit(current, on_site, CONTACT, confirmed) == after


def test_an_order_alone_gives_no_sign_in_mobile_its_confirmed_visit_does(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx)
    place(uow, ctx, token, "first")
    assert uow.register.firms[FIRM].sign_in_phone == ""  # the poster is public
    assert signs_in(uow, ctx, token, CONTACT) == ""
    visit(uow, ctx, token, "second", contact_confirmed=True)
    assert uow.register.firms[FIRM].sign_in_phone == CONTACT
    assert signs_in(uow, ctx, token, CONTACT) == FIRM


def test_a_visit_the_expert_did_not_confirm_gives_the_orderer_nothing(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 54 D2: a passer-by ordered with their own mobile; the expert left the
    on-site mobile blank and confirmed nothing (gRPC's default)."""
    visit(uow, ctx, token)
    assert uow.register.firms[FIRM].sign_in_phone == ""
    assert signs_in(uow, ctx, token, CONTACT) == ""


def test_the_staff_pages_visit_needs_a_confirmation_or_a_mobile_while_the_firm_has_none(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx)
    order = place(uow, ctx, token, "first")

    def record(findings: Any = (), **more: Any) -> Any:
        return visits.record_visit(
            uow, ctx, order.id, findings, visited_on="", minutes=30, actor="E1",
            mobile_required=True, **more,
        )  # fmt: skip

    with pytest.raises(ValidationError) as info:
        record()
    assert [(v.field, v.description) for v in info.value.violations] == [
        ("on_site_mobile", messages.VISIT_MOBILE_NEEDED)
    ]
    with pytest.raises(ValidationError) as info:  # named beside a finding's error
        record([FindingInput("GEN:ledger", "major", "", "", ())])
    assert [v.field for v in info.value.violations] == [
        "findings[0].description",
        "on_site_mobile",
    ]
    assert not uow.register.visits  # nothing recorded
    record(contact_confirmed=True)
    assert uow.register.firms[FIRM].sign_in_phone == CONTACT
    visit(uow, ctx, token, "third", mobile_required=True)  # one on record now: optional
    assert uow.register.firms[FIRM].sign_in_phone == CONTACT


def test_the_person_met_on_site_is_taken_before_the_orders_contact(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    visit(uow, ctx, token, on_site="136-0000-1111")  # typed with hyphens
    assert uow.register.firms[FIRM].sign_in_phone == ON_SITE
    assert signs_in(uow, ctx, token, CONTACT) == ""


def test_a_later_visit_keeps_the_mobile_on_record_and_the_firms_sessions(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.set_sign_in_phone(uow, ctx, FIRM, ADMIN_SET)
    assert signs_in(uow, ctx, token, ADMIN_SET) == FIRM
    visit(uow, ctx, token)  # another contact mobile on the order, none given on site
    assert uow.register.firms[FIRM].sign_in_phone == ADMIN_SET
    assert all(s.ended_at is None for s in uow.register.firm_sessions(FIRM))
    visit(uow, ctx, token, "again", on_site=ON_SITE)  # the expert confirms another
    assert uow.register.firms[FIRM].sign_in_phone == ON_SITE
    assert all(s.ended_at is not None for s in uow.register.firm_sessions(FIRM))


def test_a_bad_on_site_mobile_refuses_the_visit_and_sets_nothing(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    with pytest.raises(ValidationError) as info:
        visit(uow, ctx, token, on_site="12012345678")
    assert [v.field for v in info.value.violations] == ["on_site_mobile"]
    assert uow.register.firms[FIRM].sign_in_phone == ""
