"""A firm's sign-in code cannot be guessed at 25 tries an hour all day (review 64
leftovers): once a number had WRONG_CODES_PER_NUMBER_PER_DAY wrong codes in a day, a
wrong code voids its code (a new SMS code is needed), so guesses fall to one per code;
the owner's new code, typed right, still signs in (no lock strangers could use); the
event is logged for staff without the number; a number not on record is answered alike.
Real booking and rules servers over gRPC, SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import structlog

from services.booking.domain import messages
from services.booking.domain.sign_in import MAX_TRIES, WRONG_CODES_PER_NUMBER_PER_DAY
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair

MOBILE = "13912345678"
STRANGER = "13700000000"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def _sign_in(pair: Pair, token: str, phone: str, code: str) -> tuple[str, str]:
    try:
        pair.booking.SignIn(bpb.SignInRequest(qr_token=token, phone=phone, code=code), timeout=10)
        return "OK", ""
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""


def _ask(pair: Pair, token: str, phone: str) -> None:
    pair.booking.RequestSignInCode(
        bpb.RequestSignInCodeRequest(qr_token=token, phone=phone), timeout=10
    )


def test_past_the_days_wrong_codes_each_code_takes_one_try_and_the_owner_still_signs_in(
    pair: Pair,
) -> None:
    firm = pair.register_firm(1, high_risk_domains=["dust_explosion"])
    token = pair.issue(firm).token
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    assert WRONG_CODES_PER_NUMBER_PER_DAY % MAX_TRIES == 0  # whole codes reach the cap
    answers = []
    with structlog.testing.capture_logs() as logs:
        for _ in range(WRONG_CODES_PER_NUMBER_PER_DAY // MAX_TRIES):
            _ask(pair, token, MOBILE)
            bad = _wrong(pair.sms.last_code(MOBILE))
            answers += [_sign_in(pair, token, MOBILE, bad) for _ in range(MAX_TRIES)]
        # past the cap: one wrong try voids the code, even the right one is refused then
        _ask(pair, token, MOBILE)
        code = pair.sms.last_code(MOBILE)
        voided = _sign_in(pair, token, MOBILE, _wrong(code))
        after = _sign_in(pair, token, MOBILE, code)
        # the owner's next code, typed right, signs in
        _ask(pair, token, MOBILE)
        owner = _sign_in(pair, token, MOBILE, pair.sms.last_code(MOBILE))
    assert [a for a, _ in answers[:-1]] == ["PERMISSION_DENIED"] * (len(answers) - 1)
    assert answers[-1] == ("PERMISSION_DENIED", messages.SIGN_IN_WRONG_CODE_VOID)
    assert voided == ("PERMISSION_DENIED", messages.SIGN_IN_WRONG_CODE_VOID)
    assert after[0] == "PERMISSION_DENIED"  # the voided code no longer signs in
    assert owner == ("OK", "")
    capped = [e for e in logs if "too many wrong codes" in e["event"]]
    assert len(capped) == 2 and {e["enterprise_id"] for e in capped} == {firm}
    assert MOBILE not in repr(logs) and "139****5678" not in repr(capped)


def test_a_number_not_on_record_is_answered_alike(sqlite_pair: Pair) -> None:
    phone = STRANGER
    pair = sqlite_pair
    firm = pair.register_firm(2, high_risk_domains=["dust_explosion"])
    token = pair.issue(firm).token
    pair.booking.SetSignInPhone(
        bpb.SetSignInPhoneRequest(enterprise_id=firm, phone=MOBILE), timeout=10
    )
    answers = []
    for _ in range(WRONG_CODES_PER_NUMBER_PER_DAY // MAX_TRIES + 1):
        _ask(pair, token, phone)
        answers += [_sign_in(pair, token, phone, "123456") for _ in range(MAX_TRIES)]
    limit = WRONG_CODES_PER_NUMBER_PER_DAY
    assert answers[limit - 1] == ("PERMISSION_DENIED", messages.SIGN_IN_WRONG_CODE_VOID)
    assert answers[limit] == ("PERMISSION_DENIED", messages.SIGN_IN_WRONG_CODE_VOID)
    assert answers[limit + 1][0] == "PERMISSION_DENIED"  # the voided code
    assert pair.sms.sent == []
