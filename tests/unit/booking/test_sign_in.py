"""The firm's sign-in use cases (service_layer/sign_in.py) with the in-memory fakes:
codes go out only to the sign-in mobile, the answer never tells, tries and expiry count,
sessions end when the mobile changes, only digests are stored."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import structlog

from services.booking.domain import messages
from services.booking.domain import sign_in as rules
from services.booking.domain.qr import Keyring
from services.booking.domain.rules_service import FirmInfo
from services.booking.service_layer import qr_codes, sign_in
from services.booking.service_layer.ports import SmsFailed
from services.common.errors import PermissionDenied, RateLimited, ValidationError
from tests.support import uscc
from tests.unit.booking.fakes import FIRM, REGION, FakeRules, FakeUnitOfWork, context

MOBILE = "13912345678"
OTHER = uscc(2)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def ctx() -> Any:
    rules_ = FakeRules(
        firms={
            FIRM: FirmInfo(FIRM, "义乌市示例五金厂", REGION),
            OTHER: FirmInfo(OTHER, "另一家", REGION),
        }
    )
    return context(rules_)


@pytest.fixture
def token(uow: FakeUnitOfWork, ctx: Any) -> str:
    text = qr_codes.issue_qr_code(uow, ctx, FIRM).token
    sign_in.set_sign_in_phone(uow, ctx, FIRM, MOBILE)
    return text


def test_the_right_code_signs_the_firm_in_for_30_days(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, MOBILE, "1.2.3.4")
    code = ctx.sms.last_code(MOBILE)
    assert len(code) == 6 and code.isdigit()
    done = sign_in.sign_in(uow, ctx, token, MOBILE, code)
    assert done.enterprise_id == FIRM
    assert sign_in.session_firm(uow, ctx, done.credential) == FIRM
    stored = next(iter(uow.register.sessions.values()))
    assert stored.expires_at - stored.created_at == timedelta(days=30)
    # only digests are kept: neither the code nor the secret nor the phone
    kept = repr(list(uow.register.codes.values())) + repr(stored)
    assert code not in kept and MOBILE not in kept and done.credential.split(".")[1] not in kept
    with pytest.raises(PermissionDenied):  # a code is used once
        sign_in.sign_in(uow, ctx, token, MOBILE, code)


def test_an_unknown_number_gets_the_same_answer_and_no_message(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    assert (
        sign_in.request_code(uow, ctx, token, "13700000000", "1.2.3.4") == sign_in.CodeRequested()
    )
    assert ctx.sms.sent == []
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
        sign_in.sign_in(uow, ctx, token, "13700000000", "123456")


def test_wrong_codes_count_and_the_sixth_try_is_refused(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, MOBILE)
    code = ctx.sms.last_code(MOBILE)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(rules.MAX_TRIES):
        with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
            sign_in.sign_in(uow, ctx, token, MOBILE, wrong)
    with pytest.raises(RateLimited, match=messages.SIGN_IN_TOO_MANY_TRIES):
        sign_in.sign_in(uow, ctx, token, MOBILE, code)  # even the right one, now


def test_an_expired_code_is_refused(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    sign_in.request_code(uow, ctx, token, MOBILE)
    row = next(iter(uow.register.codes.values()))
    row.expires_at = row.created_at - timedelta(seconds=1)
    with pytest.raises(PermissionDenied, match=messages.SIGN_IN_WRONG_CODE):
        sign_in.sign_in(uow, ctx, token, MOBILE, ctx.sms.last_code(MOBILE))


def test_a_code_for_another_firm_is_refused(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    other = qr_codes.issue_qr_code(uow, ctx, OTHER).token
    sign_in.set_sign_in_phone(uow, ctx, OTHER, MOBILE)  # one person, two firms
    sign_in.request_code(uow, ctx, other, MOBILE)
    with pytest.raises(PermissionDenied):
        sign_in.sign_in(uow, ctx, token, MOBILE, ctx.sms.last_code(MOBILE))


def test_codes_are_rate_limited_per_firm_and_number(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    for i in range(rules.CODES_PER_NUMBER_PER_HOUR):
        sign_in.request_code(uow, ctx, token, MOBILE, f"10.0.0.{i}")
    with pytest.raises(RateLimited, match=messages.SIGN_IN_TOO_MANY_CODES):
        sign_in.request_code(uow, ctx, token, MOBILE, "10.0.0.99")
    sign_in.request_code(uow, ctx, token, "13700000000", "10.0.0.98")  # another number may


def test_made_up_numbers_do_not_use_up_the_owners_codes(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    for i in range(3 * rules.CODES_PER_NUMBER_PER_HOUR):
        sign_in.request_code(uow, ctx, token, f"136{i:08d}", f"10.1.{i}.1")
    for i in range(rules.CODES_PER_NUMBER_PER_HOUR):
        sign_in.request_code(uow, ctx, token, "13700000000", f"10.2.{i}.1")
    with pytest.raises(RateLimited):  # a known and an unknown number hit the same limit
        sign_in.request_code(uow, ctx, token, "13700000000", "10.3.0.1")
    sign_in.request_code(uow, ctx, token, MOBILE, "10.4.0.1")
    assert [p for p, _ in ctx.sms.sent] == [MOBILE]


def test_codes_are_rate_limited_per_address(
    uow: FakeUnitOfWork, ctx: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules, "CODES_PER_NUMBER_PER_HOUR", 1000)
    for _ in range(rules.CODES_PER_CLIENT_PER_HOUR):
        sign_in.request_code(uow, ctx, token, "13700000000", "9.9.9.9")
    with pytest.raises(RateLimited):
        sign_in.request_code(uow, ctx, token, MOBILE, "9.9.9.9")
    sign_in.request_code(uow, ctx, token, MOBILE, "9.9.9.10")  # another address may
    assert ctx.sms.sent[-1][0] == MOBILE


def test_a_new_mobile_ends_the_sessions_and_bad_phones_are_refused(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, MOBILE)
    done = sign_in.sign_in(uow, ctx, token, MOBILE, ctx.sms.last_code(MOBILE))
    sign_in.set_sign_in_phone(uow, ctx, FIRM, "13800001111")
    assert sign_in.session_firm(uow, ctx, done.credential) is None
    assert uow.register.firms[FIRM].sign_in_phone == "13800001111"
    with pytest.raises(ValidationError) as info:
        sign_in.set_sign_in_phone(uow, ctx, FIRM, "12345")
    assert info.value.violations[0].field == "phone"
    sign_in.set_sign_in_phone(uow, ctx, FIRM, "")
    assert uow.register.firms[FIRM].sign_in_phone == ""


def test_a_forged_or_signed_out_credential_opens_nothing(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, MOBILE)
    done = sign_in.sign_in(uow, ctx, token, MOBILE, ctx.sms.last_code(MOBILE))
    forged = done.credential[:-3] + ("AAA" if not done.credential.endswith("AAA") else "BBB")
    assert sign_in.session_firm(uow, ctx, forged) is None
    assert sign_in.session_firm(uow, ctx, "") is None
    sign_in.end_session(uow, ctx, done.credential)
    assert sign_in.session_firm(uow, ctx, done.credential) is None


class FailingSms:
    def send(self, phone: str, text: str) -> None:
        raise SmsFailed("gateway refused")


@pytest.mark.parametrize("backend", [FailingSms(), None])
def test_a_failing_or_missing_sms_backend_answers_as_for_an_unknown_number(
    uow: FakeUnitOfWork, ctx: Any, token: str, backend: Any
) -> None:
    ctx = replace(ctx, sms=backend)
    with structlog.testing.capture_logs() as logs:
        assert sign_in.request_code(uow, ctx, token, MOBILE, "1.2.3.4") == sign_in.CodeRequested()
        assert (
            sign_in.request_code(uow, ctx, token, "13700000000", "1.2.3.4")
            == sign_in.CodeRequested()
        )
    failed = [e for e in logs if "not sent" in e["event"]]
    assert len(failed) == 1 and failed[0]["phone"] == "139****5678"
    assert MOBILE not in repr(logs)
    assert all("sent" not in e for e in logs)  # the request line never says if it matched


def test_the_console_sms_backend_outside_dev_is_an_error_at_start_up(ctx: Any) -> None:
    from services.booking.adapters.sms import BackgroundSms, ConsoleSms, MemorySms
    from services.booking.entrypoints.cli import warn_console_sms

    with structlog.testing.capture_logs() as logs:
        warn_console_sms(replace(ctx, sms=ConsoleSms()), dev=True)
        warn_console_sms(replace(ctx, sms=MemorySms()), dev=False)
    assert logs == []
    for backend in (ConsoleSms(), BackgroundSms(ConsoleSms())):
        with structlog.testing.capture_logs() as logs:
            warn_console_sms(replace(ctx, sms=backend), dev=False)
        assert [e["log_level"] for e in logs] == ["error"]
    assert "sign-in code is written to this log" in logs[0]["event"]


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:1.2.3.4:5678", "1.2.3.4"),
        ("ipv6:[::1]:5678", "::1"),
        ("ipv6:%5B::1%5D:5678", "::1"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
    ],
)
def test_a_grpc_peer_is_keyed_as_the_phone_page_keys_its_address(peer: str, host: str) -> None:
    from services.booking.entrypoints.grpc_server import _peer_host

    class Context:
        def peer(self) -> str:
            return peer

    assert _peer_host(Context()) == host  # type: ignore[arg-type]


def test_the_background_backend_answers_before_the_gateway_and_logs_its_failure() -> None:
    from services.booking.adapters.sms import BackgroundSms, MemorySms

    release = threading.Event()

    class SlowGateway:
        def __init__(self) -> None:
            self.sent = MemorySms()

        def send(self, phone: str, text: str) -> None:
            assert release.wait(30)
            if phone == "13700000000":
                raise SmsFailed("refused")
            self.sent.send(phone, text)

    gateway = SlowGateway()
    background = BackgroundSms(gateway)
    with structlog.testing.capture_logs() as logs:
        background.send(MOBILE, "验证码123456")  # returns while the gateway still waits
        failed = background.submit("13700000000", "验证码654321")
        assert gateway.sent.sent == []
        release.set()
        failed.result(timeout=30)
    assert gateway.sent.last_code(MOBILE) == "123456"
    assert [e["phone"] for e in logs] == ["137****0000"]


def test_a_code_asked_for_before_a_key_rotation_still_signs_in(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    sign_in.request_code(uow, ctx, token, MOBILE)
    code = ctx.sms.last_code(MOBILE)
    rotated = replace(ctx, keyring=Keyring({**ctx.keyring.keys, "knew": b"\x42" * 32}, "knew"))
    done = sign_in.sign_in(uow, rotated, token, MOBILE, code)
    assert done.enterprise_id == FIRM
