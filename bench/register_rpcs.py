"""`python -m bench.register_rpcs`: UpsertEnterprise and ReportEvent at 8 and 32 in
flight on SQLite and PostgreSQL, each beside a bare single-row insert RPC on the same
database, served by the same server process (bench/insert_server.py), measured through
the same client in the same round (bench/harness.py: client processes of their own,
their CPU share shown). ReportEventStream the same way, beside the bare insert's stream
(each message one committed insert): `--streams 1x32 2x16` is one stream with a window
of 32 unanswered events, and two streams of 16 (one client process each), 32 in flight.

Set-up per database (not measured): a fresh database, `--firms` generated firms
(services/common/workload.py) bulk-inserted and re-evaluated once so each has a decision,
then `--warm-up` ReportEvents through the server (two per firm by default: events,
decisions, audit entries and changes, as a register in service holds). Every ReportEvent
carries a new event_id (a repeated one would be a cheap replay), spread over the firms;
UpsertEnterprise resends the firms' profiles with a changed head count. No warm-up loop
within a figure (it would resend the first requests): the first calls of each figure
include connecting, the same for the baseline.

PostgreSQL's tables are kept as production's autovacuum keeps them (this machine's
PostgreSQL runs without autovacuum): VACUUM ANALYZE once the warm-up's events are in, and
again before each round. Without that the planner kept what the one ANALYZE of set-up
told it, with no event yet and every change of the feed unpositioned, and each pooled
connection's plans got dearer with every round (stop 27): the feed worker's look for an
unpositioned change scanned every change (1.1, 5.2, 7.6 ms in rounds 1–3; 0.01 ms by its
partial index), a group's quiet events went from 0.1 to 2.4 ms, and its history's join
read each firm's events once for each of its decisions (2,240 buffers for 16 firms at
12,000 events, 320 by ix_events_decision). A group's history still grows over the rounds
as the firms' decisions near its limit of 20 (about 3 a firm after the warm-up, 8 at the
end of round 3): that is the register's state, not a plan.

`--processes N` runs the server as `serve --processes N` (without --http, which serves
from one process); the bare insert RPC is then served by every process too, so the
ratio stays like for like.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from concurrent import futures
from datetime import date
from pathlib import Path

import grpc

from bench import harness
from bench.insert_server import INSERT_ROW, INSERT_ROWS
from bench.register import AS_OF, analyzed, database, load_register, profiled
from services.common import workload
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.db import make_engine
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from services.rules.service_layer.reevaluation import reevaluate_all
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.support import RULESETS

UPSERT = "/rules.v1.RulesService/UpsertEnterprise"
REPORT = "/rules.v1.RulesService/ReportEvent"
REPORT_STREAM = "/rules.v1.RulesService/ReportEventStream"
# a ReportEventResult whose `error` (field 2, length-delimited) is set
RESULT_ERROR = bytes([2 << 3 | 2])
METHODS = ("UpsertEnterprise", "ReportEvent", "ReportEventStream")
PER_ROUND = 20_000  # distinct requests per figure and round: more than any round sends


def prepare(url: str, firms: int, seed: int) -> list[str]:
    """Load and re-evaluate the register; the firms' ids."""
    load_register(url, firms, seed)
    engine = make_engine(url)
    ctx = grpc_server.context_from(load_rulebook(RULESETS))
    reevaluate_all(UnitOfWork(engine), ctx, date.fromisoformat(AS_OF), batch_size=500)
    engine.dispose()
    analyzed(url)
    return [str(p["enterprise_id"]) for p in workload.profiles(firms, seed=seed)]


def warm_up(
    address: str, requests: Sequence[bytes], in_flight: int, auth: tuple[tuple[str, str], ...]
) -> None:
    """Send `requests` (serialised ReportEvent requests), `in_flight` at a time, before
    the measured rounds: the tables the rounds write to hold rows, as in service."""
    with (
        grpc.insecure_channel(address) as channel,
        futures.ThreadPoolExecutor(max(1, in_flight)) as pool,
    ):
        call = channel.unary_unary(REPORT)  # bytes in, bytes out
        for done in pool.map(lambda r: call(r, timeout=60, metadata=auth), requests):
            assert done  # an error raises grpc.RpcError here


def upserts(firms: int, seed: int, round_no: int) -> tuple[bytes, ...]:
    profiles = list(workload.profiles(firms, seed=seed))
    out = []
    for n in range(min(PER_ROUND, 4 * firms)):
        data = dict(profiles[n % firms], employees=10 + (n + round_no) % 200)
        # as of today (or the firm's later decision): the register moves forward only,
        # and the rounds' events have decided the firms as of today
        request = pb.UpsertEnterpriseRequest(profile=profile_from_json(data))
        out.append(request.SerializeToString())
    return tuple(out)


def events(ids: list[str], round_no: int, tag: str) -> tuple[bytes, ...]:
    out = []
    for n in range(PER_ROUND):
        event = pb.EnterpriseEvent(
            event_id=f"bench-{tag}-{round_no}-{n}",
            enterprise_id=ids[n % len(ids)],
            kind=pb.EVENT_KIND_ACCIDENT,
            occurred_on="2026-06-01",
            accident=pb.AccidentDetail(level=pb.ACCIDENT_LEVEL_GENERAL),
        )
        out.append(pb.ReportEventRequest(event=event).SerializeToString())
    return tuple(out)


def streams(spec: str) -> tuple[int, int]:
    """ "2x16" → (2 streams, a window of 16 each)."""
    count, _, window = spec.partition("x")
    return int(count), int(window)


def run_database(kind: str, args: argparse.Namespace) -> list[harness.Pair]:
    pairs = {
        (name, flight): harness.Pair(
            f"{name}, {flight} in flight ({kind})", "bare insert RPC", "calls/s"
        )
        for name in ("UpsertEnterprise", "ReportEvent")
        if name in args.methods
        for flight in args.in_flight
    }
    if "ReportEventStream" in args.methods:
        for spec in args.streams:
            count, window = streams(spec)
            what = "1 stream" if count == 1 else f"{count} streams"
            pairs[("ReportEventStream", spec)] = harness.Pair(
                f"ReportEventStream, {count * window} in flight: {what} × window {window} ({kind})",
                "bare insert stream",
                "events/s",
            )
    with harness.scratch() as folder, database(kind, folder) as url:
        ids = prepare(url, args.firms, args.seed)
        token = harness.write_tokens(Path(folder), ["rules.read", "rules.write"])
        auth = (("authorization", f"Bearer {token}"),)
        port = harness.free_port()
        address = f"127.0.0.1:{port}"
        argv = ["bench.insert_server", "rules", "serve", "--grpc", address, "--db", url]
        if args.processes == 1:  # --http serves from one process
            argv += ["--http", f"127.0.0.1:{harness.free_port()}"]
        argv += ["--processes", str(args.processes), "--rulesets", str(RULESETS)]
        argv += ["--db-workers", str(args.db_workers)]
        argv += ["--tokens", str(Path(folder) / "tokens.json")]
        with harness.ServerProcess(argv, address, Path(folder) / "server.log").start() as server:
            blob = tuple(f"row-{n}".encode() * 8 for n in range(64))

            warm_up(address, events(ids, 0, "warm")[: args.warm_up], 32, auth)

            def stream_step(round_no: int) -> None:
                for spec in args.streams if "ReportEventStream" in args.methods else ():
                    count, window = streams(spec)
                    common = {
                        "in_flight": count * window,
                        "seconds": args.seconds,
                        "warmup": 0.0,
                        "clients": count,  # each stream from a process of its own
                        "channels": 1,
                        "stream": True,
                        "window": window,
                        "metadata": auth,
                    }
                    pair = pairs[("ReportEventStream", spec)]
                    base = harness.Load(address, INSERT_ROWS, blob, **common)
                    pair.baseline.append(harness.measure(base, server))
                    payloads = events(ids, round_no, f"s{spec}")
                    load = harness.Load(
                        address, REPORT_STREAM, payloads, error_prefix=RESULT_ERROR, **common
                    )
                    with profiled(server, args.profile, f"stream-{spec}-{kind}", round_no):
                        pair.project.append(harness.measure(load, server))
                    print(
                        f"  {kind} round {round_no + 1} ReportEventStream {spec}: "
                        f"{pair.project[-1].rate:,.0f}/s vs insert stream "
                        f"{pair.baseline[-1].rate:,.0f}/s",
                        file=sys.stderr,
                    )

            def step(round_no: int) -> None:
                analyzed(url, vacuum=True)  # as autovacuum would after the last round's writes
                for flight in args.in_flight:
                    clients = 1 if flight <= 8 else 2  # the load generator: its own processes
                    common = {
                        "in_flight": flight,
                        "seconds": args.seconds,
                        "warmup": 0.0,
                        "clients": clients,
                        "metadata": auth,
                    }
                    blob = tuple(f"row-{round_no}-{n}".encode() * 8 for n in range(64))
                    for name, method, payloads in (
                        ("UpsertEnterprise", UPSERT, upserts(args.firms, args.seed, round_no)),
                        ("ReportEvent", REPORT, events(ids, round_no, str(flight))),
                    ):
                        if name not in args.methods:
                            continue
                        pair = pairs[(name, flight)]
                        base = harness.Load(address, INSERT_ROW, blob, **common)
                        pair.baseline.append(harness.measure(base, server))
                        load = harness.Load(address, method, payloads, **common)
                        with profiled(server, args.profile, f"{name}-{flight}-{kind}", round_no):
                            pair.project.append(harness.measure(load, server))
                        print(
                            f"  {kind} round {round_no + 1} {name} @{flight}: "
                            f"{pair.project[-1].rate:,.0f}/s vs insert "
                            f"{pair.baseline[-1].rate:,.0f}/s",
                            file=sys.stderr,
                        )

            harness.rounds(args.rounds, [step, stream_step])
    return list(pairs.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--firms", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--db-workers", type=int, default=16)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes (`serve --processes N`, the bare insert served by each too)",
    )
    parser.add_argument(
        "--streams",
        nargs="+",
        default=["1x32", "2x16"],
        help="ReportEventStream's figures: STREAMSxWINDOW (one client process a stream)",
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--warm-up", type=int, help="ReportEvents sent before the rounds (default: twice --firms)"
    )
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--quick", action="store_true", help="300 firms, 1 round of 2 s")
    parser.add_argument("--profile", type=Path, help="py-spy the server in round 1 into DIR")
    args = parser.parse_args(argv)
    if args.quick:
        args.firms, args.rounds, args.seconds = 300, 1, 2.0
    if args.warm_up is None:
        args.warm_up = 2 * args.firms
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    print(harness.machine())
    pairs = [p for kind in kinds for p in run_database(kind, args)]
    print(harness.pair_table(pairs, whole=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
