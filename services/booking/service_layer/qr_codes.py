"""一图一码: issue a firm's QR code and poster; resolve a QR token to its firm.

A firm's call or page brings its QR token, its signed-in session or both (a
`FirmAccess`, domain/firm_access.py): every use case that takes one resolves it
(`owner_of`) before it looks anything up, so a forged, edited or revoked token learns
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from services.booking.adapters.poster import render_poster
from services.booking.domain import lookups, messages, qr
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.records import FirmCard
from services.booking.service_layer.guidance import checklist
from services.booking.service_layer.ports import BookingContext, ask_rules
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.errors import NotFound, PermissionDenied


@dataclass
class IssuedCode:
    url: str
    token: str
    poster_svg: str
    key_id: str
    issued_at: datetime


def issue_qr_code(uow: UnitOfWork, ctx: BookingContext, enterprise_id: str) -> IssuedCode:
    """Sign a new code for a firm of the rules register; the previous code stops working."""
    lookups.firm_id(enterprise_id)
    info = ask_rules(lambda: ctx.rules.firm(enterprise_id))
    if info is None:
        raise NotFound(messages.FIRM_NOT_REGISTERED.format(ref=messages.quoted(enterprise_id)))
    token, text = qr.issue(ctx.keyring, enterprise_id)
    with uow:
        card = uow.register.firm(enterprise_id, for_update=True)
        if card is None:
            card = FirmCard(enterprise_id, info.name, info.region)
            uow.register.add(card)
        card.name, card.region = info.name, info.region
        card.qr_key_id, card.qr_serial, card.qr_issued_at = token.key_id, token.serial, now()
        issued_at = card.qr_issued_at
        uow.commit()
    url = f"{ctx.public_url.rstrip('/')}/q/{text}"
    poster = render_poster(
        info.name, url, ctx.menu.values(), ctx.hotline, checklist(ctx, enterprise_id)
    )
    return IssuedCode(url, text, poster, token.key_id, issued_at)


def firm_for_token(uow: UnitOfWork, ctx: BookingContext, text: str) -> FirmCard:
    """The firm a QR token stands for (inside the caller's transaction); PermissionDenied
    for a forged, edited or revoked one."""
    token = verified_token(ctx, text)
    return _current(token, uow.register.firm_card(token.enterprise_id))  # to read


def firms_for_tokens(
    uow: UnitOfWork, ctx: BookingContext, texts: Sequence[str]
) -> list[FirmCard | PermissionDenied]:
    """`firm_for_token` for each of several tokens, their cards read in one query: each
    the firm or the PermissionDenied `firm_for_token` raises."""
    tokens: list[qr.QrToken | PermissionDenied] = []
    for text in texts:
        try:
            tokens.append(verified_token(ctx, text))
        except PermissionDenied as exc:
            tokens.append(exc)
    cards = uow.register.firm_cards_of(
        {t.enterprise_id for t in tokens if not isinstance(t, PermissionDenied)}
    )
    found: list[FirmCard | PermissionDenied] = []
    for token in tokens:
        if isinstance(token, PermissionDenied):
            found.append(token)
            continue
        try:
            found.append(_current(token, cards.get(token.enterprise_id)))
        except PermissionDenied as exc:
            found.append(exc)
    return found


def verified_token(ctx: BookingContext, text: str) -> qr.QrToken:
    """The token's signed content; PermissionDenied for a forged or edited one (its
    signature only: whether it is the firm's current code needs the register)."""
    try:
        return qr.verify(ctx.keyring, text)
    except qr.TokenRejected as exc:
        reason = messages.QR_REJECTED.get(exc.reason, messages.QR_REJECTED["malformed"])
        raise PermissionDenied(messages.QR_INVALID.format(reason=reason)) from exc


def _current(token: qr.QrToken, card: FirmCard | None) -> FirmCard:
    """The firm's card, if the token is its current code (PermissionDenied: revoked)."""
    if card is None or card.qr_serial != token.serial or card.qr_key_id != token.key_id:
        raise PermissionDenied(messages.QR_REVOKED)
    return card


def owner_of(uow: UnitOfWork, ctx: BookingContext, access: FirmAccess) -> FirmCard | None:
    """The firm acting, checked before any record is looked up: the firm of a signed-in
    session (`access.session_firm`, sign_in.py), which a QR token sent with it must agree
    with, or the firm a QR token stands for; None for a staff caller (STAFF: scopes)."""
    card = firm_for_token(uow, ctx, access.token) if access.token else None
    if access.session_firm:
        signed = uow.register.firm(access.session_firm)
        if signed is None or (card is not None and card.enterprise_id != access.session_firm):
            raise PermissionDenied(messages.SIGN_IN_NEEDS_SESSION)
        return signed
    return card


def session_owner(uow: UnitOfWork, ctx: BookingContext, access: FirmAccess) -> FirmCard:
    """`owner_of` for what only the firm's own session may see (a ticket, a photo):
    PermissionDenied for a QR token alone, and for a staff caller."""
    owner = owner_of(uow, ctx, access)
    if owner is None or not access.session_firm:
        raise PermissionDenied(messages.SIGN_IN_NEEDS_SESSION)
    return owner


def current_token(ctx: BookingContext, card: FirmCard) -> str:
    """The text of the firm's current QR token (rebuilt from its key id and serial), ""
    when it has none or its key has left the keyring."""
    if not card.qr_serial or card.qr_key_id not in ctx.keyring.keys:
        return ""
    return qr.sign(ctx.keyring, qr.QrToken(card.qr_key_id, card.enterprise_id, card.qr_serial))


class OfAFirm(Protocol):
    enterprise_id: str


R = TypeVar("R", bound=OfAFirm)


def visible(owner: FirmCard | None, record: R | None, what: str, ref: str) -> R:
    """`record` (looked up by `ref`) if it exists and `owner` may see it: a QR token's
    firm sees only its own records; None (a staff caller) sees any. Another firm's record
    is answered as an id that names nothing (NotFound, the same message): a firm learns
    nothing of other firms' records, not even that one exists (reach-notfound)."""
    if record is None or (owner is not None and owner.enterprise_id != record.enterprise_id):
        raise NotFound(messages.no_such(what, ref))
    return record
