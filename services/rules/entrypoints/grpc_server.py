"""The RulesService servicer: proto ↔ domain translation and nothing more."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import grpc
from sqlalchemy import Engine

from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.context import current_caller
from services.common.grpc_errors import internal_status, is_domain_error, map_errors, status_proto
from services.common.malformed import text_violations
from services.common.security import Security
from services.common.values import preview
from services.rules.adapters.engine import engine_for
from services.rules.adapters.orm import start_mappers
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.dates import today_shanghai
from services.rules.domain.errors import NotFound, PreconditionFailed, ValidationError
from services.rules.entrypoints import convert
from services.rules.entrypoints.access import RULES_METHODS
from services.rules.service_layer import handlers, inspection_handlers, register_handlers
from services.rules.service_layer.unit_of_work import UnitOfWork

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RulesService"].full_name


class RulesServicer(rules_pb2_grpc.RulesServiceServicer):
    def __init__(self, ctx: handlers.RulesContext, engine: Engine | None = None) -> None:
        self._ctx = ctx
        self._engine = engine

    def _uow(self) -> UnitOfWork:
        if self._engine is None:
            raise PreconditionFailed("this server runs without a register database (--db)")
        return UnitOfWork(self._engine)

    @map_errors
    def Evaluate(self, request: pb.EvaluateRequest, context: grpc.ServicerContext) -> pb.Decision:
        decision = handlers.evaluate_data(
            self._ctx, convert.profile_to_dict(request.profile), request.as_of
        )
        return convert.decision_to_proto(decision, request_id=request.request_id)

    def EvaluateStream(
        self, requests: Iterator[pb.EvaluateRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.Decision]:
        """One Decision per request, in order; a bad item carries its error, the stream goes on."""
        for request in requests:
            if not context.is_active():
                return  # cancelled or past the caller's deadline
            try:
                if bad := text_violations(request):
                    raise ValidationError(bad)  # as the interceptor does for unary calls
                decision = handlers.evaluate_data(
                    self._ctx, convert.profile_to_dict(request.profile), request.as_of
                )
                yield convert.decision_to_proto(decision, request_id=request.request_id)
            except Exception as exc:
                status = status_proto(exc) if is_domain_error(exc) else internal_status()
                yield pb.Decision(
                    request_id=request.request_id,
                    enterprise_id=request.profile.enterprise_id,
                    error=status,
                )

    @map_errors
    def ListStandards(
        self, request: pb.ListStandardsRequest, context: grpc.ServicerContext
    ) -> pb.ListStandardsResponse:
        return pb.ListStandardsResponse(
            standards=[
                convert.standard_to_proto(s, with_clauses=False)
                for s in self._ctx.catalogue.standards
            ],
            ruleset_version=self._ctx.catalogue.version,
        )

    @map_errors
    def GetStandard(
        self, request: pb.GetStandardRequest, context: grpc.ServicerContext
    ) -> pb.Standard:
        standard = self._ctx.catalogue.standard(request.standard_id)
        if standard is None:
            known = ", ".join(s.id for s in self._ctx.catalogue.standards)
            raise NotFound(f"no standard {preview(request.standard_id)}; known: {known}")
        return convert.standard_to_proto(standard, with_clauses=True)

    @map_errors
    def UpsertEnterprise(
        self, request: pb.UpsertEnterpriseRequest, context: grpc.ServicerContext
    ) -> pb.EnterpriseStatus:
        view = register_handlers.upsert_enterprise(
            self._uow(), self._ctx, convert.profile_to_dict(request.profile), request.as_of
        )
        return convert.status_to_proto(view)

    @map_errors
    def GetEnterpriseStatus(
        self, request: pb.GetEnterpriseStatusRequest, context: grpc.ServicerContext
    ) -> pb.EnterpriseStatus:
        view = register_handlers.get_status(
            self._uow(), self._ctx, request.enterprise_id, request.history_limit
        )
        return convert.status_to_proto(view)

    @map_errors
    def ListWhitelist(
        self, request: pb.ListWhitelistRequest, context: grpc.ServicerContext
    ) -> pb.ListWhitelistResponse:
        entries, token = register_handlers.list_whitelist(
            self._uow(), self._ctx, request.region, request.page_size, request.page_token
        )
        return pb.ListWhitelistResponse(
            entries=[convert.entry_to_proto(e) for e in entries], next_page_token=token
        )

    @map_errors
    def ReportEvent(
        self, request: pb.ReportEventRequest, context: grpc.ServicerContext
    ) -> pb.EnterpriseStatus:
        view = register_handlers.report_event(
            self._uow(), self._ctx, convert.event_to_dict(request.event), current_caller()
        )
        return convert.status_to_proto(view)

    @map_errors
    def CheckInspection(
        self, request: pb.CheckInspectionRequest, context: grpc.ServicerContext
    ) -> pb.InspectionVerdict:
        result = inspection_handlers.check_inspection(
            self._uow(), self._ctx, convert.check_request_to_dict(request), current_caller()
        )
        return convert.verdict_to_proto(result)

    @map_errors
    def VerifyInspectionCode(
        self, request: pb.VerifyInspectionCodeRequest, context: grpc.ServicerContext
    ) -> pb.Inspection:
        return convert.inspection_to_proto(
            inspection_handlers.verify_code(self._uow(), request.code)
        )


def context_from(
    rulebook: Rulebook, today: Callable[[], date] = today_shanghai
) -> handlers.RulesContext:
    return handlers.RulesContext(
        catalogue=rulebook.catalogue,
        policy=rulebook.policy,
        fact_types=rulebook.fact_types,
        engine=engine_for(rulebook.catalogue),
        today=today,
    )


RunningServer = common_server.RunningServer
# the methods that never touch the register: served even while the database hangs
DB_FREE = frozenset(
    f"/{SERVICE_NAME}/{m}" for m in ("Evaluate", "EvaluateStream", "ListStandards", "GetStandard")
)


def create_server(
    rulebook: Rulebook,
    *,
    engine: Engine | None = None,
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
    today: Callable[[], date] = today_shanghai,
    security: Security | None = None,
    limits: common_server.Limits | None = None,
) -> tuple[grpc.Server, int]:
    """Build (not start) the rules server bound to `address`; port 0 picks a free port.

    `engine` is the register's database, already migrated; without it the register RPCs
    answer FAILED_PRECONDITION. `today` is the clock (tests pin it). `security` adds
    authentication, rate limits and TLS. `max_workers` sizes both thread pools unless
    `limits` says otherwise.
    """
    running = build(
        rulebook,
        engine=engine,
        address=address,
        limits=limits or common_server.Limits(max_workers, max_workers),
        today=today,
        security=security,
    )
    return running.server, running.port


def build(
    rulebook: Rulebook,
    *,
    engine: Engine | None,
    address: str,
    limits: common_server.Limits | None = None,
    max_workers: int = 8,
    today: Callable[[], date] = today_shanghai,
    security: Security | None = None,
) -> RunningServer:
    security = security or Security()
    start_mappers()  # once, before serving: concurrent first calls must not map it again
    server, pools = common_server.new_server(
        limits=limits or common_server.Limits(max_workers, max_workers),
        db_free=DB_FREE,
        interceptors=security.interceptors(RULES_METHODS),
    )
    servicer = RulesServicer(context_from(rulebook, today), engine)
    rules_pb2_grpc.add_RulesServiceServicer_to_server(servicer, server)
    checker = common_server.add_health_and_reflection(server, [SERVICE_NAME])
    port = common_server.bind_port(server, address, security.tls)
    return RunningServer(server, port, checker, pools)
