"""The BookingService servicer: proto → use case → proto, nothing more.

Each method translates the request (entrypoints/convert.py), checks the caller's role
where the scopes alone do not decide (service_layer/authz.py), calls one use case of the
service layer with a fresh unit of work, and translates the answer; errors become status
codes in services/common/grpc_errors.py. The ids and filters a request names a record or
a listing by are checked here (domain/lookups.py: INVALID_ARGUMENT naming the field), not
in the use cases, which the web pages share: there an id in a path that names nothing is
a page not found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from urllib.parse import unquote

import grpc
from sqlalchemy import Engine

from services.booking.adapters.orm import start_mappers
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import lookups, messages, order_history
from services.booking.domain.findings import MAX_VISIT_PHOTO_BYTES, FindingInput
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import Order
from services.booking.domain.photos import Upload
from services.booking.domain.sign_in import CODE_TTL
from services.booking.domain.tickets import Ticket
from services.booking.entrypoints import convert
from services.booking.entrypoints.access import BOOKING_METHODS
from services.booking.service_layer import (
    authz,
    dispatch,
    experts,
    orders,
    qr_codes,
    sign_in,
    stats,
    tickets,
    views,
    visits,
)
from services.booking.service_layer.order_groups import OrderGroups, limits_for
from services.booking.service_layer.ports import BookingContext
from services.common import server as common_server
from services.common._generated.booking.v1 import booking_pb2 as pb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.call_groups import GroupLimits
from services.common.context import Principal, current_caller, current_principal
from services.common.db import is_sqlite
from services.common.errors import PermissionDenied
from services.common.grpc_errors import map_errors, unary
from services.common.instants import rfc3339
from services.common.security import Security

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BookingService"].full_name
# The booking server's message limit: the largest visit RecordVisit takes, photos of
# MAX_VISIT_PHOTO_BYTES together (100 MB: 20 of 5 MB, as the expert's page takes) and
# 4 MB for the rest (50 findings of 1000 characters are about 160 KB as sent). A larger
# message is refused by gRPC itself, RESOURCE_EXHAUSTED, before any field is read; photos
# past the 100 MB within it are refused naming the photo (domain/findings.py).
MAX_RECORD_VISIT_BYTES = MAX_VISIT_PHOTO_BYTES + 4 * 1024 * 1024


class BookingServicer(booking_pb2_grpc.BookingServiceServicer):
    def __init__(
        self,
        ctx: BookingContext,
        engine: Engine,
        on_outbox: Callable[[], None] = lambda: None,
        order_groups: GroupLimits | None = None,
    ) -> None:
        self._ctx = ctx
        self._engine = engine
        # CreateOrder's group commit, as asked, the rest as suits the database
        limits = limits_for(order_groups, single_writer=is_sqlite(engine))
        self._orders = OrderGroups(self._uow, ctx, limits)
        self._wake = on_outbox  # new outbox messages: deliver now
        self._clauses = views.Guidance(ctx.rules, retry_after=0)  # ask every time

    def _uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._engine)

    def _guidance(self, clause_ref: str) -> str:
        return self._clauses(clause_ref)[1]

    def _firm_session(self, context: grpc.ServicerContext) -> str:
        """The firm a call's `firm-session` metadata signs in ("" without a valid one)."""
        text = _session_text(context)
        return sign_in.session_firm(self._uow(), self._ctx, text[:200]) or ""

    def _caller(self, context: grpc.ServicerContext) -> tuple[Principal, str]:
        """The caller and, for the firm's page, the firm its session signs in ("" without
        one, and for every other caller)."""
        principal = current_principal()
        firm_id = self._firm_session(context) if principal.caller == authz.FIRM else ""
        return principal, firm_id

    def _signed_in(self, context: grpc.ServicerContext, qr_token: str = "") -> str:
        """`_caller`'s firm, refusing the firm's page without a session (UNAUTHENTICATED
        with no credential at all, PERMISSION_DENIED with a QR token or a session that
        signs in nobody)."""
        principal, firm_id = self._caller(context)
        presented = bool(qr_token or _session_text(context))
        authz.require_firm_session(principal, firm_id, presented)
        return firm_id

    @unary
    def IssueQrCode(self, request: pb.IssueQrCodeRequest) -> pb.IssueQrCodeResponse:
        issued = qr_codes.issue_qr_code(self._uow(), self._ctx, request.enterprise_id)
        return pb.IssueQrCodeResponse(
            url=issued.url,
            token=issued.token,
            poster_svg=issued.poster_svg,
            key_id=issued.key_id,
            issued_at=rfc3339(issued.issued_at),
        )

    @unary
    def ListServiceItems(self, request: pb.ListServiceItemsRequest) -> pb.ListServiceItemsResponse:
        return pb.ListServiceItemsResponse(
            items=[
                pb.ServiceItem(
                    code=i.code, name=i.name, domain=i.domain or "", description=i.description
                )
                for i in self._ctx.menu.values()
            ]
        )

    @unary
    def UpsertExpert(self, request: pb.UpsertExpertRequest) -> pb.Expert:
        expert = experts.upsert_expert(
            self._uow(), self._ctx, convert.expert_to_dict(request.expert)
        )
        return convert.expert_to_proto(expert, show_phone=_sees_phones())

    @unary
    def ListExperts(self, request: pb.ListExpertsRequest) -> pb.ListExpertsResponse:
        rows = experts.list_experts(
            self._uow(),
            self._ctx,
            domain=lookups.domain_filter(request.domain),
            region=request.region,
            active_only=request.active_only,
        )
        whole = _sees_phones()
        return pb.ListExpertsResponse(
            experts=[convert.expert_to_proto(e, show_phone=whole) for e in rows]
        )

    def _order(
        self,
        order: Order,
        names: dict[str, str] | None = None,
        show_refs: bool = False,
        for_firm: bool = False,
    ) -> pb.Order:
        """`for_firm`: the firm's session reads it, its history as the firm's order page
        shows it (domain/order_history.py; `names` then also holds its experts'). Its
        contact mobile as the caller may read it (`_sees_phones`)."""
        if names is None:
            names = experts.expert_names(self._uow(), _experts_of([order], for_firm))
        return convert.order_to_proto(
            order,
            expert_name=names.get(order.expert_id or "", ""),
            show_phone=_sees_phones(),
            show_refs=show_refs,
            history=order_history.for_firm(order.history, names) if for_firm else None,
            for_firm=for_firm,
        )

    def _tickets(self, rows: Sequence[Ticket], for_firm: bool = False) -> list[pb.Ticket]:
        """Tickets as answered: each with its guidance and its expert's name (one query);
        `for_firm`: as the firm's page shows them (no expert id, staff actors unnamed)."""
        names = experts.expert_names(self._uow(), {t.expert_id for t in rows})
        today = self._ctx.today()
        return [
            convert.ticket_to_proto(
                t,
                today,
                self._guidance(t.clause_ref),
                expert_name=names.get(t.expert_id, ""),
                for_firm=for_firm,
            )
            for t in rows
        ]

    @map_errors
    def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.ServicerContext
    ) -> pb.Order:
        form = {
            "clause_refs": list(request.clause_refs),
            "item_codes": list(request.item_codes),
            "preferred_slots": list(request.preferred_slots),
            "contact_name": request.contact_name,
            "contact_phone": request.contact_phone,
            "note": request.note,
        }
        # the firm's own session first: it is not under the token's refused-call limit
        signed = self._firm_session(context)
        order = self._orders.create(
            request.qr_token, form, request.idempotency_key, session_firm=signed
        )
        if current_principal().caller == authz.FIRM:
            if signed != order.enterprise_id:
                return convert.public_confirmation(order)  # the QR token alone reads no more
            return self._order(order, show_refs=True, for_firm=True)
        return self._order(order)

    @map_errors
    def GetOrder(self, request: pb.GetOrderRequest, context: grpc.ServicerContext) -> pb.Order:
        principal, firm_id = self._caller(context)
        access = FirmAccess(request.qr_token, firm_id)
        authz.require_firm_credential(principal, access, bool(_session_text(context)))
        order_id = lookups.record_id(request.order_id, "order", "order_id")
        reach = authz.reach(principal, self._ctx.regions)
        order = orders.get_order(self._uow(), self._ctx, order_id, access, reach)
        if principal.caller == authz.FIRM and not firm_id:
            return convert.public_confirmation(order)  # the QR token alone reads no more
        return self._order(
            order,
            show_refs=authz.sees_refs(principal, order, access),
            for_firm=bool(firm_id),
        )

    @map_errors
    def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListOrdersResponse:
        firm_id = self._signed_in(context)
        asked = lookups.firm_filter(request.enterprise_id)
        if firm_id and asked not in ("", firm_id):
            raise PermissionDenied(messages.SIGN_IN_OWN_ORDERS_ONLY)
        rows, token = orders.list_orders(
            self._uow(),
            firm_id or asked,
            convert.order_status_name(request.status),
            request.page_size,
            request.page_token,
            authz.reach(current_principal(), self._ctx.regions),
        )
        names = experts.expert_names(self._uow(), _experts_of(rows, bool(firm_id)))  # one query
        return pb.ListOrdersResponse(
            orders=[
                self._order(o, names=names, show_refs=bool(firm_id), for_firm=bool(firm_id))
                for o in rows
            ],
            next_page_token=token,
        )

    @map_errors
    def CancelOrder(
        self, request: pb.CancelOrderRequest, context: grpc.ServicerContext
    ) -> pb.Order:
        firm_id = self._signed_in(context, request.qr_token)
        if not firm_id:
            authz.may_cancel_for_authority(current_principal())
        order = orders.cancel_order(
            self._uow(),
            self._ctx,
            lookups.record_id(request.order_id, "order", "order_id"),
            FirmAccess(session_firm=firm_id),
            actor=current_caller(),
            reason=request.reason,
        )
        return self._order(order, show_refs=bool(firm_id), for_firm=bool(firm_id))

    @unary
    def DispatchOrder(self, request: pb.DispatchOrderRequest) -> pb.Order:
        return self._order(
            dispatch.dispatch_order(
                self._uow(),
                self._ctx,
                lookups.record_id(request.order_id, "order", "order_id"),
                actor=current_caller(),
            )
        )

    @unary
    def RecordVisit(self, request: pb.RecordVisitRequest) -> pb.Visit:
        order_id = lookups.record_id(request.order_id, "order", "order_id")
        findings = [
            FindingInput(
                f.clause_ref,
                convert.severity_name(f.severity),
                f.description,
                f.due_on,
                tuple(Upload.of(p.content) for p in f.photos),  # the bytes decide
            )
            for f in request.findings
        ]
        result = visits.record_visit(
            self._uow(),
            self._ctx,
            order_id,
            findings,
            visited_on=request.visited_on,
            minutes=request.minutes_on_site,
            actor=current_caller(),
            expert_id=authz.expert_filter(current_principal()),
            on_site_mobile=request.on_site_mobile,
            contact_confirmed=request.contact_confirmed,
            idempotency_key=request.idempotency_key,
        )
        self._wake()
        return pb.Visit(
            visit_id=result.visit.id,
            order_id=result.visit.order_id,
            visited_on=result.visit.visited_on.isoformat(),
            minutes_on_site=result.visit.minutes_on_site,
            tickets=self._tickets(result.tickets),
        )

    @map_errors
    def SubmitRectification(
        self, request: pb.SubmitRectificationRequest, context: grpc.ServicerContext
    ) -> pb.Ticket:
        firm_id = self._signed_in(context, request.qr_token)
        ticket = tickets.submit_rectification(
            self._uow(),
            self._ctx,
            lookups.record_id(request.ticket_id, "ticket", "ticket_id"),
            FirmAccess(session_firm=firm_id),
            note=request.note,
            photo=request.photo.content,
            actor="firm" if firm_id else current_caller(),
            idempotency_key=request.idempotency_key,
        )
        return self._tickets([ticket], for_firm=bool(firm_id))[0]

    @unary
    def RecheckTicket(self, request: pb.RecheckTicketRequest) -> pb.Ticket:
        principal = current_principal()
        ticket = tickets.recheck_ticket(
            self._uow(),
            self._ctx,
            lookups.record_id(request.ticket_id, "ticket", "ticket_id"),
            passed=request.passed,
            note=request.note,
            new_due_on=request.new_due_on,
            actor=current_caller(),
            allowed=lambda t: authz.may_recheck(principal, t),
            reach=authz.reach(principal, self._ctx.regions),
            proof_seen=request.proof_number or None,  # 0: not given, not checked
        )
        self._wake()
        return self._tickets([ticket])[0]

    @unary
    def ListTickets(self, request: pb.ListTicketsRequest) -> pb.ListTicketsResponse:
        rows, token = tickets.list_tickets(
            self._uow(),
            self._ctx,
            enterprise_id=lookups.firm_filter(request.enterprise_id),
            status=convert.ticket_status_name(request.status),
            overdue_only=request.overdue_only,
            size=request.page_size,
            token=request.page_token,
            reach=authz.reach(current_principal(), self._ctx.regions),
        )
        return pb.ListTicketsResponse(tickets=self._tickets(rows), next_page_token=token)

    @unary
    def GetStats(self, request: pb.GetStatsRequest) -> pb.Stats:
        authz.require_stats_reader(current_principal())
        return convert.stats_to_proto(
            stats.get_stats(
                self._uow(),
                self._ctx,
                authz.dashboard_region(current_principal(), self._ctx.regions, request.region),
                getattr(request, "from"),
                request.to,
            )
        )

    @map_errors
    def RequestSignInCode(
        self, request: pb.RequestSignInCodeRequest, context: grpc.ServicerContext
    ) -> pb.RequestSignInCodeResponse:
        asked = sign_in.request_code(
            self._uow(), self._ctx, request.qr_token, request.phone, _peer_host(context)
        )
        notice = messages.SIGN_IN_CODE_REGISTER_UNAVAILABLE if asked.register_unavailable else ""
        return pb.RequestSignInCodeResponse(
            expires_in_seconds=int(CODE_TTL.total_seconds()), notice=notice
        )

    @unary
    def SignIn(self, request: pb.SignInRequest) -> pb.SignInResponse:
        done = sign_in.sign_in(
            self._uow(), self._ctx, request.qr_token, request.phone, request.code
        )
        return pb.SignInResponse(
            session_token=done.credential,
            expires_at=rfc3339(done.expires_at),
            enterprise_id=done.enterprise_id,
        )

    @unary
    def SetSignInPhone(self, request: pb.SetSignInPhoneRequest) -> pb.SetSignInPhoneResponse:
        card = sign_in.set_sign_in_phone(
            self._uow(), self._ctx, request.enterprise_id, request.phone
        )
        return pb.SetSignInPhoneResponse(
            enterprise_id=card.enterprise_id,
            phone=convert.phone_shown(card.sign_in_phone, _sees_phones()),
        )


SESSION_METADATA = "firm-session"


def _sees_phones() -> bool:
    """Whether this call's caller reads phone numbers whole (service_layer/authz.py
    `sees_phones`): every answer that carries an order's contact, an expert's or a firm's
    sign-in mobile asks here and masks with `convert.phone_shown`."""
    return authz.sees_phones(current_principal())


def _experts_of(rows: Iterable[Order], for_firm: bool) -> set[str]:
    """The experts whose names the orders show: each one's dispatched expert, and for
    the firm also those its history names."""
    ids = {o.expert_id for o in rows if o.expert_id}
    if for_firm:
        ids |= {e for o in rows for e in order_history.experts_named(o.history)}
    return ids


def _session_text(context: grpc.ServicerContext) -> str:
    """The call's `firm-session` metadata as sent ("": none)."""
    return next(
        (str(v) for k, v in context.invocation_metadata() or () if k == SESSION_METADATA), ""
    )


def _peer_host(context: grpc.ServicerContext) -> str:
    """The caller's address as the phone page keys it (ipv4:1.2.3.4:5678 → 1.2.3.4,
    ipv6:[::1]:5678 → ::1), so one address has one sign-in budget over gRPC and web."""
    peer = unquote(context.peer() or "")
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in rest:
        return peer
    return rest.rsplit(":", 1)[0].strip("[]")


# the one method that never touches the database: served even while it hangs
DB_FREE = frozenset({f"/{SERVICE_NAME}/ListServiceItems"})


def create_server(
    ctx: BookingContext,
    engine: Engine,
    *,
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
    on_outbox: Callable[[], None] = lambda: None,
    security: Security | None = None,
    limits: common_server.Limits | None = None,
    order_groups: GroupLimits | None = None,
) -> tuple[grpc.Server, int]:
    """Build (not start) the booking gRPC server; port 0 picks a free port. `max_workers`
    sizes both thread pools unless `limits` says otherwise; `order_groups`: CreateOrder's
    group commit (service_layer/order_groups.py; what it leaves out, the database's
    defaults: limits_for; max_size 1: off)."""
    limits = limits or common_server.Limits(max_workers, max_workers)
    running = build(
        ctx,
        engine,
        address=address,
        limits=limits,
        on_outbox=on_outbox,
        security=security,
        order_groups=order_groups,
    )
    return running.server, running.port


def build(
    ctx: BookingContext,
    engine: Engine,
    *,
    address: str,
    limits: common_server.Limits,
    on_outbox: Callable[[], None] = lambda: None,
    security: Security | None = None,
    order_groups: GroupLimits | None = None,
) -> common_server.RunningServer:
    security = security or Security()
    start_mappers()  # once, before serving: concurrent first calls must not map it again
    server, pools = common_server.new_server(
        limits=limits,
        db_free=DB_FREE,
        interceptors=security.interceptors(BOOKING_METHODS),
        max_message=MAX_RECORD_VISIT_BYTES,
        large_messages=[f"/{SERVICE_NAME}/RecordVisit"],
    )
    booking_pb2_grpc.add_BookingServiceServicer_to_server(
        BookingServicer(ctx, engine, on_outbox, order_groups), server
    )
    checker = common_server.add_health_and_reflection(server, [SERVICE_NAME], pools.draining)
    port = common_server.bind_port(server, address, security.tls)
    return common_server.RunningServer(server, port, checker, pools)
