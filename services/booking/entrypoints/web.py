"""The phone page (一图一码 扫码点单) and the supervisors' pages, over HTTP.

Server-side Jinja2 templates (autoescaped), Chinese UI, no JavaScript at all: plain links
and forms work on any phone browser. The signed QR token in the path is the firm's only
credential, and only for its own page, orders, tickets and photos; every /q/ route checks
it first, before it looks anything up, so a bad token learns nothing (not even whether an
order id exists).

Routes (README "The two services", docs/booking.md):
    GET  /q/{token}                         landing: firm, open tickets, orders, the menu
    GET  /q/{token}/order, POST             the order form (点单)
    GET  /q/{token}/orders/{order_id}       confirmation
    GET  /q/{token}/tickets/{ticket_id}, POST   a ticket and its proof-of-fix upload
    GET  /q/{token}/photos/{photo_id}       the firm's own proof photo
    GET  /verify/{code}                     what an inspection code stands for
    GET  /dashboard                         督单 statistics and the overdue list
    GET  /healthz                           200 ok / 503 when the database is unreachable

Errors are mapped to pages in one place (`_error_handlers`); security headers are set by
`_Guard`, which also bounds request bodies (uploaded files are otherwise unbounded).
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.booking.adapters.rules_client import RulesRejected, RulesUnavailable
from services.booking.domain.orders import OrderStatus, mask_phone
from services.booking.domain.photos import MAX_PHOTO_BYTES
from services.booking.domain.records import FirmCard
from services.booking.domain.slots import Slot, parse_slot
from services.booking.domain.tickets import Ticket, TicketStatus
from services.booking.entrypoints.web_limits import (
    DEFAULT_WEB_LIMITS,
    RateLimitMiddleware,
    WebLimits,
)
from services.booking.service_layer import handlers, stats, tickets
from services.booking.service_layer.handlers import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.auth import TokenStore
from services.common.errors import (
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    ValidationError,
)
from services.common.instants import in_shanghai
from services.common.vocabulary import Domain, Severity

_log = structlog.get_logger("web")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

BOOKING_WINDOW_DAYS = 14
FORM_BODY_LIMIT = 64 * 1024  # the order form is a few hundred bytes
UPLOAD_BODY_LIMIT = 6 * 1024 * 1024 + 64 * 1024  # one ≤ 5 MB photo, a note, multipart framing
UPLOAD_PART_LIMIT = 6 * 1024 * 1024
HEALTH_TIMEOUT_S = 5.0
GUIDANCE_RETRY_S = 60.0
ORDER_FIELDS = ("item_codes", "preferred_slots", "contact_name", "contact_phone", "note")
TICKET_FIELDS = ("note", "photo")
_UPLOAD_PATH = re.compile(r"^/q/[^/]+/tickets/[^/]+/?$")
_TOKEN_PATH = re.compile(r"^/q/[^/]+")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never send it elsewhere
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
}

ORDER_STATUS_LABELS = {
    OrderStatus.SUBMITTED.value: "已提交，待派单",
    OrderStatus.DISPATCHED.value: "已派单",
    OrderStatus.VISITED.value: "专家已上门",
    OrderStatus.CLOSED.value: "已办结",
    OrderStatus.CANCELLED.value: "已取消",
}
TICKET_STATUS_LABELS = {
    TicketStatus.OPEN.value: "待整改",
    TicketStatus.SUBMITTED.value: "已提交",
    TicketStatus.VERIFIED.value: "复查通过",
}
SEVERITY_LABELS = {s.value: s.label for s in Severity}
# Other actors are service callers (experts, inspectors): their ids stay off the page.
ACTOR_LABELS = {"firm": "企业", "dispatcher": "系统派单", "": "系统"}
DOMAIN_LABELS = {**{d.value: d.label for d in Domain}, "any": "通用服务"}
INSPECTION_KIND_LABELS = {
    "ROUTINE": "日常检查（双随机）",
    "CAMPAIGN": "专项检查",
    "COMPLAINT": "投诉举报核查",
    "REFERRAL": "转办交办",
    "DATA_MONITORING": "数据监测预警核查",
    "ACCIDENT": "事故调查",
    "RECHECK": "复查",
    "ENTERPRISE_REQUEST": "企业申请",
    "LICENSING": "行政许可核查",
}
WEEKDAYS = "一二三四五六日"


class BodyTooLarge(Exception):
    """The request body is larger than the route allows."""


# ---------------------------------------------------------------- template helpers


def _day(value: date | None) -> str:
    return f"{value.year}年{value.month}月{value.day}日" if value else ""


def _iso_day(text: str) -> str:
    """A `YYYY-MM-DD` string as 2026年6月7日; anything else as it is."""
    try:
        return _day(date.fromisoformat(text))
    except (TypeError, ValueError):
        return text


def _time(value: datetime | None) -> str:
    """A stored instant in Beijing time (SQLite hands back naive UTC)."""
    if value is None:
        return ""
    local = in_shanghai(value)
    return f"{local.year}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"


def _slot_label(text: str | None) -> str:
    if not text:
        return ""
    try:
        slot = parse_slot(text)
    except ValueError:
        return text
    return f"{slot.label}（周{WEEKDAYS[slot.day.weekday()]}）"


def _month(key: str) -> str:
    year, _, month = key.partition("-")
    return f"{year}年{int(month)}月" if month.isdigit() else key


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template is HTML: escape everything
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        order_status=lambda s: ORDER_STATUS_LABELS.get(s, s),
        ticket_status=lambda s: TICKET_STATUS_LABELS.get(s, s),
        severity=lambda s: SEVERITY_LABELS.get(s, s),
        actor=lambda a: ACTOR_LABELS.get(a, "专家/工作人员"),
        domain=lambda d: DOMAIN_LABELS.get(d, d),
        day=_day,
        iso_day=_iso_day,
        time=_time,
        slot_label=_slot_label,
        month=_month,
        percent=_percent,
    )
    return env


# ---------------------------------------------------------------- middleware


class _Guard:
    """Security headers on every response, no-store on dynamic pages, bounded bodies."""

    def __init__(
        self, app: ASGIApp, on_crash: Callable[[Request, Exception], Any] | None = None
    ) -> None:
        self.app = app
        self.on_crash = on_crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = UPLOAD_BODY_LIMIT if _UPLOAD_PATH.match(path) else FORM_BODY_LIMIT
        declared = _content_length(scope)
        received = 0

        async def bounded() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(f"{declared} bytes declared, {limit} allowed")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"more than {limit} bytes")
            return message

        no_store = not path.startswith("/static/")
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                _secure(MutableHeaders(scope=message), no_store)
            await send(message)

        try:
            await self.app(scope, bounded, with_headers)
        except Exception as exc:
            # Unexpected: answer with the 500 page here rather than in Starlette's outer
            # ServerErrorMiddleware, which re-raises and makes uvicorn drop the connection.
            if started or self.on_crash is None:
                raise
            response = await self.on_crash(Request(scope), exc)
            await response(scope, receive, with_headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _secure(headers: MutableHeaders, no_store: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    if no_store:
        headers["Cache-Control"] = "no-store"


def _log_path(path: str) -> str:
    """The request path without the QR token (it is the firm's credential)."""
    return _TOKEN_PATH.sub("/q/***", path)


# ---------------------------------------------------------------- the site


class _Site:
    def __init__(self, ctx: BookingContext, engine: Engine, on_outbox: Callable[[], None]) -> None:
        self.ctx = ctx
        self.engine = engine
        self.on_outbox = on_outbox
        self.env = _environment()
        self._retry_at = 0.0
        self.staff: TokenStore | None = None
        self._lock = threading.Lock()

    # -- plumbing

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("hotline", self.ctx.hotline)
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def _wake(self) -> None:
        try:
            self.on_outbox()
        except Exception:  # harmless: the outbox worker also polls
            _log.exception("on_outbox failed")

    def firm(self, token: str) -> FirmCard:
        """The token's firm, or PermissionDenied (forged, edited, revoked)."""
        uow = self.uow()
        with uow:
            return handlers.firm_for_token(uow, self.ctx, token)

    def expert_names(self, ids: Iterable[str | None]) -> dict[str, str]:
        """Expert names for display; an expert that no longer exists shows its id."""
        wanted = [i for i in ids if i]
        found = handlers.expert_names(self.uow(), wanted)
        return {i: found.get(i, i) for i in wanted}

    def clause(self, clause_ref: str) -> tuple[str, str]:
        """(clause text, guidance) from the rules service's catalogue (cached by the client);
        ("", "") when unknown or while the rules service cannot be reached."""
        with self._lock:
            if time.monotonic() < self._retry_at:
                return "", ""  # failed a moment ago: do not make every page wait again
        try:
            found = self.ctx.rules.clause(clause_ref)
        except Exception:
            _log.warning("clause guidance unavailable", clause_ref=clause_ref)
            with self._lock:
                self._retry_at = time.monotonic() + GUIDANCE_RETRY_S
            return "", ""
        return found or ("", "")

    # -- landing

    async def landing(self, request: Request) -> Response:
        token = request.path_params["token"]
        data = await run_in_threadpool(self._landing, token)
        return self.page("landing.html", token=token, **data)

    def _landing(self, token: str) -> dict[str, Any]:
        card = self.firm(token)
        today = self.ctx.today()
        all_tickets = tickets.firm_tickets(self.uow(), card.enterprise_id)
        waiting = sorted(
            (t for t in all_tickets if t.status != TicketStatus.VERIFIED),
            key=lambda t: (t.due_on, t.id),
        )
        done = [t for t in all_tickets if t.status == TicketStatus.VERIFIED]
        orders, _ = handlers.list_orders(self.uow(), card.enterprise_id, "", 50, "")
        return {
            "firm": card,
            "today": today,
            "open_tickets": waiting,
            "done_tickets": done,
            "reminders": [t for t in waiting if t.needs_reminder(today)],
            "overdue": [t for t in waiting if t.is_overdue(today)],
            "orders": orders,
            "names": self.expert_names(o.expert_id for o in orders),
            "menu": list(self.ctx.menu.values()),
        }

    # -- the order form

    def _slots(self) -> list[dict[str, str]]:
        today = self.ctx.today()
        out = []
        for offset in range(1, BOOKING_WINDOW_DAYS + 1):
            day = today + timedelta(days=offset)
            for half in ("AM", "PM"):
                slot = Slot(day, half)
                out.append(
                    {
                        "value": str(slot),
                        "label": slot.label,
                        "weekday": f"周{WEEKDAYS[day.weekday()]}",
                        "weekend": "weekend" if day.weekday() >= 5 else "",
                    }
                )
        return out

    def _order_page(
        self,
        token: str,
        card: FirmCard,
        values: Mapping[str, Any],
        key: str,
        errors: Mapping[str, list[str]],
        status: int,
    ) -> HTMLResponse:
        general = [m for f, ms in errors.items() if f not in ORDER_FIELDS for m in ms]
        return self.page(
            "order_form.html",
            status,
            token=token,
            firm=card,
            menu=list(self.ctx.menu.values()),
            slots=self._slots(),
            values=values,
            key=key,
            errors=errors,
            general_errors=general,
        )

    async def order_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self.firm, token)
        chosen = [c for c in request.query_params.getlist("item") if c in self.ctx.menu]
        values = {
            "item_codes": chosen,
            "preferred_slots": [],
            "contact_name": "",
            "contact_phone": "",
            "note": "",
        }
        return self._order_page(token, card, values, str(uuid.uuid4()), {}, 200)

    async def order_submit(self, request: Request) -> Response:
        token = request.path_params["token"]
        card = await run_in_threadpool(self.firm, token)  # the token first, then the form
        async with request.form(max_files=0, max_fields=100, max_part_size=16 * 1024) as form:
            values: dict[str, Any] = {
                "item_codes": [str(v) for v in form.getlist("item_codes")],
                "preferred_slots": [str(v) for v in form.getlist("preferred_slots")],
                "contact_name": str(form.get("contact_name") or ""),
                "contact_phone": str(form.get("contact_phone") or ""),
                "note": str(form.get("note") or ""),
            }
            key = str(form.get("idempotency_key") or "")
        try:
            order = await run_in_threadpool(
                handlers.create_order, self.uow(), self.ctx, token, values, key
            )
        except ValidationError as exc:
            errors: dict[str, list[str]] = {}
            for v in exc.violations:
                text = v.description
                if v.field == "idempotency_key":
                    key, text = "", "页面已过期，请核对后重新提交"
                errors.setdefault(v.field, []).append(text)
            key = key if 0 < len(key) <= 64 else str(uuid.uuid4())
            return self._order_page(token, card, values, key, errors, 400)
        self._wake()
        return RedirectResponse(f"/q/{token}/orders/{order.id}", status_code=303)

    # -- confirmation

    async def order_page(self, request: Request) -> Response:
        token, order_id = request.path_params["token"], request.path_params["order_id"]
        data = await run_in_threadpool(self._order, token, order_id)
        return self.page("order.html", token=token, **data)

    def _order(self, token: str, order_id: str) -> dict[str, Any]:
        card = self.firm(token)
        order = handlers.get_order(self.uow(), self.ctx, order_id, token)
        raised = [
            t
            for t in tickets.firm_tickets(self.uow(), card.enterprise_id)
            if t.order_id == order.id
        ]
        return {
            "firm": card,
            "order": order,
            "today": self.ctx.today(),
            "expert_name": self.expert_names([order.expert_id]).get(order.expert_id or "", ""),
            "phone": mask_phone(order.contact_phone),
            "items": [self.ctx.menu[c].name if c in self.ctx.menu else c for c in order.item_codes],
            "tickets": raised,
        }

    # -- tickets

    async def ticket_page(self, request: Request) -> Response:
        token, ticket_id = request.path_params["token"], request.path_params["ticket_id"]
        data = await run_in_threadpool(self._ticket, token, ticket_id)
        return self.page("ticket.html", token=token, note="", errors={}, general_errors=[], **data)

    def _ticket(self, token: str, ticket_id: str) -> dict[str, Any]:
        card = self.firm(token)
        ticket: Ticket = tickets.get_ticket(self.uow(), self.ctx, ticket_id, token)
        text, guidance = self.clause(ticket.clause_ref)
        today = self.ctx.today()
        return {
            "firm": card,
            "ticket": ticket,
            "today": today,
            "days_left": (ticket.due_on - today).days,
            "expert_name": self.expert_names([ticket.expert_id]).get(ticket.expert_id, ""),
            "clause_text": text,
            "guidance": guidance,
            "max_mb": MAX_PHOTO_BYTES // (1024 * 1024),
        }

    async def ticket_submit(self, request: Request) -> Response:
        token, ticket_id = request.path_params["token"], request.path_params["ticket_id"]
        await run_in_threadpool(self.firm, token)
        note, photo, errors, status = "", b"", {}, 400
        try:
            async with request.form(
                max_files=1, max_fields=10, max_part_size=UPLOAD_PART_LIMIT
            ) as form:
                raw_note = form.get("note")
                note = raw_note if isinstance(raw_note, str) else ""
                upload = form.get("photo")
                if isinstance(upload, UploadFile):
                    photo = await upload.read(MAX_PHOTO_BYTES + 1)  # enough to say "too big"
        except BodyTooLarge:
            errors, status = {"photo": ["照片不能超过5MB"]}, 413
        except HTTPException:  # malformed multipart, too many parts
            errors = {"photo": ["上传失败，请重新选择一张照片"]}
        if not errors:
            try:
                await run_in_threadpool(
                    tickets.submit_rectification,
                    self.uow(),
                    self.ctx,
                    ticket_id,
                    token=token,
                    note=note,
                    photo=photo,
                )
            except ValidationError as exc:
                for v in exc.violations:
                    errors.setdefault(v.field, []).append(v.description)
            except PreconditionFailed:
                errors, status = {"_form": ["该整改单已复查通过，无需再提交"]}, 409
        if errors:
            data = await run_in_threadpool(self._ticket, token, ticket_id)
            general = [m for f, ms in errors.items() if f not in TICKET_FIELDS for m in ms]
            return self.page(
                "ticket.html",
                status,
                token=token,
                note=note,
                errors=errors,
                general_errors=general,
                **data,
            )
        self._wake()
        return RedirectResponse(f"/q/{token}/tickets/{ticket_id}", status_code=303)

    async def photo(self, request: Request) -> Response:
        token, photo_id = request.path_params["token"], request.path_params["photo_id"]

        def load() -> tuple[bytes, str]:
            self.firm(token)
            found = tickets.photo_of(self.uow(), self.ctx, photo_id, token)
            return found.content, found.content_type

        content, kind = await run_in_threadpool(load)
        if kind not in ("image/jpeg", "image/png"):  # stored types are sniffed; be sure
            raise NotFound("no such photo")
        return Response(content, media_type=kind, headers={"Content-Disposition": "inline"})

    # -- inspection codes

    async def verify(self, request: Request) -> Response:
        code = request.path_params["code"]
        info = await run_in_threadpool(self._verify, code) if 0 < len(code) <= 100 else None
        if info is None:
            return self.page("verify_invalid.html", 404)
        kind = INSPECTION_KIND_LABELS.get(info.kind, info.kind)
        return self.page("verify.html", info=info, kind=kind)

    def _verify(self, code: str) -> Any:
        try:
            return self.ctx.rules.verify_code(code)
        except RulesUnavailable as exc:
            raise Unavailable(f"the rules service is unavailable: {exc}") from exc
        except RulesRejected:
            return None

    # -- supervision

    async def dashboard(self, request: Request) -> Response:
        """The supervisors' page: a staff token (booking.read/inspector/admin) is required
        when the app has a token store, as HTTP Basic (any user, the token as password —
        browsers prompt for it) or as a Bearer header."""
        if self.staff is not None and not _staff(self.staff, request):
            return Response(
                "需要监管人员凭证",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="dashboard", charset="UTF-8"'},
            )
        q = request.query_params
        region, start, end = (q.get(k, "")[:100] for k in ("region", "from", "to"))
        if region and self.ctx.regions is not None and self.ctx.regions.area(region) is None:
            near = self.ctx.regions.nearest(region, counties=True)
            hint = f"；是否要找：{'、'.join(near)}" if near else ""
            return self._error_page(
                400,
                "没有这个地区",
                f"“{region[:24]}”不是本地的镇街或县（市、区）。请填写名称（如稠城街道、义乌市）"
                f"或行政区划代码（如330782001、330782）{hint}",
            )
        data = await run_in_threadpool(self._dashboard, region, start, end)
        return self.page("dashboard.html", region=region, start=start, end=end, **data)

    def _dashboard(self, region: str, start: str, end: str) -> dict[str, Any]:
        figures = stats.get_stats(self.uow(), self.ctx, region, start, end)
        overdue, _ = tickets.list_tickets(
            self.uow(),
            self.ctx,
            enterprise_id="",
            status="",
            overdue_only=True,
            size=500,
            token="",
        )
        uow = self.uow()
        with uow:
            found = uow.register.firm_names({t.enterprise_id for t in overdue})
        names = {t.enterprise_id: found.get(t.enterprise_id, t.enterprise_id) for t in overdue}
        today = self.ctx.today()
        return {
            "stats": figures,
            "overdue": sorted(overdue, key=lambda t: (t.due_on, t.id)),
            "firm_names": names,
            "today": today,
        }

    # -- health

    async def healthz(self, request: Request) -> Response:
        try:
            await asyncio.wait_for(run_in_threadpool(self._ping), HEALTH_TIMEOUT_S)
        except Exception:
            _log.warning("health check: database unreachable")
            return PlainTextResponse("database unreachable", status_code=503)
        return PlainTextResponse("ok")

    def _ping(self) -> None:
        # A raw DBAPI connection: no SQLAlchemy "begin" (on SQLite that is BEGIN IMMEDIATE,
        # which would queue behind writers).
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()

    # -- errors, in one place

    def _error_page(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.page("error.html", status, title=title, message=message)

    def error_handlers(self) -> dict[Any, Callable[..., Any]]:
        def page(status: int, title: str, message: str) -> Callable[..., Any]:
            async def handle(request: Request, exc: Exception) -> Response:
                return self._error_page(status, title, message)

            return handle

        async def denied(request: Request, exc: Exception) -> Response:
            # Deliberately generic: no firm name, no reason, nothing from the token.
            return self._error_page(
                403,
                "二维码无效或已失效",
                "请扫描企业现场张贴的最新二维码。如二维码已更换或损坏，请联系属地应急管理部门。",
            )

        async def invalid(request: Request, exc: Exception) -> Response:
            messages = [v.description for v in getattr(exc, "violations", [])]
            return self.page(
                "error.html",
                400,
                title="请求有误",
                message="；".join(messages) or "请检查输入后重试",
            )

        async def unavailable(request: Request, exc: Exception) -> Response:
            _log.warning("unavailable", path=_log_path(request.url.path), error=str(exc)[:200])
            response = self._error_page(503, "服务暂时不可用", "系统繁忙或正在维护，请稍后再试。")
            response.headers["Retry-After"] = "30"
            return response

        async def too_many(request: Request, exc: Exception) -> Response:
            response = self._error_page(429, "操作太频繁", "请稍等片刻再试。")
            response.headers["Retry-After"] = str(max(1, round(getattr(exc, "retry_after", 60))))
            return response

        async def http_error(request: Request, exc: Exception) -> Response:
            code = getattr(exc, "status_code", 500)
            if code == 404:
                return self._error_page(404, "页面不存在", "没有找到您要访问的页面。")
            if code == 405:
                return self._error_page(405, "不支持的操作", "请返回上一页重试。")
            return self._error_page(code, "请求有误", "请返回上一页重试。")

        return {
            PermissionDenied: denied,
            NotFound: page(404, "没有找到", "没有找到该记录，请返回企业主页查看。"),
            ValidationError: invalid,
            PreconditionFailed: page(409, "当前状态下不能进行该操作", "请返回上一页刷新后查看。"),
            Unavailable: unavailable,
            RateLimited: too_many,
            RulesUnavailable: unavailable,
            OperationalError: unavailable,
            PoolTimeout: unavailable,
            BodyTooLarge: page(413, "提交的内容太大", "照片不能超过5MB，请压缩后重新上传。"),
            HTTPException: http_error,
            Exception: self.crashed,  # fallback: _Guard normally answers these itself
        }

    async def crashed(self, request: Request, exc: Exception) -> Response:
        """Anything unexpected: log it (without the QR token), show no traceback."""
        _log.error(
            "unexpected error",
            path=_log_path(request.url.path),
            method=request.method,
            error_type=type(exc).__name__,
            exc_info=exc,
        )
        response = self._error_page(500, "系统出错了", "很抱歉，请稍后再试；问题已记录。")
        _secure(response.headers)  # when sent from Starlette's outer middleware
        return response


STAFF_SCOPES = ("booking.read", "booking.inspector", "booking.admin")


def _staff(store: TokenStore, request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    token = value.strip()
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(token).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    principal = store.lookup(token) if token else None
    return principal is not None and principal.has(*STAFF_SCOPES)


def create_web_app(
    ctx: BookingContext,
    engine: Engine,
    *,
    on_outbox: Callable[[], None] = lambda: None,
    limits: WebLimits | None = DEFAULT_WEB_LIMITS,
    staff: TokenStore | None = None,
) -> Starlette:
    """The booking service's HTTP app: the phone page, /verify, /dashboard, /healthz."""
    site = _Site(ctx, engine, on_outbox)
    site.staff = staff
    routes = [
        Route("/q/{token}", site.landing, methods=["GET"]),
        Route("/q/{token}/order", site.order_form, methods=["GET"]),
        Route("/q/{token}/order", site.order_submit, methods=["POST"]),
        Route("/q/{token}/orders/{order_id}", site.order_page, methods=["GET"]),
        Route("/q/{token}/tickets/{ticket_id}", site.ticket_page, methods=["GET"]),
        Route("/q/{token}/tickets/{ticket_id}", site.ticket_submit, methods=["POST"]),
        Route("/q/{token}/photos/{photo_id}", site.photo, methods=["GET"]),
        Route("/verify/{code}", site.verify, methods=["GET"]),
        Route("/dashboard", site.dashboard, methods=["GET"]),
        Route("/healthz", site.healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return Starlette(
        debug=False,
        routes=routes,
        middleware=[
            Middleware(_Guard, on_crash=site.crashed),
            *([Middleware(RateLimitMiddleware, limits=limits)] if limits else []),
        ],
        exception_handlers=site.error_handlers(),
    )
