"""The RulesService servicer: proto ↔ domain translation and nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from grpc_health.v1.health import HealthServicer

from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.grpc_errors import internal_status, is_domain_error, map_errors, status_proto
from services.rules.adapters.engine import engine_for
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.errors import NotFound
from services.rules.entrypoints import convert
from services.rules.service_layer import handlers

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RulesService"].full_name


class RulesServicer(rules_pb2_grpc.RulesServiceServicer):
    def __init__(self, ctx: handlers.RulesContext) -> None:
        self._ctx = ctx

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
            raise NotFound(f"no standard {request.standard_id!r}; known: {known}")
        return convert.standard_to_proto(standard, with_clauses=True)


def context_from(rulebook: Rulebook) -> handlers.RulesContext:
    return handlers.RulesContext(
        catalogue=rulebook.catalogue,
        policy=rulebook.policy,
        fact_types=rulebook.fact_types,
        engine=engine_for(rulebook.catalogue),
    )


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: HealthServicer


def create_server(
    rulebook: Rulebook, *, address: str = "127.0.0.1:0", max_workers: int = 8
) -> tuple[grpc.Server, int]:
    """Build (not start) the rules server bound to `address`; port 0 picks a free port."""
    running = build(rulebook, address=address, max_workers=max_workers)
    return running.server, running.port


def build(rulebook: Rulebook, *, address: str, max_workers: int) -> RunningServer:
    server = common_server.new_server(max_workers=max_workers)
    rules_pb2_grpc.add_RulesServiceServicer_to_server(RulesServicer(context_from(rulebook)), server)
    checker = common_server.add_health_and_reflection(server, [SERVICE_NAME])
    port = common_server.bind(server, address)
    return RunningServer(server, port, checker)
