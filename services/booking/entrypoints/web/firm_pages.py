"""The firm's own pages (docs/booking.md "The firm's own page"): sign-in by a one-time
code, sign-out, and the self-check (自查). Like pages.py: each route reads the request,
asks one use case, renders a template.

Routes:
    GET  /q/{token}/sign-in, POST       ask for a code (the same answer for any number)
    POST /q/{token}/sign-in/code        the code → the session cookie → back to `next`
                                        (one of the token's own pages) or the firm's page
    POST /q/{token}/sign-out
    GET  /q/{token}/self-check, POST    the questions; the result at once (nothing stored)
    GET  /q/{token}/orders/{id}/cancel  the confirmation step: what is cancelled, a reason
    POST /q/{token}/orders/{id}/cancel  CancelOrder's use case → the order page, cancelled

The firm's forms are guarded as the proof form is: each needs the firm's session cookie
(SameSite=Lax, so a cross-site post arrives without it and is sent to sign in), the
pages' CSP allows forms to post only to this site (form-action 'self') and no page may
be framed; a post answers with a redirect (Back and reload do not post again), and a
cancel posted again finds the order cancelled and shows it so.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import OrderStatus
from services.booking.entrypoints.web import labels
from services.booking.entrypoints.web.firm_session import (
    clear_cookie,
    credential,
    return_path,
    set_cookie,
    sign_in_redirect,
    signed_in_firm,
)
from services.booking.entrypoints.web.limits import post_limit_wait
from services.booking.entrypoints.web.middleware import form_part_limit, typed
from services.booking.entrypoints.web.pages import Pages, record_ids
from services.booking.service_layer import orders, self_check, sign_in, views
from services.common.errors import (
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    ValidationError,
)

MAX_FIELD = 4096
MAX_NEXT = 300  # a return path: /q/{token}/tickets/{id}


class FirmPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.ctx = pages.ctx

    def routes(self) -> list[Route]:
        return [
            Route("/q/{token}/sign-in", self.sign_in_form, methods=["GET"]),
            Route("/q/{token}/sign-in", self.request_code, methods=["POST"]),
            Route("/q/{token}/sign-in/code", self.enter_code, methods=["POST"]),
            Route("/q/{token}/sign-out", self.sign_out, methods=["POST"]),
            Route("/q/{token}/self-check", self.self_check_form, methods=["GET"]),
            Route("/q/{token}/self-check", self.self_check_submit, methods=["POST"]),
            Route("/q/{token}/orders/{order_id}/cancel", self.cancel_form, methods=["GET"]),
            Route("/q/{token}/orders/{order_id}/cancel", self.cancel_submit, methods=["POST"]),
        ]

    async def _form(self, request: Request) -> dict[str, str]:
        async with request.form(
            max_files=0, max_fields=200, max_part_size=form_part_limit(MAX_NEXT)
        ) as form:
            return {k: str(v)[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}

    def _sign_in_page(
        self,
        token: str,
        card: Any,
        *,
        step: str,
        phone: str = "",
        error: str = "",
        status: int = 200,
        next_path: str = "",
        notice: str = "",
    ) -> Response:
        return self.pages.render(
            "sign_in.html",
            status,
            token=token,
            firm=card,
            step=step,
            phone=phone,
            error=error,
            notice=notice,
            next=return_path(token, next_path),
        )

    async def sign_in_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self.pages._firm, token)
        next_path = request.query_params.get("next", "")[:MAX_NEXT]
        return self._sign_in_page(token, card, step="phone", next_path=next_path)

    async def request_code(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self.pages._firm, token)
        form = await self._form(request)
        phone, back = form.get("phone", "")[:20], form.get("next", "")[:MAX_NEXT]
        client = request.client.host if request.client else ""
        page = partial(self._sign_in_page, token, card, phone=phone, next_path=back)
        try:
            asked = await self.pages.use_case(sign_in.request_code, token, phone, client)
        except ValidationError as exc:
            return page(step="phone", error=exc.violations[0].description, status=400)
        except RateLimited as exc:
            return page(step="phone", error=str(exc), status=429)
        if asked.register_unavailable:  # the code step all the same: one may have gone
            return page(step="code", notice=messages.SIGN_IN_CODE_REGISTER_UNAVAILABLE)
        return page(step="code")

    async def enter_code(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self.pages._firm, token)
        form = await self._form(request)
        phone, code = form.get("phone", "")[:20], form.get("code", "")[:20]
        back = form.get("next", "")[:MAX_NEXT]
        page = partial(self._sign_in_page, token, card, phone=phone, next_path=back)
        try:
            done = await self.pages.use_case(sign_in.sign_in, token, phone, code)
        except ValidationError as exc:
            return page(step="code", error=exc.violations[0].description, status=400)
        except PermissionDenied as exc:  # a wrong code, or one whose number lost its right
            return page(step="code", error=str(exc) or messages.SIGN_IN_WRONG_CODE, status=403)
        except Unavailable as exc:  # rules cannot say whether the contact is still on record
            return page(step="code", error=str(exc), status=503)
        except RateLimited as exc:
            return page(step="phone", error=str(exc), status=429)
        response = RedirectResponse(return_path(token, back), status_code=303)
        set_cookie(response, self.ctx, done.credential)
        return response

    async def sign_out(self, request: Request) -> Response:
        token = request.path_params["token"]
        await run_in_threadpool(self.pages._firm, token)
        await self.pages.use_case(sign_in.end_session, credential(request))
        response = RedirectResponse(f"/q/{token}", status_code=303)
        clear_cookie(response, self.ctx)
        return response

    async def _signed(self, request: Request) -> tuple[str, Any, str]:
        token = request.path_params["token"]
        card = await run_in_threadpool(self.pages._firm, token)
        firm_id = await signed_in_firm(self.ctx, self.pages.engine, request)
        return token, card, firm_id if firm_id == card.enterprise_id else ""

    async def self_check_form(self, request: Request) -> Response:
        token, card, firm_id = await self._signed(request)
        if not firm_id:
            return sign_in_redirect(token, request)
        groups = await run_in_threadpool(self_check.questions, self.ctx, firm_id)
        return self.pages.render(
            "self_check.html", token=token, firm=card, groups=groups, values={}, errors={}
        )

    async def self_check_submit(self, request: Request) -> Response:
        token, card, firm_id = await self._signed(request)
        if not firm_id:
            return sign_in_redirect(token, request)
        form = await self._form(request)
        groups = await run_in_threadpool(self_check.questions, self.ctx, firm_id)
        answers, errors = self_check.parse_answers(groups, form)
        if errors:
            return self.pages.render(
                "self_check.html",
                400,
                token=token,
                firm=card,
                groups=groups,
                values=form,
                errors=errors,
            )
        result = await run_in_threadpool(self_check.evaluate, self.ctx, firm_id, token, answers)
        return self.pages.render("self_check_result.html", token=token, firm=card, **result)

    # -- cancelling an order (CancelOrder's use case, the firm's session)

    async def _cancel_page(
        self,
        token: str,
        access: FirmAccess,
        order_id: str,
        *,
        reason: str = "",
        errors: Mapping[str, list[str]] | None = None,
        status: int = 200,
    ) -> Response:
        """The order's cancel page: the form (`reason` as typed, `errors` by field), or,
        for an order that can no longer be cancelled, why not."""
        data = await self.pages.use_case(views.cancel_page, access, order_id)
        order = data["order"]
        shown = labels.ORDER_STATUS_LABELS.get(order.status, order.status)
        not_open = messages.CANCEL_NOT_OPEN.format(status=shown)
        errors = errors or {}
        general = [m for f, ms in errors.items() if f != "reason" for m in ms]
        return self.pages.render(
            "order_cancel.html",
            status,
            token=token,
            reason=reason,
            errors=errors,
            general_errors=general,
            warning=messages.CANCEL_WARNING,
            not_open=not_open,
            max_reason=orders.REASON_MAX,
            **data,
        )

    @record_ids
    async def cancel_form(self, request: Request) -> Response:
        token, _card, firm_id = await self._signed(request)
        if not firm_id:  # a passer-by, or another firm's session: sign in, then back here
            return sign_in_redirect(token, request)
        access = FirmAccess(token, firm_id)
        order_id = request.path_params["order_id"]
        return await self._cancel_page(token, access, order_id)

    @record_ids
    async def cancel_submit(self, request: Request) -> Response:
        token, _card, firm_id = await self._signed(request)
        if not firm_id:  # also a cross-site post: the Lax cookie stays behind
            return sign_in_redirect(token, request)
        access = FirmAccess(token, firm_id)
        order_id = request.path_params["order_id"]
        async with request.form(
            max_files=0, max_fields=10, max_part_size=form_part_limit(orders.REASON_MAX)
        ) as form:
            reason = typed(form.get("reason"))
        page = partial(self._cancel_page, token, access, order_id, reason=reason)
        if wait := post_limit_wait(request.scope):  # over a post limit: kept, not cancelled
            refused = {"_form": [messages.CANCEL_POSTS_TOO_FAST.format(seconds=wait)]}
            answer = await page(errors=refused, status=429)
            answer.headers["Retry-After"] = str(wait)
            return answer
        done = f"/q/{token}/orders/{order_id}?cancelled=1"
        try:
            await self.pages.use_case(
                orders.cancel_order, order_id, access, actor="firm", reason=reason
            )
        except ValidationError as exc:
            errors: dict[str, list[str]] = {}
            for v in exc.violations:
                errors.setdefault(v.field, []).append(v.description)
            return await page(errors=errors, status=400)
        except PreconditionFailed:
            again = await self.pages.use_case(views.cancel_page, access, order_id)
            if again["order"].status == OrderStatus.CANCELLED:  # posted again: it is done
                return RedirectResponse(done, status_code=303)
            return await page(status=409)  # visited or closed meanwhile: says so, no form
        return RedirectResponse(done, status_code=303)
