"""Errors as pages, in one place: each kind of failure has its status code and its
Chinese page (domain/messages.py), in the layout of the pages asked for: the staff
pages' (staff/error.html) for a /staff URL, the phone page's (error.html) for any other.
A refused QR token's page is deliberately generic: no firm name, no reason, nothing from
the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response

from services.booking.domain import messages
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.entrypoints.web.middleware import (
    BodyStalled,
    BodyTooLarge,
    log_path,
    secure,
)
from services.common.db import database_unavailable
from services.common.errors import (
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    ValidationError,
)

_log = structlog.get_logger("web")
STAFF_HOME = "/staff"  # the staff pages' start (web/staff_pages.py)
Render = Callable[..., HTMLResponse]  # (template, status, **context) → page
Handler = Callable[[Request, Exception], Awaitable[Response]]


def is_staff(path: str) -> bool:
    """A staff page's URL (/staff, /staff/…), whose errors have the staff layout."""
    return path == STAFF_HOME or path.startswith(STAFF_HOME + "/")


def error_page(
    render: Render,
    status: int,
    text: tuple[str, str],
    staff: bool = False,
    person: Mapping[str, Any] | None = None,
) -> HTMLResponse:
    """The page of an error: the phone page's, or (`staff`) the staff pages' with a link
    back to the person's start page, and the signed-in person's bar when `person` says
    who (staff_pages.person_context: a staff page's own refusal knows; the app's
    handlers of other errors do not look the session up)."""
    title, message = text
    if staff:
        link = (STAFF_HOME, messages.STAFF_HOME_LINK)
        who = dict(person) if person else {"user": None}
        return render("staff/error.html", status, title=title, message=message, link=link, **who)
    return render("error.html", status, title=title, message=message)


def limit_page(render: Render) -> Callable[[str, int], Response]:
    """The rate limits' refusal (limits.py) of a request to `path`: 429, Retry-After, the
    page "操作太频繁"."""

    def page(path: str, wait: int) -> Response:
        response = error_page(render, 429, messages.PAGE_TOO_MANY, is_staff(path))
        response.headers["Retry-After"] = str(max(1, wait))
        return response

    return page


def foreign_post_page(render: Render) -> Callable[[], Response]:
    """OriginCheck's refusal (middleware.py) of a firm's post from another site: 403,
    the page "无法提交"."""

    def page() -> Response:
        return error_page(render, 403, messages.PAGE_FOREIGN_POST)

    return page


def handlers(render: Render) -> dict[Any, Handler]:
    """Starlette's exception handlers for the phone page and the staff pages (those
    answer a refused or missing record themselves: staff_auth.staff_errors)."""

    def shown(request: Request, status: int, text: tuple[str, str]) -> HTMLResponse:
        return error_page(render, status, text, is_staff(request.url.path))

    def page(status: int, text: tuple[str, str], staff_text: tuple[str, str]) -> Handler:
        async def handle(request: Request, exc: Exception) -> Response:
            staff = is_staff(request.url.path)
            return error_page(render, status, staff_text if staff else text, staff)

        return handle

    async def invalid(request: Request, exc: Exception) -> Response:
        said = "；".join(v.description for v in getattr(exc, "violations", []))
        title, hint = messages.PAGE_BAD_REQUEST
        return shown(request, 400, (title, said or hint))

    async def unavailable(request: Request, exc: Exception) -> Response:
        _log.warning("unavailable", path=log_path(request.url.path), error=str(exc)[:200])
        response = shown(request, 503, messages.PAGE_UNAVAILABLE)
        response.headers["Retry-After"] = "30"
        return response

    crashed = crash_handler(render)

    async def database_error(request: Request, exc: Exception) -> Response:
        """Any other database error: unavailable when it says so (db.database_unavailable,
        by SQLSTATE or SQLite result code: a read-only database's InternalError, review
        57 D1), else what it is, a crash."""
        if database_unavailable(exc):
            return await unavailable(request, exc)
        return await crashed(request, exc)

    async def too_many(request: Request, exc: Exception) -> Response:
        response = shown(request, 429, messages.PAGE_TOO_MANY)
        response.headers["Retry-After"] = str(max(1, round(getattr(exc, "retry_after", 60))))
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 500)
        text = {404: messages.PAGE_NO_SUCH_PAGE, 405: messages.PAGE_METHOD}
        return shown(request, code, text.get(code, messages.PAGE_HTTP_ERROR))

    def same(status: int, text: tuple[str, str]) -> Handler:
        return page(status, text, text)

    async def stalled(request: Request, exc: Exception) -> Response:
        """A body that stopped arriving (middleware.py BodyPace): cut, one line logged."""
        body_cut(request, exc)
        return shown(request, 408, messages.PAGE_UPLOAD_STALLED)

    return {
        PermissionDenied: page(403, messages.PAGE_QR_INVALID, messages.PAGE_STAFF_FORBIDDEN),
        NotFound: page(404, messages.PAGE_NOT_FOUND, messages.PAGE_STAFF_NOT_FOUND),
        ValidationError: invalid,
        PreconditionFailed: same(409, messages.PAGE_CONFLICT),
        Unavailable: unavailable,
        RateLimited: too_many,
        RulesUnavailable: unavailable,
        OperationalError: unavailable,
        PoolTimeout: unavailable,
        DBAPIError: database_error,
        BodyTooLarge: same(413, messages.PAGE_TOO_LARGE),
        BodyStalled: stalled,
        ClientDisconnect: dropped,
        HTTPException: http_error,
        Exception: crashed,  # fallback: Guard normally answers these itself
    }


def body_cut(request: Request, exc: Exception) -> None:
    """One warning line for a request whose body was cut (BodyStalled) or whose client
    went away before it was in (ClientDisconnect: a phone that lost its signal mid-
    upload): no traceback, it is no fault of the service (review 60 F4)."""
    what = "stalled: cut" if isinstance(exc, BodyStalled) else "dropped by the client"
    _log.warning(f"request body {what}", path=log_path(request.url.path), method=request.method)


async def dropped(request: Request, exc: Exception) -> Response:
    """The client went away mid-body: logged (`body_cut`); the answer reaches nobody."""
    body_cut(request, exc)
    return Response(status_code=400)


def crash_handler(render: Render) -> Handler:
    async def crashed(request: Request, exc: Exception) -> Response:
        """Anything unexpected: log it (without the QR token), show no traceback."""
        _log.error(
            "unexpected error",
            path=log_path(request.url.path),
            method=request.method,
            error_type=type(exc).__name__,
            exc_info=exc,
        )
        response = error_page(render, 500, messages.PAGE_CRASHED, is_staff(request.url.path))
        secure(response.headers)  # when sent from Starlette's outer middleware
        return response

    return crashed
