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
from services.booking.domain import sign_in as rules
from services.booking.domain.rules_service import FirmInfo, RulesUnavailable
from services.booking.service_layer import sign_in
from services.common.errors import PermissionDenied, RateLimited, Unavailable
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
    assert sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4") == sign_in.CodeRequested()
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
    assert (
        sign_in.request_code(uow, ctx, token, "13700000000", "1.2.3.4") == sign_in.CodeRequested()
    )
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
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_NUMBER_NO_LONGER_ON_RECORD):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)  # void since (review 56 D2)
    assert _card(uow).sign_in_phone == ADMIN_S
    assert not uow.register.firm_sessions(FIRM)  # no session for the register's number


@pytest.mark.parametrize("has_mobile", [False, True], ids=["no-sign-in-mobile", "sign-in-mobile"])
@pytest.mark.parametrize("phone", [CONTACT, ADMIN_S, "13700000000"])
def test_while_rules_is_down_every_request_is_told_so_alike(
    uow: FakeUnitOfWork, ctx: Any, token: str, has_mobile: bool, phone: str
) -> None:
    """Review 60 F2: while rules cannot answer, a code cannot go to the register's
    contact (whether the number is on record is not known); the request was answered as
    if sent. Every request now says rules could not be asked, the same answer whatever
    the number and the firm (so nothing tells which number is on record); a code still
    goes to the firm's sign-in mobile, which needs no rules."""
    if has_mobile:
        sign_in.set_sign_in_phone(uow, ctx, FIRM, ADMIN_S)
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    with structlog.testing.capture_logs() as logs:
        asked = sign_in.request_code(uow, ctx, token, phone, "1.2.3.4")
    assert asked == sign_in.CodeRequested(register_unavailable=True)
    sent = [to for to, _ in ctx.sms.sent]
    assert sent == ([ADMIN_S] if has_mobile and phone == ADMIN_S else [])
    assert len([e for e in logs if "contact mobile" in e["event"]]) == 1
    assert _card(uow).sign_in_phone == (ADMIN_S if has_mobile else "")


def test_a_firm_sending_the_right_code_while_rules_is_down_keeps_it(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 60 F2: each retry of the right code while rules was down used one of the
    code's 5 tries before rules was asked, so after five the right code was refused "输错
    次数过多" though the outage message promised it stays good for its 10 minutes. Only a
    wrong code uses a try now."""
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    for _ in range(rules.MAX_TRIES + 3):
        with pytest.raises(Unavailable, match=messages.SIGN_IN_REGISTER_UNAVAILABLE):
            sign_in.sign_in(uow, ctx, token, CONTACT, code)
    ctx.rules.failure = None
    assert sign_in.sign_in(uow, ctx, token, CONTACT, code).enterprise_id == FIRM
    assert _card(uow).sign_in_phone == CONTACT


def test_asking_again_while_rules_is_down_leaves_the_code_sent_before_good(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """A request that sent nothing because the register could not be read does not
    replace the code sent before (a newer code would: only the newest signs in)."""
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    assert sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4").register_unavailable
    ctx.rules.failure = None
    assert sign_in.sign_in(uow, ctx, token, CONTACT, code).enterprise_id == FIRM


def test_wrong_codes_still_use_their_tries_while_rules_is_down(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    wrong = "000000" if code != "000000" else "111111"
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    for _ in range(rules.MAX_TRIES):
        with pytest.raises(Unavailable):  # the right code between wrong ones: no try used
            sign_in.sign_in(uow, ctx, token, CONTACT, code)
        with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
            sign_in.sign_in(uow, ctx, token, CONTACT, wrong)
    ctx.rules.failure = None
    with pytest.raises(RateLimited, match=messages.SIGN_IN_TOO_MANY_TRIES):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)  # five wrong: the code is spent


class CountingRules(FakeRules):
    """The fake rules service, counting the firm look-ups booking makes."""

    asked: int = 0

    def firm(self, enterprise_id: str) -> FirmInfo | None:
        self.asked += 1
        return super().firm(enterprise_id)


def _corrected(ctx: Any, contact: str) -> None:
    ctx.rules.firms[FIRM] = FirmInfo(FIRM, "义乌市示例五金厂", REGION, contact)


def test_a_contact_corrected_in_the_register_after_the_code_went_out_no_longer_signs_in(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 56 D3: the register is asked again when the code comes back: a number
    corrected there in the code's 10 minutes (a typo, a person who left) signs nobody
    in, and the code is void, whatever the register says later."""
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    _corrected(ctx, "13700001111")
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_NUMBER_NO_LONGER_ON_RECORD):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)
    assert _card(uow).sign_in_phone == "" and not uow.register.firm_sessions(FIRM)
    _corrected(ctx, CONTACT)  # corrected back: the code stays void
    with pytest.raises(PermissionDenied):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)
    assert _card(uow).sign_in_phone == ""


def test_a_contact_removed_from_the_register_no_longer_signs_in(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    _corrected(ctx, "")
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_NUMBER_NO_LONGER_ON_RECORD):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)
    assert _card(uow).sign_in_phone == ""


def test_rules_unavailable_at_sign_in_is_try_again_later_and_the_code_stays_good(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 56 D3: while rules cannot say whether the number is still the contact, the
    sign-in is refused for now (UNAVAILABLE, nothing changed); the code works once rules
    answers again, within its 10 minutes."""
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    with pytest.raises(Unavailable, match=messages.SIGN_IN_REGISTER_UNAVAILABLE):
        sign_in.sign_in(uow, ctx, token, CONTACT, code)
    assert _card(uow).sign_in_phone == "" and not uow.register.firm_sessions(FIRM)
    ctx.rules.failure = None
    assert sign_in.sign_in(uow, ctx, token, CONTACT, code).enterprise_id == FIRM
    assert _card(uow).sign_in_phone == CONTACT


def test_the_same_number_given_by_an_admin_meanwhile_still_signs_in_without_rules(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Still entitled otherwise: booking.admin made the number the firm's sign-in mobile
    since the code went out; the register is not needed (nor asked)."""
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    code = ctx.sms.last_code(CONTACT)
    sign_in.set_sign_in_phone(uow, ctx, FIRM, CONTACT)
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    assert sign_in.sign_in(uow, ctx, token, CONTACT, code).enterprise_id == FIRM


def test_a_wrong_code_never_asks_the_register(uow: FakeUnitOfWork, token: str) -> None:
    ctx = context(CountingRules(firms={FIRM: FirmInfo(FIRM, "义乌市示例五金厂", REGION, CONTACT)}))
    sign_in.request_code(uow, ctx, token, CONTACT, "1.2.3.4")
    asked = ctx.rules.asked
    wrong = "000000" if ctx.sms.last_code(CONTACT) != "000000" else "111111"
    for _ in range(rules.MAX_TRIES):
        with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
            sign_in.sign_in(uow, ctx, token, CONTACT, wrong)
    assert ctx.rules.asked == asked


def test_requests_past_the_limits_never_ask_the_register(uow: FakeUnitOfWork, token: str) -> None:
    """Review 56 D4: booking asked rules before counting the request, so requests past
    the limits still made it call rules; they are counted first now, and a refused one
    asks nothing."""
    ctx = context(CountingRules(firms={FIRM: FirmInfo(FIRM, "义乌市示例五金厂", REGION, CONTACT)}))
    for phone in (CONTACT, "13700000000"):
        for _ in range(rules.CODES_PER_NUMBER_PER_HOUR):
            sign_in.request_code(uow, ctx, token, phone, "")
        for _ in range(3):
            with pytest.raises(RateLimited):
                sign_in.request_code(uow, ctx, token, phone, "")
    assert ctx.rules.asked == 2 * rules.CODES_PER_NUMBER_PER_HOUR
    for n in range(3):  # and per address
        with pytest.raises(RateLimited):
            for i in range(rules.CODES_PER_CLIENT_PER_HOUR + 1):
                sign_in.request_code(uow, ctx, token, f"1360000{n}{i:03d}", f"9.9.9.{n}")
    assert ctx.rules.asked == 2 * rules.CODES_PER_NUMBER_PER_HOUR + 3 * (
        rules.CODES_PER_CLIENT_PER_HOUR
    )


@pytest.mark.parametrize("has_mobile", [False, True], ids=["no-sign-in-mobile", "sign-in-mobile"])
@pytest.mark.parametrize("phone", [CONTACT, ADMIN_S, "13700000000"])
def test_every_request_does_the_same_work_whatever_the_number_and_the_firm(
    uow: FakeUnitOfWork, token: str, has_mobile: bool, phone: str
) -> None:
    """Review 56 D4: what booking does for a counted request does not depend on whether
    the firm has a sign-in mobile nor on whether the number is the one a code goes to:
    rules is asked once, and the request's row gets a code digest (one that matches no
    code when nothing was sent), so neither the answer nor the work behind it (and so
    its time) tells."""
    ctx = context(CountingRules(firms={FIRM: FirmInfo(FIRM, "义乌市示例五金厂", REGION, CONTACT)}))
    if has_mobile:
        sign_in.set_sign_in_phone(uow, ctx, FIRM, ADMIN_S)
    commits = uow.commits
    assert sign_in.request_code(uow, ctx, token, phone, "1.2.3.4") == sign_in.CodeRequested()
    assert ctx.rules.asked == 1
    assert uow.commits - commits == 2  # counted (one transaction), then the digest (another)
    [row] = uow.register.codes.values()
    assert len(row.code_digest) == 64
    sent = [to for to, _ in ctx.sms.sent]
    assert sent == ([phone] if phone == (ADMIN_S if has_mobile else CONTACT) else [])
