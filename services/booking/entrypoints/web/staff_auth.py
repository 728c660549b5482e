"""The staff pages' session cookie, CSRF check and error pages (translation only: the
sessions themselves are service_layer/staff_sessions.py's).

The cookie holds the session's random secret: HttpOnly, SameSite=Lax, Path=/, no
Max-Age (it ends with the browser; the server ends it after 30 idle minutes), and Secure
when the request came over TLS or the service's public URL is https:// (a TLS proxy in
front of it: `--public-url https://…`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from services.booking.domain import messages
from services.booking.entrypoints.web.errors import error_page
from services.common.config import is_https
from services.common.errors import NotFound, PermissionDenied
from services.common.values import control_problem

COOKIE = "staff_session"
LOGIN = "/staff/login"
Handler = Callable[[Any, Request], Awaitable[Response]]


def is_tls(request: Request, public_url: str) -> bool:
    return request.url.scheme == "https" or is_https(public_url)


def set_session(response: Response, secret: str, secure: bool) -> None:
    response.set_cookie(COOKIE, secret, path="/", httponly=True, samesite="lax", secure=secure)


def clear_session(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure)


def to_login(secure: bool, clear: bool = False) -> Response:
    response = RedirectResponse(LOGIN, status_code=303)
    if clear:
        clear_session(response, secure)
    return response


def csrf_refused(render: Callable[..., HTMLResponse]) -> HTMLResponse:
    return error_page(render, 403, messages.PAGE_STAFF_CSRF, staff=True)


def staff_errors(handler: Handler) -> Handler:
    """A refused or missing record as the staff pages' own 403 / 404 page, in their
    layout (the phone page's 403 speaks of QR codes), with the person's bar (their name,
    退出: review 59 F11; `self` is a StaffBase). An id with a control character names no
    record (and must not reach the database: PostgreSQL refuses NUL)."""

    @wraps(handler)
    async def run(self: Any, request: Request) -> Response:
        if any(control_problem(str(v)) for v in request.path_params.values()):
            return await self.error_page(request, 404, messages.PAGE_STAFF_NOT_FOUND)
        try:
            return await handler(self, request)
        except PermissionDenied:
            return await self.error_page(request, 403, messages.PAGE_STAFF_FORBIDDEN)
        except NotFound:
            return await self.error_page(request, 404, messages.PAGE_STAFF_NOT_FOUND)

    return run
