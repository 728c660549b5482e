"""Run an ASGI app with uvicorn in a background thread (booking's phone page shares the
process with its gRPC server); port 0 picks a free port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from ssl import CERT_REQUIRED
from typing import Any

import uvicorn

from services.common.config import OperatorError
from services.common.server import TlsFiles, cannot_listen


@dataclass
class HttpServer:
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_http(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    tls: TlsFiles | None = None,
    trusted_proxies: str = "",
) -> HttpServer:
    """Serve `app` on a thread; with `tls`, HTTPS (and with its client_ca, clients must
    present a certificate signed by it: mutual TLS, as on the gRPC port).
    `trusted_proxies`: the reverse proxies (comma-separated addresses or networks) whose
    X-Forwarded-For and X-Forwarded-Proto name the client and its scheme (review 64 F6:
    behind a proxy every client had the proxy's address, so one stranger's failed
    sign-ins refused every staff member's and the city shared one address's code
    requests); "" trusts no header (a header from anyone else is never read)."""
    ssl: dict[str, Any] = {}
    if tls is not None:
        ssl = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
        if tls.client_ca is not None:
            ssl |= {"ssl_ca_certs": str(tls.client_ca), "ssl_cert_reqs": CERT_REQUIRED}
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # its records go to the root handler, which masks (common/logging)
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        **ssl,
    )
    server = uvicorn.Server(config)  # off the main thread it installs no signal handlers
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OperatorError(cannot_listen("HTTP", f"{host}:{port}"))
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return HttpServer(server, thread, int(bound))
