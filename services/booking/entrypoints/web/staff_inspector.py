"""The inspector's pages: the recheck queue of their region, a ticket (the finding
beside the firm's proof), pass or fail through tickets.recheck_ticket — RecheckTicket's
handler, with the same role and region checks (service_layer/authz.py) and the same rules
for the note and the new deadline, whose refusals are shown next to their fields."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.booking.domain import messages
from services.booking.domain.findings import MAX_TEXT
from services.booking.domain.staff import StaffAccount
from services.booking.domain.tickets import (
    NOT_WAITING,
    PROOF_CHANGED,
    RecheckRefused,
    Ticket,
    TicketStatus,
)
from services.booking.entrypoints.web import labels
from services.booking.entrypoints.web.middleware import form_part_limit, typed
from services.booking.entrypoints.web.staff_auth import csrf_refused, staff_errors
from services.booking.entrypoints.web.staff_pages import (
    StaffBase,
    form_signed_in,
    signed_in,
    ticket_list,
)
from services.booking.service_layer import authz, staff_views, tickets
from services.booking.service_layer.staff_sessions import Visitor
from services.booking.service_layer.staff_views import QueueFilter
from services.common.errors import NotFound, PreconditionFailed, ValidationError
from services.common.values import trim
from services.common.vocabulary import record_id_problem

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
        return self.page(
            "staff/queue.html",
            visitor,
            400 if error else 200,
            filter=wanted,
            regions=self._choices(account.region),
            region_error=error,
            **await done_banner(self, request, account),
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
        self,
        request: Request,
        visitor: Any,
        account: Any,
        status: int = 200,
        seen: int | None = None,
        **form: Any,
    ) -> Response:
        """The ticket beside the firm's proof, with the recheck form while it waits;
        `form`: what a refused recheck typed, and why it was refused; `seen`: the proof
        that form was opened on."""
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
        values |= form
        waiting = shown.ticket.status == TicketStatus.SUBMITTED.value
        proof = shown.ticket.proof_number()
        me = self.principal(account).caller
        taken = changed = ""
        if values["errors"] and not waiting:
            # the ticket was rechecked meanwhile (another tab, another person): whatever
            # this form said, it cannot be saved; say what happened, show what was typed
            # (the form is gone: there is nothing to recheck) (review 59 F2)
            status = 409
            values["errors"] = {}
            values["general"] = messages.RECHECK_NOT_WAITING
            taken = recheck_taken(shown.ticket, me)
        elif values["errors"] and seen is not None and 0 < seen != proof:
            # the firm sent another proof since the form was opened (after a failed
            # recheck in another tab, or a better photo): the conclusion was about a proof
            # the ticket no longer holds; say so, show what was typed, and offer a fresh
            # form for the proof now shown (a form with a mistake of its own too)
            status = 409
            values["errors"] = {}
            values["general"] = messages.RECHECK_PROOF_CHANGED
            changed = proof_changed(shown.ticket, seen, me)
        crumb, crumb_label = ticket_list(account)
        return self.page(
            "staff/ticket.html",
            visitor,
            status,
            item=shown,
            today=self.ctx.today(),
            waiting=waiting,
            proof=proof,
            taken=taken,
            changed=changed,
            see_proof=messages.RECHECK_SEE_NEW_PROOF,
            typed_heading=messages.RECHECK_TYPED,
            crumb=crumb,
            crumb_label=crumb_label,
            **values,
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
            seen = _proof_seen(str(form.get("proof") or ""))
        found = self.signed_in(request, visitor)
        if isinstance(found, Response):
            return found
        visitor, account = found
        ticket_id = request.path_params["ticket_id"]
        errors = {} if result in ("pass", "fail") else {"result": messages.RECHECK_BAD_CHOICE}
        if not errors:
            try:
                await self._recheck(account, ticket_id, result == "pass", note, new_due, seen)
            except ValidationError as exc:
                errors = {v.field: _chinese(v.field, v.description) for v in exc.violations}
            except RecheckRefused as exc:
                errors = {"_form": REFUSALS.get(exc.reason, messages.RECHECK_NOT_WAITING)}
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
                seen=seen,
                errors={field: [text] for field, text in errors.items()},  # _forms.html
                # a broken proof field is no field of the form: said above it
                general=errors.get("_form", "")
                or (messages.RECHECK_PAGE_BROKEN if "proof_number" in errors else ""),
            )
        self.wake()
        # back to the list the person came from and may open (an expert has no queue:
        # review 59 F1), saying what was saved
        done = urlencode({"done": result, "ticket": ticket_id})
        return RedirectResponse(f"{ticket_list(account)[0]}?{done}", status_code=303)

    async def _recheck(
        self,
        account: Any,
        ticket_id: str,
        passed: bool,
        note: str,
        new_due: str,
        seen: int | None,
    ) -> None:
        """RecheckTicket's handler, with RecheckTicket's role and region checks and the
        proof the form was opened on (`seen`)."""
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
                reach=authz.reach(principal, self.ctx.regions),
                proof_seen=seen,
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


async def done_banner(base: StaffBase, request: Request, account: StaffAccount) -> dict[str, Any]:
    """The confirmation after a recheck (the redirect's `done` and `ticket`): a fixed
    sentence by its code, never the query's text (a link must not put words on a
    page), and the ticket it saved, named by its firm and what was found, when the
    person may see it (`saved`: its id and name; None otherwise)."""
    q = request.query_params
    said = DONE_BANNERS.get(q.get("done", ""), "")
    wanted = q.get("ticket", "")
    if not said or record_id_problem(wanted) is not None:  # nothing else reaches the database
        return {"done": said, "saved": None}
    found = await run_in_threadpool(
        staff_views.named_ticket, base.uow(), base.ctx, base.principal(account), wanted
    )
    if found is None:
        return {"done": said, "saved": None}
    ticket, firm = found
    name = messages.RECHECK_SAVED_TICKET.format(firm=firm, what=labels.excerpt(ticket.description))
    return {"done": said, "saved": (ticket.id, name)}


def recheck_taken(ticket: Ticket, me: str) -> str:
    """What became of a ticket no longer waiting for a recheck, for the person whose
    recheck came too late (`me`: their caller): who rechecked it when, and how; or that
    the firm owes its proof."""
    last = ticket.history[-1] if ticket.history else None
    if last is None:
        return ""
    who, when = labels.staff_name(last.actor, me), labels.time(last.at)
    if ticket.status == TicketStatus.VERIFIED.value:
        return messages.RECHECK_TAKEN_PASSED.format(who=who, when=when)
    if last.from_status == TicketStatus.SUBMITTED.value:  # OPEN again: a failed recheck
        return messages.RECHECK_TAKEN_FAILED.format(
            who=who, when=when, due=labels.day(ticket.due_on)
        )
    return messages.RECHECK_NO_PROOF


def _proof_seen(text: str) -> int | None:
    """The form's `proof` (the proof number the page showed): None when absent (a page
    served before the form carried it: not checked, as then); anything but a number
    is -1, refused by the use case naming `proof_number`."""
    if not text:
        return None
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return -1


def proof_changed(ticket: Ticket, seen: int, me: str) -> str:
    """What happened since the page showed proof number `seen`, for the person whose
    recheck was about it (`me`: their caller): a failed recheck since (who, when: often
    their own other tab), and when the firm sent the proof the ticket holds now."""
    sent, failed, latest = 0, None, None
    for move in ticket.history:
        if move.to_status == TicketStatus.SUBMITTED.value:
            sent, latest = sent + 1, move
        elif sent >= seen and move.from_status == TicketStatus.SUBMITTED.value:
            failed = move  # SUBMITTED → OPEN after the proof seen: a failed recheck
    said = []
    if failed is not None:
        who = labels.staff_name(failed.actor, me)
        said.append(messages.RECHECK_FAILED_SINCE.format(who=who, when=labels.time(failed.at)))
    if latest is not None:
        said.append(messages.RECHECK_NEW_PROOF.format(when=labels.time(latest.at), n=sent))
    return "".join(said)


# what the page says of a recheck refused by the use case, by its reason
REFUSALS = {
    NOT_WAITING: messages.RECHECK_NOT_WAITING,
    PROOF_CHANGED: messages.RECHECK_PROOF_CHANGED,
}

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
