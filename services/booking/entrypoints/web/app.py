"""The booking service's HTTP app: its routes, middleware and error pages together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.booking.entrypoints.web import errors
from services.booking.entrypoints.web.dashboard import DashboardRoutes
from services.booking.entrypoints.web.firm_pages import FirmPages
from services.booking.entrypoints.web.firm_session import session_bucket
from services.booking.entrypoints.web.limits import (
    DEFAULT_WEB_LIMITS,
    RateLimitMiddleware,
    WebLimits,
)
from services.booking.entrypoints.web.middleware import Guard, OriginCheck
from services.booking.entrypoints.web.pages import Pages
from services.booking.entrypoints.web.staff_expert import ExpertPages
from services.booking.entrypoints.web.staff_inspector import InspectorPages
from services.booking.entrypoints.web.staff_pages import SignInPages
from services.booking.entrypoints.web.uploads import Uploads
from services.booking.service_layer.ports import BookingContext
from services.common.auth import TokenStore

STATIC = Path(__file__).resolve().parent.parent / "static"


def create_web_app(
    ctx: BookingContext,
    engine: Engine,
    *,
    on_outbox: Callable[[], None] = lambda: None,
    limits: WebLimits | None = DEFAULT_WEB_LIMITS,
    staff: TokenStore | None = None,
    uploads: Uploads | None = None,
) -> Starlette:
    """The phone page, /verify, /dashboard, /healthz and the staff pages, every route in
    one table (described in entrypoints/web/__init__.py and web/staff_pages.py).
    `uploads`: what the expert's visit photos may take of the process (web/uploads.py;
    None: UploadLimits' defaults)."""
    uploads = uploads or Uploads()
    pages = Pages(ctx, engine, on_outbox, staff, uploads)
    board = DashboardRoutes(pages)
    args = (ctx, engine, pages.render, on_outbox, pages.guidance)
    sign, inspector = SignInPages(*args), InspectorPages(*args)
    expert = ExpertPages(*args, uploads=uploads)
    pages.staff_session = sign.signed_in_visitor  # who opens /dashboard with a session
    routes = [
        Route("/staff", sign.home, methods=["GET"]),
        Route("/staff/login", sign.login_form, methods=["GET"]),
        Route("/staff/login", sign.login_submit, methods=["POST"]),
        Route("/staff/logout", sign.logout, methods=["POST"]),
        Route("/staff/tickets", inspector.queue, methods=["GET"]),
        Route("/staff/tickets/{ticket_id}", inspector.ticket, methods=["GET"]),
        Route("/staff/tickets/{ticket_id}", inspector.recheck, methods=["POST"]),
        Route("/staff/photos/{photo_id}", inspector.photo, methods=["GET"]),
        Route("/staff/visits", expert.visits, methods=["GET"]),
        Route("/staff/findings", expert.findings, methods=["GET"]),
        Route("/staff/orders/{order_id}/visit", expert.visit_form, methods=["GET"]),
        Route("/staff/orders/{order_id}/visit", expert.visit_submit, methods=["POST"]),
        Route("/q/{token}", pages.landing, methods=["GET"]),
        Route("/q/{token}/order", pages.order_form, methods=["GET"]),
        Route("/q/{token}/order", pages.order_submit, methods=["POST"]),
        Route("/q/{token}/orders/{order_id}", pages.order_page, methods=["GET"]),
        Route("/q/{token}/tickets/{ticket_id}", pages.ticket_page, methods=["GET"]),
        Route("/q/{token}/tickets/{ticket_id}", pages.ticket_submit, methods=["POST"]),
        Route("/q/{token}/photos/{photo_id}", pages.photo, methods=["GET"]),
        Route("/verify/{code}", pages.verify, methods=["GET"]),
        Route("/dashboard", board.page, methods=["GET"]),
        Route("/dashboard/{chart}.csv", board.csv, methods=["GET"]),
        Route("/healthz", pages.healthz, methods=["GET"]),
        *FirmPages(pages).routes(),  # the firm's own: sign-in, self-check
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return Starlette(
        debug=False,
        routes=routes,
        middleware=[
            Middleware(
                Guard, on_crash=errors.crash_handler(pages.render), pace=uploads.limits.pace
            ),
            Middleware(
                OriginCheck,
                public_url=ctx.public_url,
                refused=errors.foreign_post_page(pages.render),
            ),
            *(
                [
                    Middleware(
                        RateLimitMiddleware,
                        limits=limits,
                        refused=errors.limit_page(pages.render),
                        session_key=session_bucket(ctx),
                    )
                ]
                if limits
                else []
            ),
        ],
        exception_handlers=errors.handlers(pages.render),
    )
