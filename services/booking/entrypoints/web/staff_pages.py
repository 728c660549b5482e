"""The staff pages (inspectors, experts; supervisors and admins reach /dashboard with
their session): sign-in and what every staff page shares. The inspector's pages are in
staff_inspector.py, the expert's in staff_expert.py; web/app.py's table routes them.

Routes:
    GET  /staff                          → the person's own start page (or the login)
    GET  /staff/login, POST              sign-in (a CSRF token guards the form too)
    POST /staff/logout                   sign-out
    GET  /staff/tickets                  recheck queue (inspector, admin)
    GET  /staff/tickets/{id}, POST       a ticket: the finding beside the proof; pass/fail
    GET  /staff/photos/{id}              a finding or proof photo the person may see
    GET  /staff/visits                   the expert's visits by day
    GET  /staff/findings                 the tickets the expert found, not yet verified
    GET  /staff/orders/{id}/visit, POST  record a visit: clause picker, findings, photos

Every POST carries the session's CSRF token (403 page without it); every action runs
with the person bound as the caller, so the audit trail names them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.domain.staff import (
    ADDRESS_THROTTLE,
    CSRF_LENGTH,
    LOCKOUT,
    MAX_PASSWORD,
    ROLE_LABELS,
    Role,
    StaffAccount,
)
from services.booking.entrypoints.web.errors import error_page
from services.booking.entrypoints.web.middleware import form_part_limit
from services.booking.entrypoints.web.staff_auth import (
    COOKIE,
    LOGIN,
    Handler,
    clear_session,
    csrf_refused,
    is_tls,
    set_session,
    to_login,
)
from services.booking.service_layer import staff_sessions
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.staff_sessions import Outcome, Visitor, principal_of
from services.booking.service_layer.views import Guidance
from services.common.context import Principal, bind, call_scope
from services.common.values import trim, without_controls

T = TypeVar("T")
_log = structlog.get_logger("staff")
Render = Callable[..., HTMLResponse]
PersonPage = Callable[[Any, Request, Visitor, StaffAccount], Awaitable[Response]]
START_PAGES = {
    Role.INSPECTOR.value: "/staff/tickets",
    Role.ADMIN.value: "/staff/tickets",
    Role.EXPERT.value: "/staff/visits",
    Role.SUPERVISOR.value: "/dashboard",
}
# where a person's tickets are listed, and so where a ticket's page leads back and a
# recheck lands: an inspector's (an admin's) recheck queue, an expert's own findings
# (an expert may recheck what they found but has no queue of a region: review 59 F1)
TICKET_LISTS = {
    Role.INSPECTOR.value: ("/staff/tickets", messages.QUEUE_LINK),
    Role.ADMIN.value: ("/staff/tickets", messages.QUEUE_LINK),
    Role.EXPERT.value: ("/staff/findings", messages.FINDINGS_LINK),
}


def ticket_list(account: StaffAccount) -> tuple[str, str]:
    """The person's list of tickets: (its URL, its name for a link back)."""
    return TICKET_LISTS.get(account.role, ("/staff", messages.STAFF_HOME_LINK))


def person_context(visitor: Visitor) -> dict[str, Any]:
    """What a staff page's layout shows of its visitor (staff/base.html, dashboard.html):
    the signed-in person (`user`, None before sign-in) with their role, and the
    session's CSRF token (the sign-out form's, the login form's)."""
    account = visitor.account
    return {
        "csrf": visitor.csrf,
        "user": account,
        "role_label": ROLE_LABELS.get(Role(account.role), "") if account else "",
    }


@dataclass(eq=False)
class StaffBase:
    """What every staff page needs: the session, the CSRF check, acting as the person."""

    ctx: BookingContext
    engine: Engine
    render: Render
    on_outbox: Callable[[], None]
    guidance: Guidance

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    def secure(self, request: Request) -> bool:
        return is_tls(request, self.ctx.public_url)

    async def visitor(self, request: Request) -> Visitor | None:
        secret = request.cookies.get(COOKIE, "")
        if not secret:
            return None
        return await run_in_threadpool(staff_sessions.visitor, self.uow(), secret)

    async def person(self, request: Request) -> tuple[Visitor, StaffAccount] | Response:
        """The signed-in person, or the redirect to the login page."""
        found = await self.visitor(request)
        if found is None or found.account is None:
            return to_login(self.secure(request), clear=COOKIE in request.cookies)
        return found, found.account

    async def form_sender(self, request: Request) -> tuple[Visitor, StaffAccount] | Response:
        """Before a form is read: its signed-in sender, or (the session has ended: idle,
        signed out, disabled) the login page saying so, not the CSRF page."""
        found = await self.visitor(request)
        if found is None or found.account is None:
            response = RedirectResponse(f"{LOGIN}?ended=1", status_code=303)
            clear_session(response, self.secure(request))
            return response
        return found, found.account

    async def as_person(self, account: StaffAccount, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread with the person bound as the caller (the audit
        trail and the logs name them)."""
        principal = principal_of(account)

        def run() -> T:
            with call_scope():
                bind(principal)
                return fn(*args)

        return await run_in_threadpool(run)

    def signed_in(
        self, request: Request, visitor: Visitor | None
    ) -> tuple[Visitor, StaffAccount] | Response:
        """After a form's CSRF check: its sender, or the redirect to the login page."""
        if visitor is None or visitor.account is None:
            return to_login(self.secure(request), clear=COOKIE in request.cookies)
        return visitor, visitor.account

    @staticmethod
    def principal(account: StaffAccount) -> Principal:
        return principal_of(account)

    def page(self, name: str, visitor: Visitor, status: int = 200, **context: Any) -> HTMLResponse:
        return self.render(name, status, **person_context(visitor), **context)

    async def error_page(self, request: Request, status: int, text: tuple[str, str]) -> Response:
        """The staff error page, with the bar of the person who asked when signed in."""
        found = await self.visitor(request)
        person = person_context(found) if found is not None and found.account else None
        return error_page(self.render, status, text, staff=True, person=person)

    @staticmethod
    def csrf_ok(visitor: Visitor | None, form: FormData) -> bool:
        sent = form.get("csrf")
        return visitor is not None and isinstance(sent, str) and visitor.csrf_ok(sent)

    def wake(self) -> None:
        with contextlib.suppress(Exception):  # harmless: the outbox worker also polls
            self.on_outbox()


Lookup = Callable[[Any, Request], Awaitable[tuple[Visitor, StaffAccount] | Response]]


def _for_person(lookup: Lookup, page: PersonPage) -> Handler:
    """`page` called with the person `lookup` finds, or `lookup`'s own answer."""

    @functools.wraps(page)
    async def run(self: StaffBase, request: Request) -> Response:
        found = await lookup(self, request)
        if isinstance(found, Response):
            return found
        return await page(self, request, *found)

    return run


def signed_in(page: PersonPage) -> Handler:
    """A staff page for the signed-in person, called with who they are (the session and
    the account); anyone else gets the redirect to the login page (`person`)."""
    return _for_person(StaffBase.person, page)


def form_signed_in(page: PersonPage) -> Handler:
    """A staff form's handler, called with its signed-in sender before the form is read;
    a session that has ended gets the login page saying so (`form_sender`)."""
    return _for_person(StaffBase.form_sender, page)


class SignInPages(StaffBase):
    @signed_in
    async def home(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        return RedirectResponse(START_PAGES.get(account.role, "/staff/login"), status_code=303)

    async def login_form(self, request: Request) -> Response:
        found = await self.visitor(request)
        if found is not None and found.account is not None:
            return RedirectResponse("/staff", status_code=303)
        fresh = found is None
        if fresh:
            found = await run_in_threadpool(staff_sessions.start_anonymous, self.uow())
        assert found is not None
        notices = {"out": messages.STAFF_SIGNED_OUT, "ended": messages.STAFF_SESSION_ENDED}
        notice = next((text for key, text in notices.items() if request.query_params.get(key)), "")
        response = self.page("staff/login.html", found, username="", error="", notice=notice)
        if fresh:
            set_session(response, found.secret, self.secure(request))
        return response

    async def login_submit(self, request: Request) -> Response:
        found = await self.visitor(request)
        async with request.form(
            max_files=0, max_fields=10, max_part_size=form_part_limit(MAX_PASSWORD)
        ) as form:
            if not self.csrf_ok(found, form):
                return csrf_refused(self.render)
            username = trim(str(form.get("username") or ""))
            password = str(form.get("password") or "")
        assert found is not None
        address = request.client.host if request.client else ""
        result = await run_in_threadpool(
            lambda: staff_sessions.sign_in(
                self.uow(), username, password, found.secret, address=address
            )
        )
        # what was typed as the name is logged only once it names the person (people
        # type passwords into the name box)
        signed = result.outcome == Outcome.SIGNED_IN
        _log.info(
            "staff sign-in", outcome=result.outcome.value, **({"user": username} if signed else {})
        )
        if signed:
            response = RedirectResponse("/staff", status_code=303)
            set_session(response, result.secret, self.secure(request))
            return response
        error = messages.STAFF_SIGN_IN_REFUSED.format(
            n=LOCKOUT.max_failures, minutes=_minutes(LOCKOUT.lock_for)
        )
        status = 401
        if result.outcome == Outcome.THROTTLED:
            error = messages.STAFF_THROTTLED.format(minutes=_minutes(ADDRESS_THROTTLE.window))
            status = 429
        shown = without_controls(username)[:40]  # a NUL in the value attribute shows as �
        return self.page("staff/login.html", found, status, username=shown, error=error, notice="")

    async def logout(self, request: Request) -> Response:
        found = await self.visitor(request)
        if found is None or found.account is None:  # ended already: nothing to sign out of
            response = RedirectResponse(f"{LOGIN}?out=1", status_code=303)
            clear_session(response, self.secure(request))
            return response
        async with request.form(
            max_files=0, max_fields=5, max_part_size=form_part_limit(CSRF_LENGTH)
        ) as form:
            if not self.csrf_ok(found, form):
                return csrf_refused(self.render)
        assert found is not None
        await run_in_threadpool(staff_sessions.sign_out, self.uow(), found.secret)
        response = RedirectResponse("/staff/login?out=1", status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=self.secure(request), httponly=True)
        return response

    async def signed_in_visitor(self, request: Request) -> Visitor | None:
        """The request's signed-in staff session, if any (the dashboard decides what it
        may see: Pages.dashboard_access)."""
        found = await self.visitor(request)
        return found if found is not None and found.account is not None else None


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
