"""The firm's own sign-in: a one-time code to the firm's sign-in mobile, then a session.

Nothing here says whether a phone is on record: `request_code` answers the same either
way (a code goes out only when the phone is the firm's sign-in mobile). Codes, tries and
sessions live in the register (they hold across processes and replicas); only digests
of codes, phones and session secrets are stored. The sign-in mobile is set by
booking.admin (`set_sign_in_phone`) or by the visit of one of the firm's orders
(visits.py): the mobile of the person the expert met, or, while the firm has none, that
order's contact mobile when the expert confirmed in person that it is theirs
(domain/sign_in.py `mobile_after_visit`); or, while the firm has none, by a sign-in with
a code sent to the rules register's contact mobile (domain/sign_in.py `code_purpose`);
each change is in the audit trail (masked) and ends the firm's sessions.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from services.booking.domain import lookups, messages
from services.booking.domain import sign_in as rules
from services.booking.domain.orders import PHONE, mask_phone
from services.booking.domain.records import FirmCard, FirmSession, SignInCode
from services.booking.domain.rules_service import RulesError
from services.booking.service_layer.ports import BookingContext, SmsFailed
from services.booking.service_layer.qr_codes import firm_for_token
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import (
    FieldViolation,
    NotFound,
    PermissionDenied,
    RateLimited,
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
    phone = trim(value).replace(" ", "").replace("-", "")
    if not PHONE.fullmatch(phone):
        raise ValidationError([FieldViolation(field, messages.SIGN_IN_BAD_PHONE)])
    return phone


def request_code(
    uow: UnitOfWork, ctx: BookingContext, token: str, phone: str, client: str = ""
) -> None:
    """Send a code when `phone` is the token's firm's sign-in mobile; the same answer
    (nothing) otherwise, also when the SMS backend fails. Rate limited per (firm, number)
    and per client address, either way. Requests for one firm are serialised (its card
    row is locked), so the limits hold across processes."""
    phone = _phone(phone)
    phone_key = rules.keyed_digest(ctx.keyring, "phone", phone)
    client_key = rules.keyed_digest(ctx.keyring, "client", client) if client else ""
    with uow:
        card = firm_for_token(uow, ctx, token)
    # asked whatever number was typed, outside the transaction (no lock held on rules)
    contact = "" if card.sign_in_phone else register_contact(ctx, card.enterprise_id)
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
        code = rules.new_code()
        purpose = rules.code_purpose(card.sign_in_phone, contact, phone)
        matches = bool(purpose)
        # a row either way, so the limits count every request, known number or not
        uow.register.add(
            SignInCode(
                id=rules.new_id(),
                enterprise_id=card.enterprise_id,
                phone_digest=phone_key,
                code_digest=rules.keyed_digest(ctx.keyring, purpose, card.enterprise_id, code)
                if matches
                else "",
                created_at=at,
                expires_at=at + rules.CODE_TTL,
                client=client_key,
            )
        )
        uow.commit()
    if matches:
        _send(ctx, phone, messages.SMS_CODE_TEXT.format(code=code))
    _log.info("sign-in code requested", phone=mask_phone(phone))  # never whether it matched


def register_contact(ctx: BookingContext, enterprise_id: str) -> str:
    """The rules register's contact mobile of the firm; "" when it has none, or when the
    rules service cannot answer (logged): the request is then answered, and no code sent,
    as for any number that is not on record."""
    try:
        firm = ctx.rules.firm(enterprise_id)
    except RulesError as exc:
        _log.warning(
            "sign-in: the register's contact mobile could not be read",
            enterprise_id=enterprise_id,
            error=str(exc)[:200],
        )
        return ""
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
    or another firm's code is PermissionDenied; past MAX_TRIES, RateLimited. A code sent
    to the register's contact mobile makes it the firm's sign-in mobile (audited,
    masked), unless the firm got one meanwhile, so later sign-ins need no rules."""
    phone = _phone(phone)
    code = trim(code)
    if not rules.CODE.fullmatch(code):
        raise ValidationError([FieldViolation("code", messages.SIGN_IN_BAD_CODE_FORMAT)])
    at = now()
    with uow:
        card = firm_for_token(uow, ctx, token)
        row = uow.register.latest_code(
            card.enterprise_id, rules.keyed_digests(ctx.keyring, "phone", phone)
        )
        if row is None or row.used_at is not None or as_utc(row.expires_at) <= at:
            raise PermissionDenied(messages.SIGN_IN_WRONG_CODE)
        if row.tries >= rules.MAX_TRIES:
            raise RateLimited(messages.SIGN_IN_TOO_MANY_TRIES, 60)
        row.tries += 1
        purpose = _code_matches(ctx, row.code_digest, card.enterprise_id, code)
        if purpose == rules.CONTACT_CODE_PURPOSE and not _adopt_contact(
            uow, card.enterprise_id, phone
        ):
            purpose = ""  # the firm got another sign-in mobile since: the code is void
        if not purpose:
            uow.commit()  # the try counts
            raise PermissionDenied(messages.SIGN_IN_WRONG_CODE)
        row.used_at = at
        cred, text = rules.new_credential(ctx.keyring)
        uow.register.add(
            FirmSession(
                id=cred.session_id,
                enterprise_id=card.enterprise_id,
                phone_digest=row.phone_digest,
                secret_digest=rules.secret_digest(cred.secret),
                created_at=at,
                expires_at=at + rules.SESSION_TTL,
            )
        )
        uow.commit()
    return SignedIn(text, card.enterprise_id, at + rules.SESSION_TTL)


def _code_matches(ctx: BookingContext, digest: str, enterprise_id: str, code: str) -> str:
    """The purpose (domain/sign_in.py) `code` was sent for when `digest` is its digest,
    under any key of the ring; "" when it is not (or no code was sent)."""
    if not digest:
        return ""
    for purpose in (rules.CODE_PURPOSE, rules.CONTACT_CODE_PURPOSE):
        expected = rules.keyed_digests(ctx.keyring, purpose, enterprise_id, code)
        if any(hmac.compare_digest(digest, d) for d in expected):
            return purpose
    return ""


def _adopt_contact(uow: UnitOfWork, enterprise_id: str, phone: str) -> bool:
    """Inside the sign-in's transaction, before its session is added: the register's
    contact mobile, just proven by its code, becomes the firm's sign-in mobile while the
    firm has none. False when the firm got another one since the code went out (an
    admin's or a visit's choice, made in person, stays, and the code sent to the
    register's number no longer signs in: review 56 D2)."""
    card = uow.register.firm(enterprise_id, for_update=True)
    if card is None:
        return False
    if not card.sign_in_phone:
        change_phone(uow, card, phone)
    return card.sign_in_phone == phone


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
