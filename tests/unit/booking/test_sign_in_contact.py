"""The register's contact mobile as the firm's sign-in mobile (service_layer/sign_in.py,
domain/sign_in.py `code_purpose`), with the in-memory fakes: while the firm has no sign-in
mobile a code goes to the rules register's contact mobile, and signing in with it makes
it the firm's sign-in mobile; a firm that has one keeps it; the answer never tells; a
rules service that cannot answer is an unknown number."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from services.booking.domain import messages
from services.booking.domain.rules_service import FirmInfo, RulesUnavailable
from services.booking.service_layer import sign_in
from services.common.errors import PermissionDenied
from tests.unit.booking.fakes import FIRM, REGION, FakeRules, FakeUnitOfWork, context

CONTACT = "13812345678"
ADMIN_S = "13912345678"


@pytest.fixture
def ctx() -> Any:
    return context(FakeRules(firms={FIRM: FirmInfo(FIRM, "义乌市示例五金厂", REGION, CONTACT)}))


def _card(uow: FakeUnitOfWork) -> Any:
    return uow.register.firm(FIRM)


def test_the_register_s_contact_gets_the_code_and_becomes_the_sign_in_mobile(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    assert sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4") is None
    code = ctx.sms.last_code(CONTACT)
    done = sign_in.sign_in(uow, ctx, token, CONTACT, code)
    assert done.enterprise_id == FIRM
    assert _card(uow).sign_in_phone == CONTACT
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")  # later: no rules needed
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.5")
    assert len([m for m in ctx.sms.sent if m[0] == CONTACT]) == 2


def test_another_number_gets_the_same_answer_and_nothing(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    assert sign_in.request_code(uow, ctx, token, "13700000000", "1.2.3.4") is None
    assert ctx.sms.sent == []
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
        sign_in.sign_in(uow, ctx, token, "13700000000", "123456")
    assert _card(uow).sign_in_phone == ""


def test_a_firm_with_a_sign_in_mobile_keeps_it(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    sign_in.set_sign_in_phone(uow, ctx, FIRM, ADMIN_S)
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    assert ctx.sms.sent == []  # the register's contact does not override the admin's
    sign_in.request_code(uow, ctx, token, ADMIN_S, "1.2.3.4")
    sign_in.sign_in(uow, ctx, token, ADMIN_S, ctx.sms.last_code(ADMIN_S))
    assert _card(uow).sign_in_phone == ADMIN_S


def test_an_admin_s_choice_made_after_the_code_went_out_stays(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    sign_in.set_sign_in_phone(uow, ctx, FIRM, ADMIN_S)
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)  # void since (review 56 D2)
    assert _card(uow).sign_in_phone == ADMIN_S
    assert not uow.register.firm_sessions(FIRM)  # no session for the register's number


def test_rules_unavailable_is_an_unknown_number_logged_once(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    with structlog.testing.capture_logs() as logs:
        assert sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4") is None
    assert ctx.sms.sent == []
    assert len([e for e in logs if "contact mobile" in e["event"]]) == 1
    assert _card(uow).sign_in_phone == ""
