"""The firm's session cookie on the phone page: signed, HttpOnly, SameSite=Lax, 30 days
(Secure when the public URL is https). Its value is the session credential of
service_layer/sign_in.py; the server keeps only the digest of its secret."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlencode

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import sign_in as rules
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.sign_in import SESSION_TTL
from services.booking.service_layer import sign_in
from services.booking.service_layer.ports import BookingContext
from services.common.config import is_https

COOKIE = "firm_session"
MAX_COOKIE = 200
# the firm's own pages a visitor may be sent back to after signing in
_RETURN_PATH = (
    r"(/(self-check|order|(orders|tickets|photos)/[A-Za-z0-9_-]{1,64}"
    r"|orders/[A-Za-z0-9_-]{1,64}/cancel))?"
)


def credential(request: Request) -> str:
    value = request.cookies.get(COOKIE, "")
    return value if len(value) <= MAX_COOKIE else ""


async def signed_in_firm(ctx: BookingContext, engine: Engine, request: Request) -> str:
    """The enterprise id of the request's valid firm session, or ""."""
    text = credential(request)
    if not text:
        return ""
    found = await run_in_threadpool(sign_in.session_firm, SqlUnitOfWork(engine), ctx, text)
    return found or ""


def session_bucket(ctx: BookingContext) -> Callable[[str], str]:
    """A session cookie's bucket in the page's post limits (web/limits.py): its session
    id when its signature holds (checked with no database: a forged one is "", counted
    per token), never the secret."""

    def bucket(text: str) -> str:
        cred = rules.read_credential(ctx.keyring, text) if text else None
        return cred.session_id if cred is not None else ""

    return bucket


async def firm_access(ctx: BookingContext, engine: Engine, request: Request) -> FirmAccess:
    """What a /q/{token}/ request brings: the QR token in its path and the firm its
    session cookie signs in (unchecked against each other: the use case does that)."""
    return FirmAccess(request.path_params["token"], await signed_in_firm(ctx, engine, request))


def set_cookie(response: Response, ctx: BookingContext, text: str) -> None:
    response.set_cookie(
        COOKIE,
        text,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(ctx.public_url),
    )


def clear_cookie(response: Response, ctx: BookingContext) -> None:
    response.delete_cookie(
        COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(ctx.public_url),
    )


def sign_in_redirect(token: str, request: Request) -> RedirectResponse:
    """To the sign-in page, which returns the visitor to this page afterwards."""
    query = urlencode({"next": request.url.path})
    return RedirectResponse(f"/q/{token}/sign-in?{query}", status_code=303)


def return_path(token: str, value: str) -> str:
    """Where to go after signing in: `value` when it is one of this token's own pages
    (/q/{token}, its order form, self-check, an order, an order's cancel page, a ticket
    or photo: no other host, no query, no ".."), else the firm's page. Never an open
    redirect."""
    home = f"/q/{token}"
    if re.fullmatch(re.escape(home) + _RETURN_PATH, value or ""):
        return value
    return home
