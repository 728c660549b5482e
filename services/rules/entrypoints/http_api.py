"""The rules RPCs over HTTP/JSON (issue 14.12): `POST /v1/rules/<Method>` with the request
in the proto3 JSON mapping, answered by the same servicer, authenticator and rate limit
as the gRPC port (services/common/http_gateway.py). Also `GET /healthz` (the gRPC health
status of the service) and `GET /v1/openapi.json` (docs/openapi.json, generated from the
protos by scripts/gen_docs.py). EvaluateStream, ReportEventStream and WatchChanges
stream: gRPC only (`http_gateway.unary_methods` leaves out every method that streams).
"""

from __future__ import annotations

from pathlib import Path

from grpc_health.v1 import health_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.http_gateway import Gateway, GatewayContext, create_app, not_found_status
from services.rules.entrypoints.grpc_server import ITEMS_CHECKED, SERVICE_NAME, RunningServer

SERVICE = pb.DESCRIPTOR.services_by_name["RulesService"]
OPENAPI = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
EXTRA_PATHS = {"/healthz": "get", "/v1/openapi.json": "get"}  # besides the RPC routes


def create_http_app(running: RunningServer) -> Starlette:
    """The HTTP/JSON app of a built rules server (grpc_server.build)."""

    async def healthz(request: Request) -> Response:
        answer = running.health.Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), GatewayContext("", ())
        )
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        return PlainTextResponse("ok" if serving else "not serving", 200 if serving else 503)

    async def openapi(request: Request) -> Response:
        if not OPENAPI.is_file():  # an installed package without the docs/ folder
            return JSONResponse(not_found_status(request.url.path), status_code=404)
        return Response(OPENAPI.read_bytes(), media_type="application/json")

    gateway = Gateway(running.servicer, SERVICE, running.auth, ITEMS_CHECKED)
    return create_app(
        [gateway],
        [
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/openapi.json", openapi, methods=["GET"]),
        ],
    )
