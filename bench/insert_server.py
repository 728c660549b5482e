"""A service exactly as its `serve` starts it, plus a bare single-row insert RPC on the
same database: the same-run baseline of the register's and booking's write benchmarks
(bench-only; never in production).

`python -m bench.insert_server rules serve ...` or `... booking serve ...` takes the
service's own flags. The one addition is a generic-handler service `bench.Insert`, method
`Row`: it inserts the request bytes as one row of `bench_rows` (a bench-only table made
here, on the service's own engine and connection pool) in a transaction of its own and
commits, answering empty bytes. It runs on the pool of the database methods and passes
the same interceptors (admission, one log line per call, malformed bytes): the ratio
measures what UpsertEnterprise, ReportEvent or CreateOrder do beyond one committed insert.
Method `Rows` is its stream (the baseline of ReportEventStream): each message one row
inserted and committed in a transaction of its own, exactly as `Row`, answered with empty
bytes before the next message is read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    insert,
)

from services.common.migrations import MIGRATION_LOCK

INSERT_SERVICE = "bench.Insert"
INSERT_ROW = f"/{INSERT_SERVICE}/Row"
INSERT_ROWS = f"/{INSERT_SERVICE}/Rows"

BENCH_ROWS = Table(
    "bench_rows",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("payload", LargeBinary, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


def _create_rows_table(engine: Engine) -> None:
    """`bench_rows`, made once however many server processes start at once (`serve
    --processes N`: each child builds its own handler, and two CREATE TABLEs at once
    collide in PostgreSQL's catalog, failing one child): on PostgreSQL under the advisory
    lock the services' migrations take for the same reason (`MIGRATION_LOCK`), on SQLite
    in a write transaction (one writer at a time)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        BENCH_ROWS.create(conn, checkfirst=True)


def insert_handler(engine: Engine) -> grpc.GenericRpcHandler:
    """`bench.Insert/Row`: one committed single-row insert per call; `Rows`: the same
    for each message of a stream."""
    _create_rows_table(engine)

    def row(request: bytes, _context: grpc.ServicerContext) -> bytes:
        with engine.begin() as conn:
            conn.execute(insert(BENCH_ROWS).values(payload=request, at=datetime.now(UTC)))
        return b""

    def rows(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            yield row(request, context)

    return grpc.method_handlers_generic_handler(
        INSERT_SERVICE,
        {
            "Row": grpc.unary_unary_rpc_method_handler(row),
            "Rows": grpc.stream_stream_rpc_method_handler(rows),
        },
    )


def _with_insert(build: Any, engine_of: Any) -> Any:
    def built(*args: Any, **kwargs: Any) -> Any:
        running = build(*args, **kwargs)
        running.server.add_generic_rpc_handlers((insert_handler(engine_of(args, kwargs)),))
        return running

    return built


def _children_run_this(run_children: Any) -> Any:
    """`serve --processes N` starts its children as this module (by name: run as
    `python -m`, its __name__ is "__main__"); their argv (from sys.argv) already begins
    with the service."""

    def run(_module: str, argv: Sequence[str], count: int, address: str) -> int:
        return int(run_children("bench.insert_server", list(argv), count, address))

    return run


def main(argv: Sequence[str]) -> int:
    from services.common import processes

    service, rest = argv[0], list(argv[1:])
    processes.run_children = _children_run_this(processes.run_children)  # type: ignore[assignment]
    if service == "rules":
        from services.rules.entrypoints import access, cli, grpc_server

        for method in (INSERT_ROW, INSERT_ROWS):
            access.RULES_METHODS[method] = access.RULES_METHODS[
                "/rules.v1.RulesService/UpsertEnterprise"
            ]
        grpc_server.build = _with_insert(grpc_server.build, lambda a, k: k["engine"])  # type: ignore[assignment]
        return int(cli.main(rest))
    from services.booking.entrypoints import access as booking_access
    from services.booking.entrypoints import cli as booking_cli
    from services.booking.entrypoints import grpc_server as booking_grpc

    booking_access.BOOKING_METHODS[INSERT_ROW] = booking_access.BOOKING_METHODS[
        "/booking.v1.BookingService/UpsertExpert"
    ]

    booking_grpc.build = _with_insert(booking_grpc.build, lambda a, k: a[1])  # type: ignore[assignment]
    return int(booking_cli.main(rest))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
