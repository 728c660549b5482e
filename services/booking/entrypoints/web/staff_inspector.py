"""The inspector's pages: the recheck queue of their region, a ticket (the finding
beside the firm's proof), pass or fail through tickets.recheck_ticket — RecheckTicket's
handler, with the same role and region checks (service_layer/authz.py) and the same rules
for the note and the new deadline, whose refusals are shown next to their fields."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.booking.domain import messages
from services.booking.domain.findings import MAX_TEXT
from services.booking.domain.staff import StaffAccount
from services.booking.domain.tickets import TicketStatus
from services.booking.entrypoints.web.middleware import form_part_limit, typed
from services.booking.entrypoints.web.staff_auth import csrf_refused, staff_errors
from services.booking.entrypoints.web.staff_pages import StaffBase, form_signed_in, signed_in
from services.booking.service_layer import authz, staff_views, tickets
from services.booking.service_layer.staff_sessions import Visitor
from services.booking.service_layer.staff_views import QueueFilter
from services.common.errors import NotFound, PreconditionFailed, ValidationError
from services.common.values import trim

MAX_QUERY = 100
DONE_BANNERS = {"pass": messages.RECHECK_DONE_PASS, "fail": messages.RECHECK_DONE_FAIL}


class InspectorPages(StaffBase):
    @staff_errors
    @signed_in
    async def queue(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        q = request.query_params
        wanted = QueueFilter(
            region=q.get("region", "")[:MAX_QUERY],
            due_soon=q.get("due") == "1",
            overdue=q.get("overdue") == "1",
        )
        data, error = await self._queue(account, wanted)
        # a fixed code, never the query's text (a link must not put words on this page)
        said = DONE_BANNERS.get(q.get("done", ""), "")
        return self.page(
            "staff/queue.html",
            visitor,
            400 if error else 200,
            filter=wanted,
            regions=self._choices(account.region),
            done=said,
            region_error=error,
            **data,
        )

    async def _queue(self, account: StaffAccount, wanted: QueueFilter) -> tuple[Any, str]:
        """The queue asked for, and no error; or, when the region filter names no region,
        the queue of the person's whole area and the error for the region field (the other
        filters kept, the choices still their own area's: review 59 F11)."""
        principal = self.principal(account)

        def read(f: QueueFilter) -> dict[str, Any]:
            return staff_views.recheck_queue(self.uow(), self.ctx, principal, f, self.guidance)

        try:
            return await run_in_threadpool(read, wanted), ""
        except ValidationError:  # the region (the only filter checked)
            return await run_in_threadpool(read, replace(wanted, region="")), messages.BAD_REGION

    def _choices(self, own: str) -> list[str]:
        """The 镇街 the region filter offers: the inspector's own area, or all."""
        if self.ctx.regions is None:
            return [own] if own else []
        if own:
            return list(self.ctx.regions.area(own) or ())
        return [t.name for t in self.ctx.regions.townships]

    async def _ticket_page(
        self, request: Request, visitor: Any, account: Any, status: int = 200, **form: Any
    ) -> Response:
        ticket_id = request.path_params["ticket_id"]
        shown = await run_in_threadpool(
            staff_views.staff_ticket,
            self.uow(),
            self.ctx,
            self.principal(account),
            ticket_id,
            self.guidance,
        )
        values = {"result": "", "note": "", "new_due_on": "", "errors": {}, "general": ""}
        return self.page(
            "staff/ticket.html",
            visitor,
            status,
            item=shown,
            today=self.ctx.today(),
            waiting=shown.ticket.status == TicketStatus.SUBMITTED.value,
            **{**values, **form},
        )

    @staff_errors
    @signed_in
    async def ticket(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        return await self._ticket_page(request, visitor, account)

    @staff_errors
    @form_signed_in
    async def recheck(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        async with request.form(
            max_files=0, max_fields=10, max_part_size=form_part_limit(MAX_TEXT)
        ) as form:
            if not self.csrf_ok(visitor, form):
                return csrf_refused(self.render)
            result = str(form.get("result") or "")
            note = trim(typed(form.get("note")), multiline=True)
            new_due = trim(str(form.get("new_due_on") or ""))
        found = self.signed_in(request, visitor)
        if isinstance(found, Response):
            return found
        visitor, account = found
        ticket_id = request.path_params["ticket_id"]
        errors = {} if result in ("pass", "fail") else {"result": messages.RECHECK_BAD_CHOICE}
        if not errors:
            try:
                await self._recheck(account, ticket_id, result == "pass", note, new_due)
            except ValidationError as exc:
                errors = {v.field: _chinese(v.field, v.description) for v in exc.violations}
            except PreconditionFailed:
                errors = {"_form": messages.RECHECK_NOT_WAITING}
        if errors:
            return await self._ticket_page(
                request,
                visitor,
                account,
                409 if "_form" in errors else 400,
                result=result,
                note=note,
                new_due_on=new_due,
                errors={field: [text] for field, text in errors.items()},  # _forms.html
                general=errors.get("_form", ""),
            )
        self.wake()
        return RedirectResponse(
            f"/staff/tickets?done={'pass' if result == 'pass' else 'fail'}",
            status_code=303,
        )

    async def _recheck(
        self, account: Any, ticket_id: str, passed: bool, note: str, new_due: str
    ) -> None:
        """RecheckTicket's handler, with RecheckTicket's role and region checks."""
        principal = self.principal(account)
        await self.as_person(
            account,
            lambda: tickets.recheck_ticket(
                self.uow(),
                self.ctx,
                ticket_id,
                passed=passed,
                note=note,
                new_due_on=new_due,
                actor=principal.caller,
                allowed=lambda t: authz.may_recheck(principal, t),
                regions=authz.inspector_regions(principal, self.ctx.regions),
            ),
        )

    @staff_errors
    @signed_in
    async def photo(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        shown = await run_in_threadpool(
            staff_views.staff_photo,
            self.uow(),
            self.ctx,
            self.principal(account),
            request.path_params["photo_id"],
        )
        if shown.content_type not in ("image/jpeg", "image/png"):
            raise NotFound(messages.no_such("photo", request.path_params["photo_id"]))
        return Response(
            shown.content, media_type=shown.content_type, headers={"Content-Disposition": "inline"}
        )


FIELD_MESSAGES = {
    "new_due_on": messages.RECHECK_NEEDS_DEADLINE,
    "severity": messages.VISIT_BAD_SEVERITY,
    "description": messages.VISIT_NEEDS_DESCRIPTION,
    "clause_ref": messages.VISIT_UNKNOWN_CLAUSE,
    "due_on": messages.VISIT_BAD_DUE,
    "minutes_on_site": messages.VISIT_BAD_MINUTES,
    "findings": messages.VISIT_TOO_MANY,
    "visited_on": messages.BAD_DATE,
}


def _chinese(field: str, description: str) -> str:
    """A field violation as the page shows it: the handlers' English reasons (written
    for gRPC callers) become the Chinese sentence for that field; Chinese ones stay."""
    if not description.isascii():
        return description
    last = field.rsplit(".", 1)[-1]
    return FIELD_MESSAGES.get(last, messages.STAFF_BAD_INPUT)


chinese = _chinese
