"""`python -m bench.report_event_sql`: what a ReportEventStream's groups cost in this
process and in PostgreSQL's backend, phase by phase (no gRPC, one stream's thread).

Set-up as bench/register_rpcs.py's (a fresh database, `--firms` generated firms
re-evaluated once, events with new event_ids spread over the firms). `--events` events
then go through the servicer's stream path (`RulesServicer._reported`) in groups of
`--group`. Printed per event: the wall time, this process's CPU, and the CPU of the
transaction's PostgreSQL backend (read from /proc before and after each phase; every
phase ends with its results read, so its work is done) for the group's reads (the lock
and the read pipeline), the reads before sealing (chain heads, ids, blockers), the
write pipeline and the commit. pg_stat_statements is not needed (the shared server
does not preload it). PostgreSQL only, and only where its processes are visible (/proc).
A figure to compare before and after a change of the write path, not a throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import harness, register_rpcs
from bench.register import database
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.context import Principal, bind, call_scope
from services.common.db import driver_of, make_engine
from services.common.unit_of_work import BaseUnitOfWork
from services.rules.adapters import bulk_reevaluation as bulk
from services.rules.adapters.orm import start_mappers
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server
from tests.support import RULESETS

TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """CPU seconds so far of PostgreSQL backend `pid` (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Phases:
    """The backend CPU of each phase, summed over the groups (monkeypatched in place)."""

    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()

    @contextlib.contextmanager
    def timed(self, label: str, connection: Any) -> Iterator[None]:
        pid = driver_of(connection).info.backend_pid
        start = backend_cpu(pid)
        try:
            yield
        finally:
            self.cpu[label] += backend_cpu(pid) - start

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The phases timed while the block runs; everything put back after it."""
        saved = (
            bulk.BatchRegister.group_reads,
            bulk._before_seal,
            bulk._one_round_trip,
            BaseUnitOfWork.commit,
        )
        self._install()
        try:
            yield
        finally:
            (
                bulk.BatchRegister.group_reads,  # type: ignore[method-assign]
                bulk._before_seal,
                bulk._one_round_trip,  # type: ignore[assignment]
                BaseUnitOfWork.commit,  # type: ignore[method-assign]
            ) = saved

    def _install(self) -> None:
        reads = bulk.BatchRegister.group_reads

        def group_reads(register: Any, *args: Any, **kwargs: Any) -> Any:
            with self.timed("the group's reads (lock, read pipeline)", register._connection):
                return reads(register, *args, **kwargs)

        bulk.BatchRegister.group_reads = group_reads  # type: ignore[method-assign]
        before_seal = bulk._before_seal

        def sealing(connection: Any, *args: Any, **kwargs: Any) -> Any:
            with self.timed("before sealing (heads' lock, ids, blockers)", connection):
                return before_seal(connection, *args, **kwargs)

        bulk._before_seal = sealing
        round_trip = bulk._one_round_trip

        @contextlib.contextmanager
        def writes(connection: Any) -> Iterator[None]:
            with self.timed("the write pipeline", connection), round_trip(connection):
                yield

        bulk._one_round_trip = writes  # type: ignore[assignment]
        commit = BaseUnitOfWork.commit

        def committed(uow: BaseUnitOfWork) -> None:
            with self.timed("commit", uow.session.connection()):
                commit(uow)

        BaseUnitOfWork.commit = committed  # type: ignore[method-assign]


class _Call:
    """The little of a gRPC context the stream path asks."""

    def time_remaining(self) -> None:
        return None

    def is_active(self) -> bool:
        return True


def run(firms: int, count: int, group: int, seed: int) -> None:
    phases = Phases()
    with (
        phases.installed(),
        harness.scratch() as folder,
        database("postgresql", folder) as url,
    ):
        ids = register_rpcs.prepare(url, firms, seed)
        engine = make_engine(url)
        start_mappers()
        ctx = grpc_server.context_from(load_rulebook(RULESETS))
        servicer = grpc_server.RulesServicer(ctx, engine)
        sent = [pb.ReportEventRequest.FromString(p) for p in register_rpcs.events(ids, 0, "sql")]
        warm, measured = sent[:64], sent[64 : 64 + count]

        def report(part: list[pb.ReportEventRequest]) -> list[pb.ReportEventResult]:
            return servicer._reported(part, "bench", _Call())

        with call_scope():
            bind(Principal("bench"))
            report(warm)
            phases.cpu.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            for n in range(0, len(measured), group):
                for result in report(measured[n : n + group]):
                    result.SerializeToString()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        engine.dispose()
    n = len(measured)
    total = sum(phases.cpu.values())
    print(f"{n} events in groups of {group}, µs an event:")
    print(f"  wall {wall / n * 1e6:,.0f}; this process's CPU {cpu / n * 1e6:,.0f}")
    print(f"  PostgreSQL backend CPU {total / n * 1e6:,.0f}, of which:")
    for label, seconds in phases.cpu.most_common():
        print(f"    {label}: {seconds / n * 1e6:,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firms", type=int, default=2000)
    parser.add_argument("--events", type=int, default=3200)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args(argv)
    for name in ("firms", "events", "group"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be 1 or more")
    run(args.firms, args.events, args.group, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
