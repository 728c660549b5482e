"""What both gRPC servers share: options, interceptors, health, reflection, shutdown."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine

from services.common.interceptors import LoggingInterceptor
from services.common.malformed import MalformedRequestInterceptor

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a 5 MB photo plus its envelope
_log = structlog.get_logger("server")


def new_server(
    *, max_workers: int, interceptors: Sequence[grpc.ServerInterceptor] = ()
) -> grpc.Server:
    """A grpc.Server with message limits, keepalive and the per-RPC logging interceptor."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 60_000),
    ]
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        # logging outermost (it sees refusals); bad bytes are refused before anything else
        interceptors=[LoggingInterceptor(), MalformedRequestInterceptor(), *interceptors],
        options=options,
        maximum_concurrent_rpcs=max_workers * 16,
    )


def add_health_and_reflection(
    server: grpc.Server, service_names: Iterable[str]
) -> health.HealthServicer:
    """Serve grpc.health.v1 (per service, SERVING) and server reflection."""
    names = list(service_names)
    checker = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ["", *names]:
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return checker


def bind(server: grpc.Server, address: str) -> int:
    """Bind an insecure port; port 0 picks a free one. Raises if the address is taken."""
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC address {address}")
    return port


def serve_until_signalled(
    server: grpc.Server,
    checker: health.HealthServicer,
    grace_seconds: float = 15.0,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Block until SIGTERM/SIGINT, then refuse new calls and let in-flight calls finish."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        _log.info("shutting down", signal=signal.Signals(signum).name, grace_seconds=grace_seconds)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    stop.wait()
    checker.enter_graceful_shutdown()
    server.stop(grace_seconds).wait()
    if on_stop:
        on_stop()
    _log.info("stopped")


def watch_database(
    engine: Engine,
    checker: health.HealthServicer,
    service_names: Iterable[str],
    interval: float = 5.0,
) -> threading.Event:
    """Report NOT_SERVING while the database is unreachable; returns an Event that stops it."""
    names = ["", *service_names]
    stop = threading.Event()

    def loop() -> None:
        last = None
        while not stop.is_set():
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
                status = health_pb2.HealthCheckResponse.SERVING
            except Exception as exc:  # any failure to reach the database
                status = health_pb2.HealthCheckResponse.NOT_SERVING
                if last != status:
                    _log.warning("database unreachable", error=str(exc).splitlines()[0])
            if status != last:
                for name in names:
                    checker.set(name, status)
                last = status
            stop.wait(interval)

    threading.Thread(target=loop, name="db-health", daemon=True).start()
    return stop


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key (PEM); with client_ca, clients must present a certificate
    signed by it (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def bind_port(server: grpc.Server, address: str, tls: TlsFiles | None = None) -> int:
    """Bind `address` in plain text or TLS; port 0 picks a free one."""
    if tls is None:
        return bind(server, address)
    credentials = grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
        require_client_auth=tls.client_ca is not None,
    )
    port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"could not bind gRPC address {address}")
    return port
