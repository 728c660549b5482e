"""Errors as pages, in one place: each kind of failure has its status code and its
Chinese page (domain/messages.py). A refused QR token's page is deliberately generic: no
firm name, no reason, nothing from the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from services.booking.domain import messages
from services.booking.domain.firm_access import OtherFirmsRecord
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.entrypoints.web.middleware import BodyTooLarge, log_path, secure
from services.common.errors import (
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    ValidationError,
)

_log = structlog.get_logger("web")
Render = Callable[..., HTMLResponse]  # (template, status, **context) → page
Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_page(render: Render, status: int, text: tuple[str, str]) -> HTMLResponse:
    title, message = text
    return render("error.html", status, title=title, message=message)


def limit_page(render: Render) -> Callable[[str, int], Response]:
    """The rate limits' refusal (limits.py): 429, Retry-After, the page "操作太频繁"."""

    def page(path: str, wait: int) -> Response:
        response = error_page(render, 429, messages.PAGE_TOO_MANY)
        response.headers["Retry-After"] = str(max(1, wait))
        return response

    return page


def handlers(render: Render) -> dict[Any, Handler]:
    """Starlette's exception handlers for the phone page."""

    def page(status: int, text: tuple[str, str]) -> Handler:
        async def handle(request: Request, exc: Exception) -> Response:
            return error_page(render, status, text)

        return handle

    async def invalid(request: Request, exc: Exception) -> Response:
        shown = "；".join(v.description for v in getattr(exc, "violations", []))
        title, hint = messages.PAGE_BAD_REQUEST
        return error_page(render, 400, (title, shown or hint))

    async def unavailable(request: Request, exc: Exception) -> Response:
        _log.warning("unavailable", path=log_path(request.url.path), error=str(exc)[:200])
        response = error_page(render, 503, messages.PAGE_UNAVAILABLE)
        response.headers["Retry-After"] = "30"
        return response

    async def too_many(request: Request, exc: Exception) -> Response:
        response = error_page(render, 429, messages.PAGE_TOO_MANY)
        response.headers["Retry-After"] = str(max(1, round(getattr(exc, "retry_after", 60))))
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 500)
        text = {404: messages.PAGE_NO_SUCH_PAGE, 405: messages.PAGE_METHOD}
        return error_page(render, code, text.get(code, messages.PAGE_HTTP_ERROR))

    return {
        PermissionDenied: page(403, messages.PAGE_QR_INVALID),
        OtherFirmsRecord: page(404, messages.PAGE_NOT_FOUND),  # as if there were none
        NotFound: page(404, messages.PAGE_NOT_FOUND),
        ValidationError: invalid,
        PreconditionFailed: page(409, messages.PAGE_CONFLICT),
        Unavailable: unavailable,
        RateLimited: too_many,
        RulesUnavailable: unavailable,
        OperationalError: unavailable,
        PoolTimeout: unavailable,
        BodyTooLarge: page(413, messages.PAGE_TOO_LARGE),
        HTTPException: http_error,
        Exception: crash_handler(render),  # fallback: Guard normally answers these itself
    }


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
        response = error_page(render, 500, messages.PAGE_CRASHED)
        secure(response.headers)  # when sent from Starlette's outer middleware
        return response

    return crashed
