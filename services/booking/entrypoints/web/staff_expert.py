"""The expert's pages: their visits by day, and recording a visit through
visits.record_visit — RecordVisit's handler, with the same check that only the
dispatched expert records it (service_layer/authz.py `expert_filter`).

The clause picker needs no JavaScript: a GET search box (`q`) filters the clauses that
apply to the firm, ticked clauses are carried as `pick` parameters, and each picked
clause becomes a finding block with its severity and deadline preset.

The visit form carries a key made when it is drawn (`idempotency_key`, kept when it comes
back with errors): sent twice (a double submit, a resubmit after a lost answer), it lands
on the visits page as the first did, the visit and its photos stored once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.booking.domain import messages
from services.booking.domain.findings import MAX_FINDINGS, MAX_VISIT_PHOTO_BYTES, FindingInput
from services.booking.domain.photos import MAX_PHOTO_BYTES, Upload
from services.booking.domain.staff import StaffAccount
from services.booking.entrypoints.web.errors import body_cut
from services.booking.entrypoints.web.middleware import (
    VISIT_BODY_LIMIT,
    BodyStalled,
    BodyTooLarge,
)
from services.booking.entrypoints.web.staff_auth import csrf_refused, staff_errors
from services.booking.entrypoints.web.staff_inspector import chinese, done_banner
from services.booking.entrypoints.web.staff_pages import StaffBase, form_signed_in, signed_in
from services.booking.entrypoints.web.uploads import (
    BUSY_RETRY_AFTER,
    FormRefused,
    Uploads,
    VisitForm,
    receive_visit_form,
)
from services.booking.service_layer import authz, orders, staff_views, visits
from services.booking.service_layer.staff_sessions import Visitor
from services.common.errors import FieldViolation, PreconditionFailed, ValidationError
from services.common.values import trim

MAX_QUERY = 100
_MB = 1024 * 1024
_EACH_MB = MAX_PHOTO_BYTES // _MB
_TOTAL_MB = MAX_VISIT_PHOTO_BYTES // _MB
_RESELECT = messages.VISIT_PHOTOS_RESELECT.format(total=_TOTAL_MB, each=_EACH_MB)
_OVER_TOTAL = messages.VISIT_PHOTO_OVER_TOTAL.format(total=_TOTAL_MB)
T = TypeVar("T")


@dataclass(eq=False)
class ExpertPages(StaffBase):
    # the visit photos the web process spools and writes at once (web/uploads.py)
    uploads: Uploads = field(default_factory=Uploads)

    @staff_errors
    @signed_in
    async def visits(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        mine = await run_in_threadpool(
            staff_views.my_visits, self.uow(), self.ctx, self.principal(account), self.guidance
        )
        # a fixed code, never the query's text
        said = messages.VISIT_RECORDED if request.query_params.get("recorded") == "1" else ""
        link = messages.FINDINGS_LINK
        if mine.waiting:
            link = messages.FINDINGS_LINK_WAITING.format(
                n=f"{mine.waiting}+" if mine.more_waiting else mine.waiting
            )
        return self.page(
            "staff/visits.html",
            visitor,
            days=mine.days,
            today=self.ctx.today(),
            recorded=said,
            findings_link=link,
        )

    @staff_errors
    @signed_in
    async def findings(self, request: Request, visitor: Visitor, account: StaffAccount) -> Response:
        """The tickets the expert found that are not verified yet (review 59 F1): those
        waiting for a recheck, which the expert may make, then those the firm owes; after
        a recheck, its confirmation."""
        mine = await run_in_threadpool(
            staff_views.my_findings, self.uow(), self.ctx, self.principal(account)
        )
        return self.page(
            "staff/findings.html",
            visitor,
            found=mine,
            parts=[
                ("waiting", messages.FINDINGS_WAITING_HEADING, mine.waiting),
                ("open", messages.FINDINGS_OPEN_HEADING, mine.still_open),
            ],
            empty=messages.FINDINGS_NONE,
            more=messages.FINDINGS_MORE.format(n=staff_views.FINDINGS_LIMIT),
            **await done_banner(self, request, account),
        )

    async def _form_page(
        self,
        request: Request,
        visitor: Any,
        account: Any,
        picks: list[str],
        status: int = 200,
        **extra: Any,
    ) -> Response:
        query = request.query_params.get("q", "")[:MAX_QUERY]
        form = await run_in_threadpool(
            staff_views.visit_form,
            self.uow(),
            self.ctx,
            self.principal(account),
            request.path_params["order_id"],
            query,
            picks,
        )
        values: dict[str, Any] = {"errors": {}, "general": "", "entered": {}, "minutes": "60"}
        values["visit_key"] = _form_key(extra.get("entered", {}))
        hint = messages.VISIT_MOBILE_FROM_ORDER
        if form.on_record:
            hint = messages.VISIT_MOBILE_ON_RECORD
        return self.page(
            "staff/visit_form.html",
            visitor,
            status,
            form=form,
            mobile_hint=hint.format(mobile=form.default_mobile),
            confirm_label=messages.VISIT_CONTACT_CONFIRM.format(mobile=form.default_mobile),
            query=query,
            clause_count=(
                messages.CLAUSES_FOUND if trim(query) else messages.CLAUSES_FOR_FIRM
            ).format(n=len(form.clauses)),
            picks=[c.clause_ref for c, _ in form.picked],
            open=staff_views.is_open_for_visit(form.order),
            max_mb=_EACH_MB,
            total_mb=_TOTAL_MB,
            **{**values, **extra},
        )

    @staff_errors
    @signed_in
    async def visit_form(
        self, request: Request, visitor: Visitor, account: StaffAccount
    ) -> Response:
        picked = dict.fromkeys(p[:60] for p in request.query_params.getlist("pick"))
        return await self._form_page(request, visitor, account, list(picked)[:MAX_FINDINGS])

    @staff_errors
    @form_signed_in
    async def visit_submit(
        self, request: Request, visitor: Visitor, account: StaffAccount
    ) -> Response:
        """The visit form, received as it arrives (web/uploads.py: its photos on disk,
        none of it held whole), then recorded while its photos' files exist."""
        form = VisitForm()
        try:
            async with receive_visit_form(request, self.uploads, form):
                if not visitor.csrf_ok(form.csrf):
                    return csrf_refused(self.render)
                return await self._submitted(request, visitor, form, 400)
        except BodyTooLarge:  # what came before the limit is shown again, not the photos
            form.errors = {
                "_form": messages.VISIT_TOO_LARGE.format(
                    limit=VISIT_BODY_LIMIT // _MB, each=_EACH_MB, total=_TOTAL_MB
                )
            }
            form.photos = {}
            return await self._submitted(request, visitor, form, 413)
        except FormRefused:
            form.errors = {"_form": messages.UPLOAD_FAILED}
            form.photos = {}
            return await self._submitted(request, visitor, form, 400)
        except BodyStalled as exc:  # its spool room is given back; what came is shown
            body_cut(request, exc)
            form.errors = {"_form": messages.VISIT_UPLOAD_STALLED}
            form.photos = {}
            return await self._submitted(request, visitor, form, 408)

    async def _submitted(
        self, request: Request, visitor: Visitor, form: VisitForm, status: int
    ) -> Response:
        """The visit recorded (the redirect to the expert's visits), or the form again
        with everything typed and the errors beside their fields, answered `status`
        (another when recording refuses it)."""
        found = self.signed_in(request, visitor)
        if isinstance(found, Response):
            return found
        _, account = found
        errors = dict(form.errors)
        if "_form" not in errors and any(_block_of(key) is not None for key in errors):
            spooled = messages.VISIT_SPOOL_FULL in errors.values()
            reselect = messages.VISIT_PHOTOS_NOT_RECEIVED if spooled else _RESELECT
            errors["_form"] = reselect
        entered, photos, errors = _in_order(dict(form.fields), form.photos, errors)
        picks = [entered[f"ref_{i}"] for i in _finding_numbers(entered)]
        if not errors:
            errors, status = await self._record(request, account, entered, photos)
        if errors:
            page = await self._form_page(
                request,
                *found,
                picks,
                status,
                errors=errors,
                general=errors.get("_form", ""),
                entered=entered,
                minutes=entered.get("minutes_on_site", "60"),
            )
            if status == 503:
                page.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
            return page
        self.wake()
        return RedirectResponse("/staff/visits?recorded=1", status_code=303)

    async def _record(
        self,
        request: Request,
        account: Any,
        entered: dict[str, str],
        photos: dict[str, Upload],
    ) -> tuple[dict[str, str], int]:
        """RecordVisit's handler; its field violations as Chinese messages by field, and
        the status to answer them with. A visit with photos writes them only with one of
        the web process's writer slots (web/uploads.py `Uploads.writing`): none free
        within its wait, 503 and the form kept."""
        if not photos:
            return await self._record_now(request, account, entered, photos), 400
        async with self.uploads.writing() as free:
            if not free:
                return {"_form": messages.VISIT_WRITERS_BUSY}, 503
            return await self._record_now(request, account, entered, photos), 400

    async def _record_now(
        self,
        request: Request,
        account: Any,
        entered: dict[str, str],
        photos: dict[str, Upload],
    ) -> dict[str, str]:
        findings = [
            FindingInput(
                ref,
                entered.get(f"severity_{i}", ""),
                entered.get(f"desc_{i}", ""),
                entered.get(f"due_{i}", ""),
                (photos[f"photo_{i}"],) if f"photo_{i}" in photos else (),
            )
            for i in _finding_numbers(entered)
            if (ref := entered.get(f"ref_{i}", ""))
        ]  # blocks numbered 0, 1, 2 … (_in_order); every one sent is counted (more than
        # MAX_FINDINGS: the use case refuses them all, none is dropped)
        # minutes that are no number are refused with everything else (review 59 F5)
        refused: list[FieldViolation] = []
        try:
            minutes = int(entered.get("minutes_on_site", "0") or 0)
        except ValueError:
            minutes = 0
            refused.append(FieldViolation("minutes_on_site", messages.VISIT_BAD_MINUTES))
        principal = self.principal(account)
        try:
            await self.as_person(
                account,
                lambda: visits.record_visit(
                    self.uow(),
                    self.ctx,
                    request.path_params["order_id"],
                    findings,
                    visited_on="",
                    minutes=minutes,
                    actor=principal.caller,
                    expert_id=authz.expert_filter(principal),
                    on_site_mobile=entered.get("on_site_mobile", ""),
                    contact_confirmed=entered.get("contact_confirmed") == "1",
                    mobile_required=True,
                    firm_clauses_only=True,
                    refused=refused,
                    idempotency_key=entered.get("idempotency_key", ""),
                ),
            )
        except ValidationError as exc:
            if [v.field for v in exc.violations] == ["idempotency_key"]:  # refused unread
                entered.pop("idempotency_key", None)  # the form drawn again gets a new one
                return {"_form": messages.FORM_EXPIRED}
            found: dict[str, str] = {}
            for v in exc.violations:  # the first reason a field has is shown
                found.setdefault(_form_field(v.field), chinese(v.field, v.description))
            if _OVER_TOTAL in found.values():
                found.setdefault("_form", _RESELECT)
            return found
        except PreconditionFailed:
            return {"_form": messages.VISIT_NOT_OPEN}
        return {}


def _form_key(entered: dict[str, str]) -> str:
    """The visit form's idempotency key: the one it was sent with, when it comes back
    with errors (sent again, it records the visit once), else a new one."""
    key = entered.get("idempotency_key", "")
    return key if 0 < len(key) <= orders.KEY_MAX else uuid.uuid4().hex


FINDING_FIELDS = frozenset({"ref", "severity", "desc", "due", "photo"})  # a block's: desc_3
REF = frozenset({"ref"})


def _finding_numbers(entered: dict[str, str]) -> list[int]:
    """The numbers of the finding blocks a form sent (ref_0, ref_7, ref_51 …), in order."""
    return sorted({n for key in entered if (n := _block_of(key, REF)) is not None})


def _block_of(key: str, names: frozenset[str] = FINDING_FIELDS) -> int | None:
    """The finding block a field of the form belongs to (desc_3 → 3), else None."""
    name, _, digits = key.rpartition("_")
    return int(digits) if name in names and digits.isascii() and digits.isdigit() else None


def _in_order(
    entered: dict[str, str], photos: dict[str, Upload], errors: dict[str, str]
) -> tuple[dict[str, str], dict[str, Upload], dict[str, str]]:
    """The form's finding blocks with a clause numbered 0, 1, 2 … in the order sent
    (ref_0, ref_7 → 0, 1), their fields, photos and errors with them, as the findings
    are counted (`_record`: the use case's findings[i]) and the page shows them again:
    each finding as typed, in its place, the same clause twice included. The fields of
    a block without a clause, which is no finding, are dropped."""
    refs = {n: ref for key, ref in entered.items() if (n := _block_of(key, REF)) is not None}
    place = {n: i for i, n in enumerate(sorted(n for n, ref in refs.items() if ref))}

    def moved(fields: dict[str, T]) -> dict[str, T]:
        out: dict[str, T] = {}
        for key, value in fields.items():
            n = _block_of(key)
            if n is None:
                out[key] = value
            elif n in place:
                out[f"{key.rpartition('_')[0]}_{place[n]}"] = value
        return out

    return moved(entered), moved(photos), moved(errors)


def _form_field(field: str) -> str:
    """findings[2].photos[0] → photo_2 (the form's own field names); the findings as a
    whole (too many) → the form's own error."""
    if field == "findings":
        return "_form"
    if not field.startswith("findings["):
        return field
    index, _, rest = field.removeprefix("findings[").partition("]")
    name = rest.lstrip(".").split("[", 1)[0]
    short = {"description": "desc", "due_on": "due", "clause_ref": "ref", "photos": "photo"}
    return f"{short.get(name, name)}_{index}"
