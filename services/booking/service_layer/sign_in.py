"""The firm's own sign-in: a one-time code to the firm's sign-in mobile, then a session.

Nothing here says whether a phone is on record: `request_code` answers the same either
way, after the same work (a code goes out only when the phone is the firm's sign-in
mobile, or while it has none the register's contact). Codes, tries and
sessions live in the register (they hold across processes and replicas); only digests
of codes, phones and session secrets are stored. The sign-in mobile is set by
booking.admin (`set_sign_in_phone`) or by the visit of one of the firm's orders
(visits.py): the mobile of the person the expert met, or, while the firm has none, that
order's contact mobile when the expert confirmed in person that it is theirs
(domain/sign_in.py `mobile_after_visit`); or, while the firm has none, by a sign-in with
a code sent to the rules register's contact mobile (domain/sign_in.py `code_purpose`)
that is still the register's contact when the code comes back; each change is in the
audit trail (masked) and ends the firm's sessions.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from services.booking.domain import lookups, messages
from services.booking.domain import sign_in as rules
from services.booking.domain.orders import PHONE, clean_phone, mask_phone
from services.booking.domain.records import FirmCard, FirmSession, SignInCode
from services.booking.domain.rules_service import RulesError, RulesUnavailable
from services.booking.service_layer.ports import BookingContext, SmsFailed
from services.booking.service_layer.qr_codes import firm_for_token
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import (
    FieldViolation,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unavailable,
    ValidationError,
)
from services.common.instants import as_utc
from services.common.values import trim

_log = structlog.get_logger("sign_in")
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class SignedIn:
    credential: str  # the session credential's text (cookie, metadata firm-session)
    enterprise_id: str
    expires_at: datetime


def _phone(value: str, field: str = "phone") -> str:
    phone = clean_phone(value)
    if not PHONE.fullmatch(phone):
        raise ValidationError([FieldViolation(field, messages.SIGN_IN_BAD_PHONE)])
    return phone


@dataclass(frozen=True)
class CodeRequested:
    """`request_code`'s answer, the same whatever the number and the firm.

    `register_unavailable`: the rules service could not be asked for the register's
    contact mobile (review 60 F2). A code still went to the firm's sign-in mobile if
    that was the number (it needs no rules), none to the register's contact: the firm
    is told so, for every number alike (messages.SIGN_IN_CODE_REGISTER_UNAVAILABLE), and
    asks again later. The spec is silent; refusing every request instead would keep the
    firms that have a sign-in mobile (most of them, after their first sign-in) from
    signing in through an outage that does not concern them, and answering only the
    firms without one would tell strangers which firms have none."""

    register_unavailable: bool = False


def request_code(
    uow: UnitOfWork, ctx: BookingContext, token: str, phone: str, client: str = ""
) -> CodeRequested:
    """Send a code when `phone` is the token's firm's sign-in mobile (or, while it has
    none, the rules register's contact mobile); the same answer otherwise, also when
    the SMS backend fails (`CodeRequested`: it says only whether rules could be asked).
    Rate limited per (firm, number) and per client address, either way.

    The request is counted first (its row added, under the lock of the firm's card row,
    so the limits hold across processes), and only a counted request asks rules (review
    56 D4: asking first let requests past the limits make booking call rules without
    bound). Every counted request then does the same work, whatever the number and
    whether the firm has a sign-in mobile: rules is asked (outside any transaction, no
    lock held), and a second transaction gives the row a code digest, one that matches
    no code when nothing is sent (UNSENT_PURPOSE). So neither the answer nor its time
    tells whether a firm has a sign-in mobile or whether a number is the one on record;
    the SMS itself goes out on the backend's worker thread (adapters/sms.py)."""
    phone = _phone(phone)
    phone_key = rules.keyed_digest(ctx.keyring, "phone", phone)
    client_key = rules.keyed_digest(ctx.keyring, "client", client) if client else ""
    at = now()
    with uow:
        card = firm_for_token(uow, ctx, token)
        card = uow.register.firm(card.enterprise_id, for_update=True) or card
        number_count = uow.register.codes_since(
            enterprise_id=card.enterprise_id, phone_digest=phone_key, since=at - HOUR
        )
        client_count = (
            uow.register.codes_since(client=client_key, since=at - HOUR) if client_key else 0
        )
        if (
            number_count >= rules.CODES_PER_NUMBER_PER_HOUR
            or client_count >= rules.CODES_PER_CLIENT_PER_HOUR
        ):
            raise RateLimited(messages.SIGN_IN_TOO_MANY_CODES, 600)
        # a row either way, so the limits count every request, known number or not; its
        # digest comes below, once rules has been asked
        row_id = rules.new_id()
        uow.register.add(
            SignInCode(
                id=row_id,
                enterprise_id=card.enterprise_id,
                phone_digest=phone_key,
                code_digest="",
                created_at=at,
                expires_at=at + rules.CODE_TTL,
                client=client_key,
            )
        )
        uow.commit()
    enterprise_id = card.enterprise_id
    try:
        contact, outage = register_contact(ctx, enterprise_id), False  # whatever the number
    except RulesUnavailable:
        contact, outage = "", True  # not known: no code to the register's contact
    code = rules.new_code()
    with uow:
        card = uow.register.firm(enterprise_id, for_update=True) or card
        purpose = rules.code_purpose(card.sign_in_phone, contact, phone)
        row = uow.register.sign_in_code(row_id)
        if row is not None:
            row.code_digest = rules.keyed_digest(
                ctx.keyring, purpose or rules.UNSENT_PURPOSE, enterprise_id, code
            )
            if outage and not purpose:
                # never a code (expired as it is made): it counts against the limits,
                # and leaves a code sent before to this number good (sign-in skips it)
                row.expires_at = row.created_at
        uow.commit()
    if purpose and row is not None:
        _send(ctx, phone, messages.SMS_CODE_TEXT.format(code=code))
    _log.info("sign-in code requested", phone=mask_phone(phone))  # never whether it matched
    # every request alike, whatever the number and the firm (review 60 F2)
    return CodeRequested(register_unavailable=outage)


def register_contact(ctx: BookingContext, enterprise_id: str) -> str:
    """The rules register's contact mobile of the firm; "" when it has none, or when the
    rules service refuses for good (logged): no code then goes to it, as for any number
    that is not on record. RulesUnavailable (logged) while rules cannot answer now:
    `request_code` then still sends the code to a sign-in mobile, and answers every
    request alike, "ask again later" (review 60 F2)."""
    try:
        firm = ctx.rules.firm(enterprise_id)
    except RulesError as exc:
        _log.warning(
            "sign-in: the register's contact mobile could not be read",
            enterprise_id=enterprise_id,
            error=str(exc)[:200],
        )
        if isinstance(exc, RulesUnavailable):
            raise
        return ""
    return firm.contact_mobile if firm is not None else ""


def _register_contact_now(ctx: BookingContext, enterprise_id: str) -> str:
    """The register's contact mobile as rules says it now, for a sign-in with a code
    sent to it ("" when the firm has none, or booking may not read it whole);
    Unavailable while rules cannot answer: whether the number is still on record is not
    known, and the code stays good (review 56 D3)."""
    try:
        firm = ctx.rules.firm(enterprise_id)
    except RulesError as exc:
        _log.warning(
            "sign-in: the register's contact mobile could not be checked again",
            enterprise_id=enterprise_id,
            error=str(exc)[:200],
        )
        raise Unavailable(messages.SIGN_IN_REGISTER_UNAVAILABLE, exc.retry_after) from exc
    return firm.contact_mobile if firm is not None else ""


def _send(ctx: BookingContext, phone: str, text: str) -> None:
    """Hand the code to the SMS backend. A failure is logged (number masked) and not
    raised: the caller's answer must not differ from an unknown number's."""
    if ctx.sms is None:
        _log.error("sign-in code not sent: no SMS backend is configured", phone=mask_phone(phone))
        return
    try:
        ctx.sms.send(phone, text)
    except SmsFailed as exc:
        _log.error(
            "sign-in code not sent: the SMS backend failed",
            phone=mask_phone(phone),
            error=str(exc)[:200],
        )
    except Exception as exc:  # a gateway's bug must not tell either
        _log.error(
            "sign-in code not sent: the SMS backend crashed",
            phone=mask_phone(phone),
            error_type=type(exc).__name__,
        )


def sign_in(uow: UnitOfWork, ctx: BookingContext, token: str, phone: str, code: str) -> SignedIn:
    """Exchange a code for a 30-day session of the token's firm. A wrong, expired, used
    or another firm's code is PermissionDenied; past MAX_TRIES, RateLimited. Once the
    firm's number had WRONG_CODES_PER_NUMBER_PER_DAY wrong codes in a day, a wrong code
    also voids its code (PermissionDenied SIGN_IN_WRONG_CODE_VOID: a new SMS code is
    needed), so a stranger guessing gets one try per code, 5 an hour, not 25.

    A code sent to the register's contact mobile signs in only while its number is still
    entitled when the code comes back (review 56 D2, D3): it is the firm's sign-in
    mobile by then (an admin or a visit gave the firm that same number), or the firm
    still has none and the number is the register's contact as rules says it now (asked
    again, with no transaction open, only once the code proved right: a wrong code never
    makes booking call rules). A number no longer entitled (the firm got another sign-in
    mobile; the register's contact was corrected or removed) is PermissionDenied
    SIGN_IN_NUMBER_NO_LONGER_ON_RECORD, and the code is void; while rules cannot
    answer, Unavailable (the code stays good for the rest of its 10 minutes: only a
    wrong code uses one of its MAX_TRIES tries, review 60 F2). Signing in
    with it makes the number the firm's sign-in mobile (audited, masked), so later
    sign-ins need no rules."""
    phone = _phone(phone)
    code = trim(code)
    if not rules.CODE.fullmatch(code):
        raise ValidationError([FieldViolation("code", messages.SIGN_IN_BAD_CODE_FORMAT)])
    at = now()
    digests = rules.keyed_digests(ctx.keyring, "phone", phone)
    with uow:
        card = firm_for_token(uow, ctx, token)
        row = _live_code(uow, card.enterprise_id, digests, at)
        if row.tries >= rules.MAX_TRIES:
            raise RateLimited(messages.SIGN_IN_TOO_MANY_TRIES, 60)
        purpose = _code_matches(ctx, row.code_digest, card.enterprise_id, code)
        if not purpose:
            wrong = uow.register.wrong_codes_since(card.enterprise_id, digests, at - rules.DAY)
            row.tries += 1  # only a wrong code uses a try (review 60 F2)
            if rules.wrong_code_voids(wrong + 1):
                _void_after_wrong_codes(uow, row, card.enterprise_id, wrong + 1, at)
        if purpose != rules.CONTACT_CODE_PURPOSE or card.sign_in_phone:
            # no register needed: a sign-in mobile's code, a wrong code, or a contact
            # code whose firm has a sign-in mobile by now (entitled only if it is this one)
            return _signed_in(uow, ctx, card.enterprise_id, row, purpose, phone, at)
        # the right code: nothing written yet (no try used, so a retry while rules cannot
        # answer keeps it); the register is asked with no transaction open
        row_id = row.id
    on_record = _register_contact_now(ctx, card.enterprise_id) == phone
    with uow:
        card = firm_for_token(uow, ctx, token)
        row = _live_code(uow, card.enterprise_id, digests, at)
        if row.id != row_id:  # a newer code was asked for meanwhile: only it signs in
            raise PermissionDenied(messages.SIGN_IN_WRONG_CODE)
        return _signed_in(
            uow, ctx, card.enterprise_id, row, purpose, phone, at, on_record=on_record
        )


def _void_after_wrong_codes(
    uow: UnitOfWork, row: SignInCode, enterprise_id: str, wrong: int, at: datetime
) -> None:
    """Inside the sign-in's transaction: a wrong code past the day's cap of its firm and
    number (`wrong` of them, this one counted) voids the code it was typed for, and says
    so (PermissionDenied SIGN_IN_WRONG_CODE_VOID): the number needs a new SMS code. Logged
    for staff (someone may be guessing that firm's codes), never with the number. The same
    for a number not on record (its requests' rows count alike), so nothing tells."""
    row.used_at = at
    uow.commit()
    _log.warning(
        "sign-in: a firm's number had too many wrong codes today; each code now takes one try",
        enterprise_id=enterprise_id,
        wrong_codes_today=wrong,
        cap=rules.WRONG_CODES_PER_NUMBER_PER_DAY,
    )
    raise PermissionDenied(messages.SIGN_IN_WRONG_CODE_VOID)


def _live_code(
    uow: UnitOfWork, enterprise_id: str, phone_digests: list[str], at: datetime
) -> SignInCode:
    """Inside the caller's transaction: the firm's newest code for the phone (locked),
    PermissionDenied when there is none or it is used (or void) or expired."""
    row = uow.register.latest_code(enterprise_id, phone_digests)
    if row is None or row.used_at is not None or as_utc(row.expires_at) <= at:
        raise PermissionDenied(messages.SIGN_IN_WRONG_CODE)
    return row


def _signed_in(
    uow: UnitOfWork,
    ctx: BookingContext,
    enterprise_id: str,
    row: SignInCode,
    purpose: str,
    phone: str,
    at: datetime,
    *,
    on_record: bool = False,
) -> SignedIn:
    """Inside the caller's transaction, the code checked (`purpose`: what it was sent
    for, "" when it is not the code; `on_record`: rules says now that `phone` is the
    register's contact): the new session, committed. A wrong code only counts its try;
    a contact code whose number is no longer entitled (`_adopt_contact`) is void."""
    if not purpose:
        uow.commit()  # the try counts
        raise PermissionDenied(messages.SIGN_IN_WRONG_CODE)
    if purpose == rules.CONTACT_CODE_PURPOSE and not _adopt_contact(
        uow, enterprise_id, phone, on_record
    ):
        row.used_at = at  # void: the number it went to is no longer the one on record
        uow.commit()
        raise PermissionDenied(messages.SIGN_IN_NUMBER_NO_LONGER_ON_RECORD)
    row.used_at = at
    cred, text = rules.new_credential(ctx.keyring)
    uow.register.add(
        FirmSession(
            id=cred.session_id,
            enterprise_id=enterprise_id,
            phone_digest=row.phone_digest,
            secret_digest=rules.secret_digest(cred.secret),
            created_at=at,
            expires_at=at + rules.SESSION_TTL,
        )
    )
    uow.commit()
    return SignedIn(text, enterprise_id, at + rules.SESSION_TTL)


def _code_matches(ctx: BookingContext, digest: str, enterprise_id: str, code: str) -> str:
    """The purpose (domain/sign_in.py) `code` was sent for when `digest` is its digest,
    under any key of the ring; "" when it is not (or no code was sent: no digest, or
    one of UNSENT_PURPOSE, which is never tried)."""
    if not digest:
        return ""
    for purpose in (rules.CODE_PURPOSE, rules.CONTACT_CODE_PURPOSE):
        expected = rules.keyed_digests(ctx.keyring, purpose, enterprise_id, code)
        if any(hmac.compare_digest(digest, d) for d in expected):
            return purpose
    return ""


def _adopt_contact(uow: UnitOfWork, enterprise_id: str, phone: str, on_record: bool) -> bool:
    """Inside the sign-in's transaction, before its session is added: whether the number
    a contact code went to is still entitled, the firm's card locked. It is when it is
    the firm's sign-in mobile by now (an admin's or a visit's choice of that number), or
    when the firm still has none and rules says it is the register's contact
    (`on_record`): it then becomes the firm's sign-in mobile. Not when the firm got
    another sign-in mobile since the code went out (an admin's or a visit's choice, made
    in person, stays: review 56 D2), nor when the register's contact was corrected or
    removed meanwhile (review 56 D3)."""
    card = uow.register.firm(enterprise_id, for_update=True)
    if card is None:
        return False
    if card.sign_in_phone:
        return card.sign_in_phone == phone
    if on_record:
        change_phone(uow, card, phone)
    return on_record


def session_firm(uow: UnitOfWork, ctx: BookingContext, credential: str) -> str | None:
    """The enterprise id a session credential signs in, or None (absent, forged, expired,
    ended)."""
    cred = rules.read_credential(ctx.keyring, credential) if credential else None
    if cred is None:
        return None
    with uow:
        row = uow.register.firm_session(cred.session_id)
        if (
            row is None
            or row.ended_at is not None
            or as_utc(row.expires_at) <= now()
            or row.secret_digest != rules.secret_digest(cred.secret)
        ):
            return None
        return row.enterprise_id


def end_session(uow: UnitOfWork, ctx: BookingContext, credential: str) -> None:
    """Sign out: the session stops working at once."""
    cred = rules.read_credential(ctx.keyring, credential) if credential else None
    if cred is None:
        return
    with uow:
        row = uow.register.firm_session(cred.session_id)
        if row is not None and row.secret_digest == rules.secret_digest(cred.secret):
            row.ended_at = now()
            uow.commit()


def set_sign_in_phone(
    uow: UnitOfWork, ctx: BookingContext, enterprise_id: str, phone: str
) -> FirmCard:
    """booking.admin sets or (empty) clears a firm's sign-in mobile; audited."""
    lookups.firm_id(enterprise_id)
    clean = _phone(phone) if trim(phone) else ""
    with uow:
        card = uow.register.firm(enterprise_id, for_update=True)
        if card is None:
            raise NotFound(messages.SIGN_IN_NO_QR_CODE)
        change_phone(uow, card, clean)
        uow.commit()
        return card


def change_phone(uow: UnitOfWork, card: FirmCard, phone: str) -> None:
    """Inside the caller's transaction: a new sign-in mobile ends the firm's sessions."""
    if card.sign_in_phone == phone:
        return
    card.sign_in_phone = phone
    at = now()
    for session in uow.register.firm_sessions(card.enterprise_id):
        session.ended_at = at
