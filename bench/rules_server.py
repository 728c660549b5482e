"""The rules server exactly as `python -m services.rules serve` starts it, plus a bare
echo service for the benchmarks' same-run baseline (bench-only; never in production).

`python -m bench.rules_server serve ...` takes serve's flags. Three things differ from
`services.rules`, all for the echo: a generic-handler service `bench.Echo` (methods
`Unary` and `Stream`, raw bytes in, the same bytes out, no (de)serialisation) is added to
the real server before it starts; its methods are open to the `rules.evaluate` scope; and
they run on the pool of the database-free methods, as Evaluate does. The echo therefore
passes the same interceptors as Evaluate (admission, one log line per call, malformed
bytes, bearer token and rate limit): the ratio measures what the rules service does per
call beyond what any RPC on this server costs. `--processes N` children run this module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from services.common import processes
from services.common.auth import rule
from services.rules.entrypoints import cli, grpc_server
from services.rules.entrypoints.access import RULES_METHODS

ECHO_SERVICE = "bench.Echo"
ECHO_UNARY = f"/{ECHO_SERVICE}/Unary"
ECHO_STREAM = f"/{ECHO_SERVICE}/Stream"


def _unary(request: bytes, _context: grpc.ServicerContext) -> bytes:
    return request


def _stream(requests: Iterator[bytes], _context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from requests


ECHO_HANDLER = grpc.method_handlers_generic_handler(
    ECHO_SERVICE,
    {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.stream_stream_rpc_method_handler(_stream),
    },
)


def _with_echo(build: Any) -> Any:
    def built(*args: Any, **kwargs: Any) -> Any:
        running = build(*args, **kwargs)
        running.server.add_generic_rpc_handlers((ECHO_HANDLER,))
        return running

    return built


def _children_run_this(run_children: Any) -> Any:
    def run(_module: str, argv: Sequence[str], count: int, address: str) -> int:
        return int(run_children("bench.rules_server", argv, count, address))

    return run


def main(argv: Sequence[str] | None = None) -> int:
    for method in (ECHO_UNARY, ECHO_STREAM):
        RULES_METHODS[method] = rule("rules.evaluate")
    grpc_server.DB_FREE = grpc_server.DB_FREE | {ECHO_UNARY, ECHO_STREAM}
    grpc_server.build = _with_echo(grpc_server.build)
    processes.run_children = _children_run_this(processes.run_children)
    return cli.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
