"""The routes of the phone page and /verify (and the dashboard's access check: the
dashboard is web/dashboard.py): each reads the request, asks one
use case or view of the service layer (with a fresh unit of work), and renders a
template; nothing here decides anything (like the gRPC servicer).

The signed QR token in the path opens the firm's public page and order confirmations;
its tickets, photos and the private parts of its pages also need the firm's session
cookie (firm_session.py): the two travel together as a `FirmAccess`. Every /q/ route
resolves the token first, before it looks anything up, so a bad token learns nothing
(not even whether an order id exists).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

import structlog
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import (
    MAX_CLAUSE_REFS,
    MAX_NOTE,
    KeyUsedForOtherOrder,
    OrderStatus,
    bookable_slots,
)
from services.booking.domain.photos import MAX_PHOTO_BYTES, ProofsFull
from services.booking.domain.records import FirmCard
from services.booking.entrypoints.web import labels
from services.booking.entrypoints.web.errors import error_page
from services.booking.entrypoints.web.firm_session import (
    firm_access,
    sign_in_redirect,
    signed_in_firm,
)
from services.booking.entrypoints.web.limits import post_limit_wait
from services.booking.entrypoints.web.middleware import (
    BodyTooLarge,
    fields_in_head,
    form_part_limit,
    staff_principal,
    typed,
)
from services.booking.entrypoints.web.staff_auth import LOGIN
from services.booking.entrypoints.web.staff_pages import person_context
from services.booking.entrypoints.web.uploads import (
    BUSY_RETRY_AFTER,
    FormRefused,
    Uploads,
    VisitForm,
    receive_visit_form,
)
from services.booking.service_layer import authz, guidance, order_entry, orders, tickets, views
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.staff_sessions import Visitor, principal_of
from services.common.auth import TokenStore
from services.common.context import Principal
from services.common.db import ping
from services.common.errors import NotFound, PreconditionFailed, RateLimited, ValidationError
from services.common.values import control_problem

_log = structlog.get_logger("web")


@dataclass(frozen=True)
class DashboardAccess:
    """Who opened the dashboard: a staff token's principal, or a staff session's
    (`session` then set: its page carries the person's bar); None for both on a server
    without authentication."""

    principal: Principal | None
    session: Visitor | None


HEALTH_TIMEOUT_S = 5.0
CANCELLED = OrderStatus.CANCELLED.value
ORDER_FIELDS = ("item_codes", "preferred_slots", "contact_name", "contact_phone", "note")
TICKET_FIELDS = ("note", "photo")
MAX_CODE = 100
P = ParamSpec("P")
T = TypeVar("T")


def record_ids(handler: Callable[[Any, Request], Awaitable[Response]]) -> Any:
    """A /q/ route whose path names a record (order, ticket, photo): an id with a control
    character names no record and must not reach the database (PostgreSQL refuses a
    NUL): the not-found page, as the staff pages (staff_auth.staff_errors)."""

    @wraps(handler)
    async def run(self: Any, request: Request) -> Response:
        ids = (str(v) for k, v in request.path_params.items() if k != "token")
        if any(control_problem(i) for i in ids):
            raise NotFound(messages.PAGE_NOT_FOUND[0])
        return await handler(self, request)

    return run


def _proof_errors(form: VisitForm) -> dict[str, list[str]]:
    """What receiving the proof form refused, by the page's fields: the photo (the spool
    full, past the visit's total: never for one photo of 5 MB), the note (too long as
    sent), anything else as the form's."""
    errors: dict[str, list[str]] = {}
    for name, message in form.errors.items():
        if name == "_form" and len(form.errors) > 1:
            continue  # the field's own message says it
        errors.setdefault(name if name in TICKET_FIELDS else "_form", []).append(message)
    return errors


def _proof_key(sent: str) -> str:
    """The proof form's idempotency key: the one it was sent with, when it comes back with
    errors (sent again, one proof is stored), else a new one (review 62: without
    JavaScript a double tap stored two proofs)."""
    return sent if 0 < len(sent) <= orders.KEY_MAX else uuid.uuid4().hex


class Pages:
    def __init__(
        self,
        ctx: BookingContext,
        engine: Engine,
        on_outbox: Callable[[], None],
        staff: TokenStore | None,
        uploads: Uploads | None = None,
    ) -> None:
        self.ctx = ctx
        # the proof photos' spool and writer slots, shared with the expert's visit form
        self.uploads = uploads or Uploads()
        self.engine = engine
        self.on_outbox = on_outbox
        self.staff = staff
        # the staff pages' citations, asked of the rules client's cache as a page is drawn
        self.env = labels.environment(lambda standard_id: ctx.rules.standard_name(standard_id))
        self.guidance = views.Guidance(ctx.rules)
        # the request's signed-in staff session (set by app.py: web/staff_pages.py)
        self.staff_session: Callable[[Request], Awaitable[Visitor | None]] | None = None

    # -- plumbing

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    async def use_case(
        self,
        case: Callable[Concatenate[SqlUnitOfWork, BookingContext, P], T],
        *args: P.args,
        **kw: P.kwargs,
    ) -> T:
        """A service-layer use case run in a worker thread, with a unit of work of its own
        and the context (each takes them first)."""
        return await run_in_threadpool(case, self.uow(), self.ctx, *args, **kw)

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("hotline", self.ctx.hotline)
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def _wake(self) -> None:
        try:
            self.on_outbox()
        except Exception:  # harmless: the outbox worker also polls
            _log.exception("on_outbox failed")

    def _firm(self, token: str) -> FirmCard:
        return views.firm(self.uow(), self.ctx, token)

    # -- landing, the order form, the confirmation

    async def landing(self, request: Request) -> Response:
        access = await firm_access(self.ctx, self.engine, request)
        data = await self.use_case(views.landing, access)
        if data["signed_in"]:  # the rules service's decision, for the firm's own eyes
            data["panel"] = await run_in_threadpool(
                guidance.firm_status, self.ctx, access.session_firm, access.token, self.uow()
            )
        return self.render("landing.html", token=access.token, **data)

    async def _order_form(
        self,
        token: str,
        card: FirmCard,
        values: Mapping[str, Any],
        key: str,
        errors: Mapping[str, list[str]],
        status: int,
        earlier: str = "",
        cancel: bool = False,
    ) -> HTMLResponse:
        """`earlier`: the order this form's key was used for, or the open order this form
        repeats (linked beside the error); `cancel`: also link its cancel page (the
        error tells the firm to cancel it first)."""
        texts = await run_in_threadpool(self.guidance.texts, values["clause_refs"])
        general = [m for f, ms in errors.items() if f not in ORDER_FIELDS for m in ms]
        slots = [
            {
                "value": str(slot),
                "label": slot.label,
                "weekday": labels.weekday(slot.day),
                "weekend": "weekend" if slot.day.weekday() >= 5 else "",
            }
            for slot in bookable_slots(self.ctx.today())
        ]
        return self.render(
            "order_form.html",
            status,
            token=token,
            firm=card,
            menu=list(self.ctx.menu.values()),
            slots=slots,
            values=values,
            clause_texts=texts,
            key=key,
            errors=errors,
            general_errors=general,
            earlier=earlier,
            see_earlier=messages.SEE_EARLIER_ORDER.format(order_id=earlier),
            cancel_earlier=messages.CANCEL_EARLIER_ORDER.format(order_id=earlier) if cancel else "",
        )

    async def order_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self._firm, token)
        chosen = [c for c in request.query_params.getlist("item") if c in self.ctx.menu]
        refs = [r[:64] for r in request.query_params.getlist("ref")[:20]]
        refs = await run_in_threadpool(self.guidance.known, refs)  # a crafted link's: none
        values = {
            "clause_refs": refs,
            "item_codes": chosen,
            "preferred_slots": [],
            "contact_name": "",
            "contact_phone": "",
            "note": "",
        }
        return await self._order_form(token, card, values, str(uuid.uuid4()), {}, 200)

    async def order_submit(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self._firm, token)  # the token first, then the form
        async with request.form(
            max_files=0, max_fields=100, max_part_size=form_part_limit(MAX_NOTE)
        ) as form:
            values: dict[str, Any] = {
                # one more than allowed, so too many is a form error, not silently cut
                "clause_refs": [
                    str(v)[:64] for v in form.getlist("clause_refs")[: MAX_CLAUSE_REFS + 1]
                ],
                "item_codes": [str(v) for v in form.getlist("item_codes")],
                "preferred_slots": [str(v) for v in form.getlist("preferred_slots")],
                "contact_name": str(form.get("contact_name") or ""),
                "contact_phone": str(form.get("contact_phone") or ""),
                "note": typed(form.get("note")),
            }
            key = str(form.get("idempotency_key") or "")
        # refs the rules catalogue does not know are not kept (review 54 D8)
        values["clause_refs"] = await run_in_threadpool(self.guidance.known, values["clause_refs"])
        if wait := post_limit_wait(request.scope):  # over a post limit: kept, not taken
            refused = {"_form": [messages.POSTS_TOO_FAST.format(seconds=wait)]}
            page = await self._order_form(token, card, values, key, refused, 429)
            page.headers["Retry-After"] = str(wait)
            return page
        # the same order again with a new key (Back, then submit): show the first one
        again = await self.use_case(order_entry.open_repeat, token, values, key)
        if again is not None and again.edited:  # the form kept: nothing dropped unsaid
            edited = {"_form": [messages.ORDER_REPEAT_EDITED.format(order_id=again.order.id)]}
            return await self._order_form(
                token, card, values, key, edited, 409, again.order.id, cancel=True
            )
        if again is not None:
            return RedirectResponse(f"/q/{token}/orders/{again.order.id}?again=1", status_code=303)
        # the firm's own session: not under the token's refused-call limit (orders.py)
        signed = await signed_in_firm(self.ctx, self.engine, request)
        try:
            order = await self.use_case(
                orders.create_order, token, values, key, session_firm=signed
            )
        except ValidationError as exc:
            violations = list(exc.violations)
            if all(v.field == "idempotency_key" for v in violations):  # refused unread
                violations += order_entry.problems(self.ctx, values)
            errors: dict[str, list[str]] = {}
            for v in violations:
                text = v.description
                if v.field == "idempotency_key":
                    key, text = "", messages.FORM_EXPIRED
                errors.setdefault(v.list_field, []).append(text)
            key = key if 0 < len(key) <= orders.KEY_MAX else str(uuid.uuid4())
            return await self._order_form(token, card, values, key, errors, 400)
        except RateLimited as exc:  # the order limit: the form kept, sent again later
            page = await self._order_form(token, card, values, key, {"_form": [exc.message]}, 429)
            page.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return page
        except KeyUsedForOtherOrder as exc:  # its key took another order: a new key
            errors = {"_form": [exc.message]}
            fresh = str(uuid.uuid4())
            return await self._order_form(token, card, values, fresh, errors, 409, exc.order_id)
        self._wake()
        return RedirectResponse(f"/q/{token}/orders/{order.id}", status_code=303)

    @record_ids
    async def order_page(self, request: Request) -> Response:
        access = await firm_access(self.ctx, self.engine, request)
        order_id = request.path_params["order_id"]
        data = await self.use_case(views.order_page, access, order_id, self.guidance)
        # a fixed code, never the query's text
        again = messages.ORDER_SUBMITTED_BEFORE if request.query_params.get("again") == "1" else ""
        cancelled = ""  # after the firm's cancel form, and only when it is so
        if request.query_params.get("cancelled") == "1" and data["order"].status == CANCELLED:
            cancelled = messages.ORDER_CANCELLED
        return self.render(
            "order.html", token=access.token, again=again, cancelled=cancelled, **data
        )

    # -- tickets and photos

    def _ticket(self, access: FirmAccess, ticket_id: str) -> dict[str, Any]:
        data = views.ticket_page(self.uow(), self.ctx, access, ticket_id, self.guidance)
        return {
            **data,
            "max_mb": MAX_PHOTO_BYTES // (1024 * 1024),
            "max_bytes": MAX_PHOTO_BYTES,
            "proof_waiting": messages.PROOF_WAITING,
            "photo_shrinking": messages.PHOTO_SHRINKING,
            "photo_shrunk": messages.PHOTO_SHRUNK,
        }

    async def _own_firm(self, request: Request) -> FirmAccess:
        """The credentials of a private route, the token checked first; without a
        `session_firm` the visitor is sent to sign in. A session of another firm than the
        token's (a phone signed in for firm A scanning firm B's poster) counts as none:
        the visitor is sent to sign in for B, not told B's valid code is invalid."""
        card = await run_in_threadpool(self._firm, request.path_params["token"])
        access = await firm_access(self.ctx, self.engine, request)
        if access.session_firm and access.session_firm != card.enterprise_id:
            return FirmAccess(access.token)
        return access

    @record_ids
    async def ticket_page(self, request: Request) -> Response:
        token, ticket_id = request.path_params["token"], request.path_params["ticket_id"]
        access = await self._own_firm(request)
        if not access.session_firm:
            return sign_in_redirect(token, request)
        data = await run_in_threadpool(self._ticket, access, ticket_id)
        return self.render(
            "ticket.html",
            token=token,
            note="",
            proof_key=_proof_key(""),
            errors={},
            general_errors=[],
            **data,
        )

    @record_ids
    async def ticket_submit(self, request: Request) -> Response:
        token, ticket_id = request.path_params["token"], request.path_params["ticket_id"]
        access = await self._own_firm(request)
        if not access.session_firm:
            return sign_in_redirect(token, request)
        note, key, errors, status = await self._proof_received(request, access, ticket_id)
        wait = post_limit_wait(request.scope)
        if not errors:
            self._wake()
            return RedirectResponse(f"/q/{token}/tickets/{ticket_id}", status_code=303)
        data = await run_in_threadpool(self._ticket, access, ticket_id)
        general = [m for f, ms in errors.items() if f not in TICKET_FIELDS for m in ms]
        page = self.render(
            "ticket.html",
            status,
            token=token,
            note=note,
            proof_key=_proof_key(key),  # sent again, the proof is stored once
            errors=errors,
            general_errors=general,
            **data,
        )
        if wait:
            page.headers["Retry-After"] = str(wait)
        elif status == 503:
            page.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
        return page

    async def _proof_received(
        self, request: Request, access: FirmAccess, ticket_id: str
    ) -> tuple[str, str, dict[str, list[str]], int]:
        """The proof form received as the expert's visit form is (web/uploads.py: the
        photo spooled to disk as it arrives, within the process's spool room) and
        submitted while its file exists, with one of the process's writer slots (as a
        visit's photos: `Uploads.writing`; none free within its wait, 503, the note
        kept; review 66). Its note, the form's idempotency key ("" when it was refused:
        the form drawn again gets a new one), and its errors by field with their status
        (none: submitted)."""
        form = VisitForm()
        try:
            async with receive_visit_form(request, self.uploads, form):
                sent = dict(form.fields)
                note, key = sent.get("note", ""), sent.get("idempotency_key", "")
                if wait := post_limit_wait(request.scope):  # over a post limit: the note kept
                    too_fast = messages.PROOF_POSTS_TOO_FAST.format(seconds=wait)
                    return note, key, {"_form": [too_fast]}, 429
                refused = _proof_errors(form)
                if refused:
                    return note, key, refused, 400
                if "photo" in form.empty:  # a file was chosen, but it is empty
                    return note, key, {"photo": [messages.PHOTO_EMPTY]}, 400
                upload = form.photos.get("photo")
                if upload is not None and upload.size > MAX_PHOTO_BYTES:
                    return note, key, {"photo": [messages.PHOTO_TOO_LARGE]}, 400
                async with self.uploads.writing() as free:
                    if not free:
                        return note, key, {"_form": [messages.PROOF_WRITERS_BUSY]}, 503
                    photo = await run_in_threadpool(upload.read) if upload is not None else b""
                    errors, status = await self._submit_proof(access, ticket_id, note, photo, key)
                    if "idempotency_key" in errors:  # refused unread: a new one
                        errors = {"_form": [messages.FORM_EXPIRED]}
                        key = ""
                    return note, key, errors, status
        except BodyTooLarge as exc:  # the note (and the key) come before the photo: kept
            typed_before = fields_in_head(
                request.headers.get("content-type", ""), exc.head, {"note", "idempotency_key"}
            )
            note, key = typed_before.get("note", ""), typed_before.get("idempotency_key", "")
            return note, key, {"photo": [messages.PHOTO_TOO_LARGE]}, 413
        except FormRefused:  # malformed multipart, too many parts
            sent = dict(form.fields)
            note, key = sent.get("note", ""), sent.get("idempotency_key", "")
            return note, key, {"photo": [messages.UPLOAD_FAILED]}, 400

    async def _submit_proof(
        self, access: FirmAccess, ticket_id: str, note: str, photo: bytes, key: str
    ) -> tuple[dict[str, list[str]], int]:
        """SubmitRectification's use case: its refusals as errors by field, with status.
        `key`: the form's idempotency key (the same form sent twice stores one proof)."""
        errors: dict[str, list[str]] = {}
        try:
            await self.use_case(
                tickets.submit_rectification,
                ticket_id,
                access,
                note=note,
                photo=photo,
                idempotency_key=key,
            )
        except ValidationError as exc:
            for v in exc.violations:
                errors.setdefault(v.field, []).append(v.description)
        except ProofsFull as exc:  # before its parent: not "already verified"
            return {"photo": [exc.message]}, 409
        except PreconditionFailed:
            return {"_form": [messages.ALREADY_VERIFIED]}, 409
        return errors, 400

    @record_ids
    async def photo(self, request: Request) -> Response:
        token, photo_id = request.path_params["token"], request.path_params["photo_id"]
        access = await self._own_firm(request)
        if not access.session_firm:  # like tickets: sign in first (the photo is not shown)
            return sign_in_redirect(token, request)
        found = await self.use_case(tickets.photo_of, photo_id, access)
        if found.content_type not in ("image/jpeg", "image/png"):  # sniffed on upload; be sure
            raise NotFound(messages.no_such("photo", photo_id))
        return Response(
            found.content, media_type=found.content_type, headers={"Content-Disposition": "inline"}
        )

    # -- inspection codes

    async def verify(self, request: Request) -> Response:
        code = request.path_params["code"]
        found = None
        if 0 < len(code) <= MAX_CODE:
            found = await run_in_threadpool(views.inspection, self.ctx, code)
        if found is None:
            return self.render("verify_invalid.html", 404)
        kind = labels.INSPECTION_KIND_LABELS.get(found.kind, found.kind)
        return self.render("verify.html", info=found, kind=kind)

    # -- supervision

    async def dashboard_access(self, request: Request) -> DashboardAccess | Response:
        """The dashboard's access check (every /dashboard route), one rule for a staff
        token (middleware.staff_principal, when the app has a token store) and a signed-in
        staff session (authz.may_open_dashboard: supervisors, inspectors, admins; review
        59 F8): a caller it refuses gets the 403 page (a session's in the staff layout,
        with the person's bar: never the browser's password box); with neither, a 401."""
        token = staff_principal(self.staff, request) if self.staff is not None else None
        if token is not None:
            if not authz.may_open_dashboard(token):
                return error_page(self.render, 403, messages.PAGE_DASHBOARD_FORBIDDEN)
            return DashboardAccess(token, None)
        session = await self.staff_session(request) if self.staff_session is not None else None
        if session is not None and session.account is not None:
            principal = principal_of(session.account)
            if not authz.may_open_dashboard(principal):
                return error_page(
                    self.render,
                    403,
                    messages.PAGE_DASHBOARD_FORBIDDEN,
                    staff=True,
                    person=person_context(session),
                )
            return DashboardAccess(principal, session)
        if self.staff is not None:
            # 401 still (scripts fetch the CSVs with a token), a page a person can follow
            title, text = messages.PAGE_DASHBOARD_SIGN_IN
            response = self.render(
                "error.html",
                401,
                title=title,
                message=text,
                link=(LOGIN, messages.DASHBOARD_SIGN_IN_LINK),
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="dashboard", charset="UTF-8"'
            return response
        return DashboardAccess(None, None)

    # -- health

    async def healthz(self, request: Request) -> Response:
        try:
            await asyncio.wait_for(run_in_threadpool(ping, self.engine), HEALTH_TIMEOUT_S)
        except Exception:
            _log.warning("health check: database unreachable")
            return PlainTextResponse("database unreachable", status_code=503)
        return PlainTextResponse("ok")
