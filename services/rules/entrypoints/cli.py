"""`python -m services.rules …`: serve, evaluate a file of profiles, or run the demo."""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import sleep
from typing import Any, TextIO

import grpc
import orjson
import structlog
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy import Engine
from tqdm import tqdm

from services.common import backup, demo_city, processes, security
from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.config import command_line, env_flag, run_command
from services.common.db import default_sqlite_url, make_engine
from services.common.grpc_errors import status_proto
from services.common.http_server import HttpServer, start_http
from services.rules.adapters import migrate
from services.rules.adapters.feed import FeedStore
from services.rules.adapters.feed_worker import (
    FEED_HEALTH_NAME,
    FeedWorker,
    JetStreamPublisher,
    NatsSettings,
)
from services.rules.adapters.ruleset_loader import RulesetError, load_rulebook
from services.rules.domain.errors import ValidationError
from services.rules.entrypoints import convert, grpc_server, http_api, render
from services.rules.service_layer import demo, handlers, reevaluation, register_handlers
from services.rules.service_layer.unit_of_work import UnitOfWork

DEFAULT_GRPC = "127.0.0.1:50051"
DEFAULT_HTTP = "127.0.0.1:8081"  # make run's HTTP/JSON gateway
PROGRESS_THRESHOLD = 200
_log = structlog.get_logger("rules")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run_command(_parser(), argv)
    except RulesetError as exc:
        print(f"ruleset error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = command_line("python -m services.rules", "Work-safety rules service", "RULES")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate the database, then start the gRPC server")
    env_flag(serve, "--grpc", "RULES_GRPC", DEFAULT_GRPC, "HOST:PORT to listen on")
    env_flag(
        serve,
        "--http",
        "RULES_HTTP",
        "",
        "HOST:PORT for HTTP/JSON (POST /v1/rules/<Method>, same tokens, TLS and limits); "
        "empty: gRPC only",
    )
    _common_flags(serve)
    security.add_flags(serve, "RULES")
    common_server.add_flags(serve, "RULES")
    env_flag(
        serve,
        "--processes",
        "RULES_PROCESSES",
        1,
        "server processes sharing the port (SO_REUSEPORT); 0: one per core",
        type=int,
    )
    serve.add_argument("--shared-port", action="store_true", help=argparse.SUPPRESS)
    _feed_flags(serve)
    serve.set_defaults(run=cmd_serve)

    demo = sub.add_parser("demo", help="what `make run` starts: the server plus how to call it")
    env_flag(demo, "--grpc", "RULES_GRPC", DEFAULT_GRPC, "HOST:PORT to listen on")
    env_flag(demo, "--http", "RULES_HTTP", DEFAULT_HTTP, "HOST:PORT for HTTP/JSON; empty: none")
    _common_flags(demo)
    security.add_flags(demo, "RULES")
    common_server.add_flags(demo, "RULES")
    _feed_flags(demo)
    demo.set_defaults(run=cmd_demo, processes=1, shared_port=False)  # one process

    prune = sub.add_parser(
        "prune-changes", help="delete delivered change-feed entries older than N days"
    )
    prune.add_argument("--older-than-days", type=int, required=True, help="retention in days")
    env_flag(prune, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    prune.set_defaults(run=cmd_prune_changes)
    backup.add_commands(sub, "RULES", "rules", audit_verify)  # and audit verify

    migrate = sub.add_parser("migrate", help="create or upgrade the register's schema")
    env_flag(migrate, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    migrate.set_defaults(run=cmd_migrate)

    again = sub.add_parser("reevaluate", help="re-evaluate stored firms (resumable)")
    again.add_argument("--all", action="store_true", required=True, help="every stored firm")
    again.add_argument("--as-of", default="", help="evaluation date (default today)")
    again.add_argument("--batch-size", type=int, default=200, help="firms per transaction")
    again.add_argument(
        "--processes",
        type=int,
        default=1,
        help="processes, each re-evaluating its own range of firm ids (0: one per core; "
        "worth it with spare cores beside the database server: on a 2-core machine that "
        "also runs PostgreSQL, 2 were slower than 1; SQLite's single writer makes them take "
        f"turns). A register of fewer than {reevaluation.MIN_RANGE} firms per process is not "
        "split; a resumed run keeps the ranges it started with",
    )
    again.add_argument("--range", default="", help=argparse.SUPPRESS)  # a child's range run
    _common_flags(again)
    again.set_defaults(run=cmd_reevaluate)

    evaluate = sub.add_parser("evaluate", help="evaluate a JSON or JSONL file of profiles")
    evaluate.add_argument("file", type=Path, help="a .json (object or list) or .jsonl file")
    evaluate.add_argument("--json", action="store_true", help="print one JSON decision per line")
    evaluate.add_argument("--as-of", default="", help="evaluation date YYYY-MM-DD (default today)")
    evaluate.add_argument(
        "--server",
        default="",
        help="evaluate through a running server at HOST:PORT, not in-process; a call the "
        "server's rate limit refuses is retried after its retry-after (up to 8 tries)",
    )
    env_flag(
        evaluate,
        "--token",
        "RULES_TOKEN",
        "",
        "bearer token for --server (scope rules.evaluate); under make run see var/dev-tokens.json",
    )
    env_flag(evaluate, "--rulesets", "RULES_RULESETS", "rulesets", "rulesets directory")
    evaluate.set_defaults(run=cmd_evaluate)
    return parser


def _feed_flags(parser: argparse.ArgumentParser) -> None:
    env_flag(
        parser,
        "--nats",
        "RULES_NATS",
        "",
        "NATS URL (nats://host:4222) to publish the change feed to JetStream; empty: gRPC only",
    )
    env_flag(parser, "--nats-stream", "RULES_NATS_STREAM", "RULES_CHANGES", "JetStream stream")
    env_flag(
        parser,
        "--nats-subject-prefix",
        "RULES_NATS_SUBJECT_PREFIX",
        "rules.changes",
        "subjects are <prefix>.<region token>.<enterprise_id>",
    )


def _common_flags(parser: argparse.ArgumentParser) -> None:
    env_flag(parser, "--rulesets", "RULES_RULESETS", "rulesets", "rulesets directory")
    env_flag(
        parser,
        "--db",
        "RULES_DB",
        default_sqlite_url("rules"),
        "database URL (sqlite:///… or postgresql+psycopg://…)",
    )


def _database(url: str, args: argparse.Namespace | None = None) -> Engine:
    """The migrated register; a server's (`args`) has its timeouts and pool size."""
    if args is None:
        engine = make_engine(url)
    else:
        limits = common_server.limits_from(args)
        engine = make_engine(
            url, pool_size=limits.db_workers, timeouts=common_server.timeouts_from(args)
        )
    migrate.upgrade(engine)
    return engine


def cmd_serve(args: argparse.Namespace) -> int:
    guard = security.from_args(args)  # before anything else: refuse to run open
    rulebook = load_rulebook(args.rulesets)
    count = args.processes or processes.cpu_count()
    if count > 1 and not args.shared_port:
        return serve_processes(args, count)
    engine = _database(args.db, args)
    running = grpc_server.build(
        rulebook,
        engine=engine,
        address=args.grpc,
        limits=common_server.limits_from(args),
        security=guard,
    )
    running.server.start()
    http = start_gateway(args, running, guard)
    watcher = common_server.watch_database(engine, running.health, [grpc_server.SERVICE_NAME])
    feed = start_feed(args, engine, running.health)
    _log.info(  # a child of `--processes N` says so; its parent says `listening` once
        "rules service process listening" if args.shared_port else "rules service listening",
        address=args.grpc,
        port=running.port,
        database=engine.url.render_as_string(hide_password=True),
        ruleset_version=rulebook.catalogue.version,
        standards=[s.id for s in rulebook.catalogue.standards],
    )
    if args.shared_port:
        processes.mark_ready()

    def stop_workers() -> None:
        watcher.set()
        feed.stop()
        if http is not None:
            http.stop()

    common_server.serve_until_signalled(running, on_stop=stop_workers)
    engine.dispose()
    return 0


def serve_processes(args: argparse.Namespace, count: int) -> int:
    """The parent of `serve --processes N`: migrate once, hold the port, supervise."""
    if getattr(args, "http", ""):
        print("--http serves from one process: run it with --processes 1", file=sys.stderr)
        return 2
    _database(args.db).dispose()  # once, before the children start
    held, address = processes.reserve_port(args.grpc)
    try:
        argv = _without(sys.argv[1:], "--processes", "--grpc")
        return processes.run_children(
            "services.rules",
            [*argv, "--grpc", address, "--processes", "1", "--shared-port"],
            count,
            address,
        )
    finally:
        held.close()


def _without(argv: Sequence[str], *flags: str) -> list[str]:
    """argv without the given flags and their values (`--flag v` or `--flag=v`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif not arg.startswith(tuple(f + "=" for f in flags)):
            out.append(arg)
    return out


def start_gateway(
    args: argparse.Namespace, running: grpc_server.RunningServer, guard: security.Security
) -> HttpServer | None:
    """--http: the HTTP/JSON gateway on its own port, same servicer, tokens, TLS, limits."""
    address = getattr(args, "http", "")
    if not address:
        return None
    host, _, port = address.rpartition(":")
    server = start_http(
        http_api.create_http_app(running), host or "127.0.0.1", int(port), tls=guard.tls
    )
    _log.info("rules HTTP/JSON listening", address=address, port=server.port, tls=bool(guard.tls))
    return server


def start_feed(args: argparse.Namespace, engine: Engine, health: Any) -> FeedWorker:
    """The change feed's worker: positions committed changes and, with --nats, publishes
    them; the feed's own health entry turns NOT_SERVING while NATS is unreachable."""
    from grpc_health.v1 import health_pb2

    publisher = None
    if args.nats:
        settings = NatsSettings(args.nats, args.nats_stream, args.nats_subject_prefix)
        publisher = JetStreamPublisher(settings, convert.change_json)
        health.set(FEED_HEALTH_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)

    def report(ok: bool) -> None:
        state = health_pb2.HealthCheckResponse
        health.set(FEED_HEALTH_NAME, state.SERVING if ok else state.NOT_SERVING)
        _log.info("change feed publisher", nats=args.nats, connected=ok)

    worker = FeedWorker(FeedStore(engine), publisher, report)
    worker.start()
    return worker


def cmd_prune_changes(args: argparse.Namespace) -> int:
    cutoff = datetime.now(UTC) - timedelta(days=args.older_than_days)
    removed = FeedStore(_database(args.db)).prune(cutoff)
    print(f"pruned {removed} change(s) delivered and recorded before {cutoff.isoformat()}")
    return 0


def seed_demo(args: argparse.Namespace, path: Path = Path("examples/profiles.jsonl")) -> int:
    """Register the valid example firms and the demo city's ~300 firms (make run), so
    the register RPCs, booking's history and the dashboard have data."""
    rulebook = load_rulebook(args.rulesets)
    engine = _database(args.db)
    ctx = grpc_server.context_from(rulebook)
    seeded = 0
    for _, data in read_profiles(path):
        try:
            register_handlers.upsert_enterprise(UnitOfWork(engine), ctx, data, "")
            seeded += 1
        except ValidationError:
            continue  # the examples include a deliberately invalid profile
    added = demo.seed_city(lambda: UnitOfWork(engine), ctx, demo_city.city(ctx.today()))
    _log.info("demo city", firms_added=added)
    engine.dispose()
    return seeded


def replay_demo_history(args: argparse.Namespace) -> threading.Thread:
    """Apply the demo city's year of booking events on their days (about a minute), in
    the background while the server starts and serves (service_layer/demo.py)."""

    def run() -> None:
        engine = _database(args.db)
        ctx = grpc_server.context_from(load_rulebook(args.rulesets))
        try:
            city = demo_city.city(ctx.today())
            applied = demo.replay_history(lambda: UnitOfWork(engine), ctx, city)
            _log.info("demo city history replayed", events_applied=applied)
        except Exception:  # a demo nicety: the server goes on serving
            _log.exception("demo city history not replayed")
        finally:
            engine.dispose()

    thread = threading.Thread(target=run, name="demo-history", daemon=True)
    thread.start()
    return thread


def audit_verify(url: str) -> int:
    from services.common.audit import verify_command
    from services.rules.adapters.orm import audit_head, audit_log

    return verify_command(_database(url), audit_log, audit_head)


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = _database(args.db)
    print(f"database at revision {migrate.current_revision(engine)}")
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    """Re-evaluate every firm: in this process, or split into ranges, one child process
    (this command with a hidden --range) per range; the parent reports the whole run."""
    engine = _database(args.db)
    as_of = handlers.parse_as_of(args.as_of) if args.as_of else None
    if args.range:
        ctx = grpc_server.context_from(load_rulebook(args.rulesets))
        reevaluation.run_range(UnitOfWork(engine), ctx, args.range, batch_size=args.batch_size)
        return 0
    parts = args.processes if args.processes > 0 else (os.cpu_count() or 1)
    when = as_of or handlers.parse_as_of("")
    started = reevaluation.start_run(UnitOfWork(engine), when, parts)
    with tqdm(total=started.total, unit="firm", file=sys.stderr, disable=None) as bar:
        if len(started.ranges) > 1 and parts > 1:
            failed = _reevaluate_in_processes(args, engine, started, when, bar)
        else:
            ctx = grpc_server.context_from(load_rulebook(args.rulesets))
            for range_id in started.ranges:
                reevaluation.run_range(
                    UnitOfWork(engine),
                    ctx,
                    range_id,
                    batch_size=args.batch_size,
                    on_batch=bar.update,
                )
            failed = 0
    summary = reevaluation.summary(
        UnitOfWork(engine), started.run_id, started.resumed, started.total
    )
    word = "resumed" if summary.resumed else "started"
    print(
        f"re-evaluation {summary.run_id[:8]} ({word}) as of {when}: "
        f"{summary.processed} of {summary.total} firm(s) done"
    )
    if failed:
        print(f"{failed} range process(es) failed (see their log); run the command again to resume")
    if summary.attention:
        print(
            f"{len(summary.attention)} firm(s) re-evaluated whose stored profile a person "
            "should settle (see the log line of each): a retired fact key to re-enter with "
            "UpsertEnterprise, venues or hazchem_roles to add, a region that "
            "rulesets/regions.yaml does not list, or an open hazard citing a "
            "renumbered clause (close it with HAZARD_VERIFIED and report it again under the "
            f"new number; CHANGELOG.md): {', '.join(summary.attention)}"
        )
    if summary.skipped:
        print(
            f"{len(summary.skipped)} firm(s) skipped, their stored profile no longer "
            f"validates (send UpsertEnterprise to correct): {', '.join(summary.skipped)}"
        )
    return 2 if failed else 1 if summary.skipped else 0


def _reevaluate_in_processes(
    args: argparse.Namespace, engine: Engine, started: reevaluation.Started, when: Any, bar: Any
) -> int:
    """One child per range of the run; the bar follows the runs' records. Returns how
    many children failed (their ranges stay unfinished, for a later resume)."""
    base = [sys.executable, "-m", "services.rules", "reevaluate", "--all", "--as-of"]
    base += [when.isoformat(), "--db", args.db, "--rulesets", str(args.rulesets)]
    base += ["--batch-size", str(args.batch_size), "--processes", "1"]
    children = [
        subprocess.Popen([*base, "--range", range_id], stdout=subprocess.DEVNULL)
        for range_id in started.ranges
    ]
    shown = 0
    while any(c.poll() is None for c in children):
        sleep(1.0)
        if not bar.disable:
            done = reevaluation.summary(
                UnitOfWork(engine), started.run_id, started.resumed, started.total
            ).processed
            bar.update(done - shown)
            shown = done
    return sum(c.returncode != 0 for c in children)


def cmd_demo(args: argparse.Namespace) -> int:
    seeded = seed_demo(args)
    replay_demo_history(args)
    host, _, port = args.grpc.rpartition(":")
    print(
        f"\nRules service starting on {args.grpc}; register {args.db}\n"
        f"{seeded} demo firm(s) from examples/profiles.jsonl and the demo city's firms "
        "(services/common/demo_city.py: six streets) are in the register.\n"
        "Try, in another terminal:\n"
        "  .venv/bin/python -m services.rules evaluate examples/profiles.jsonl\n"
        f"  RULES_TOKEN=<dev-enforcement token from var/dev-tokens.json> "
        f".venv/bin/python -m services.rules evaluate --server {host}:{port} "
        "examples/profiles.jsonl --json\n"
        f'  grpcurl -plaintext -H "authorization: Bearer <token>" '
        f'-d \'{{"enterprise_id": "91330782MA2000001K"}}\' '
        f"{host}:{port} rules.v1.RulesService/GetEnterpriseStatus   (reflection is on)\n"
        + (
            f'  curl -H "authorization: Bearer <token>" -H "content-type: application/json" '
            f'-d \'{{"enterpriseId": "91330782MA2000001K"}}\' '
            f"http://{args.http}/v1/rules/GetEnterpriseStatus   (HTTP/JSON)\n"
            if args.http
            else ""
        )
        + "Stop with Ctrl-C.\n",
        file=sys.stderr,
    )
    return cmd_serve(args)


def read_profiles(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line or index, profile dict) from a .jsonl or .json file, lazily for JSONL."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield number, _loads(line)
                    except json.JSONDecodeError as exc:
                        yield number, _Unreadable(str(exc))
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data if isinstance(data, list) else [data]
    yield from enumerate(items, 1)


def _loads(line: str) -> Any:
    """One JSONL line: orjson (several times faster), or the standard library for what
    orjson refuses (NaN, huge integers), which also words any error as before."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


class _Unreadable:
    def __init__(self, why: str) -> None:
        self.why = why


def _count(path: Path) -> int | None:
    if path.suffix != ".jsonl":
        return None
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    total = _count(args.file)
    bar = tqdm(
        total=total,
        unit="firm",
        file=sys.stderr,
        disable=None if (total or 0) >= PROGRESS_THRESHOLD else True,
    )
    failures = 0
    try:
        if args.server:
            results = _remote_batches(read_profiles(args.file), args)
        else:
            evaluate = _local(args.rulesets)
            results = (
                (w, d, _decided(evaluate, d, args.as_of)) for w, d in read_profiles(args.file)
            )
        for where, data, decision in results:
            failures += not _print(where, data, decision, args, sys.stdout)
            bar.update(1)
    finally:
        bar.close()
    if failures:
        print(f"{failures} profile(s) rejected", file=sys.stderr)
    return 1 if failures else 0


def _decided(evaluate: Any, data: Any, as_of: str) -> pb.Decision | None:
    return None if isinstance(data, _Unreadable) else evaluate(data, as_of)


def _print(
    where: int, data: Any, decision: pb.Decision | None, args: argparse.Namespace, out: TextIO
) -> bool:
    """Print one profile's decision; return False when it was rejected."""
    if isinstance(data, _Unreadable) or decision is None:
        print(f"#{where}: not valid JSON: {getattr(data, 'why', '')}", file=out)
        return False
    if decision.HasField("error"):
        if args.json:
            out.write(
                json.dumps({"item": where, **convert.message_to_dict(decision)}, ensure_ascii=False)
                + "\n"
            )
        else:
            out.write(render.rejection(where, decision.error))
        return False
    if args.json:
        out.write(json.dumps(convert.message_to_dict(decision), ensure_ascii=False) + "\n")
    else:
        out.write(render.decision_text(decision, str(_get(data, "name"))))
    return True


BATCH = 500  # profiles per EvaluateBatch message
IN_FLIGHT = 3  # batches sent ahead of the one being printed: memory stays constant
CHANNELS = 4  # connections, batches round-robin: `serve --processes N` spreads connections


@dataclass
class _Item:
    """One line of the file on its way through EvaluateBatch."""

    where: int
    data: Any
    request: pb.EvaluateRequest | None = None  # None: answered here, never sent
    answer: pb.Decision | None = None  # the decision, or why the line is not a profile


def _remote_batches(
    profiles: Iterator[tuple[int, Any]], args: argparse.Namespace
) -> Iterator[tuple[int, Any, pb.Decision | None]]:
    """Stream a file of any size through EvaluateBatch: BATCH profiles a message, IN_FLIGHT
    messages ahead, results in file order, retried as the server says when refused."""
    # one connection each (no shared subchannel), so the kernel can hand each to another
    # server process of `serve --processes N`
    channels = [
        grpc.insecure_channel(args.server, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    stubs = itertools.cycle([rules_pb2_grpc.RulesServiceStub(c) for c in channels])
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else ()
    pending: collections.deque[tuple[Any, list[_Item], Any]] = collections.deque()
    try:
        for chunk in _chunks(profiles, args.as_of):
            stub = next(stubs)
            pending.append((stub, chunk, _send(stub, chunk, metadata)))
            if len(pending) > IN_FLIGHT:
                yield from _receive(*pending.popleft(), metadata)
        while pending:
            yield from _receive(*pending.popleft(), metadata)
    finally:
        for channel in channels:
            channel.close()


def _chunks(profiles: Iterator[tuple[int, Any]], as_of: str) -> Iterator[list[_Item]]:
    chunk: list[_Item] = []
    for where, data in profiles:
        chunk.append(_item(where, data, as_of))
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _item(where: int, data: Any, as_of: str) -> _Item:
    if isinstance(data, _Unreadable):
        return _Item(where, data)  # printed as not valid JSON
    request = pb.EvaluateRequest(as_of=as_of)
    try:
        request.profile.CopyFrom(convert.profile_from_json(data))
    except Exception as exc:
        refused = pb.Decision(
            enterprise_id=str(_get(data, "enterprise_id")),
            error=_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:200]),
        )
        return _Item(where, data, answer=refused)
    return _Item(where, data, request)


def _send(stub: Any, chunk: list[_Item], metadata: Any) -> Any:
    items = [i.request for i in chunk if i.request is not None]
    if not items:
        return None
    return stub.EvaluateBatch.future(
        pb.EvaluateBatchRequest(items=items), timeout=120, metadata=metadata
    )


def _receive(
    stub: Any, chunk: list[_Item], future: Any, metadata: Any
) -> Iterator[tuple[int, Any, pb.Decision | None]]:
    """The chunk's decisions in order, waiting out RESOURCE_EXHAUSTED as the server says."""
    decisions: list[pb.Decision] = []
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            decisions = list(future.result().decisions) if future is not None else []
            break
        except grpc.RpcError as exc:
            wait = retry_delay(exc, attempt)
            if wait is None:
                failed = pb.Decision(error=_status(exc.code(), exc.details() or ""))
                decisions = [failed] * len(chunk)
                break
            sleep(wait)
            future = _send(stub, chunk, metadata)
    answers = iter(decisions)
    for item in chunk:
        answer = next(answers) if item.request is not None else item.answer
        yield item.where, item.data, answer


def _local(rulesets: str) -> Any:
    ctx = grpc_server.context_from(load_rulebook(rulesets))

    def evaluate(data: Any, as_of: str) -> pb.Decision:
        try:
            decision = handlers.evaluate_data(
                ctx, convert.short_profile_json(data), as_of, prefix=""
            )
        except ValidationError as exc:
            return pb.Decision(
                enterprise_id=str(_get(data, "enterprise_id")), error=status_proto(exc)
            )
        return convert.decision_to_proto(decision)

    return evaluate


RETRY_ATTEMPTS = 8
MAX_RETRY_WAIT = 60.0


def retry_delay(error: grpc.RpcError, attempt: int) -> float | None:
    """Seconds to wait before retrying a refused call, or None when it is an answer.

    RESOURCE_EXHAUSTED from the server's rate limit carries when to come back: a
    google.rpc.RetryInfo detail, or the `retry-after` trailer (seconds). Without that
    hint (a message too large, say) retrying cannot help. `attempt` counts from 1."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or attempt >= RETRY_ATTEMPTS:
        return None
    hint = _retry_info(error)
    if hint is None:
        trailers = dict(error.trailing_metadata() or ())
        try:
            hint = float(trailers.get("retry-after", ""))
        except ValueError:
            hint = None
    if hint is not None and not math.isfinite(hint):
        hint = None
    return min(MAX_RETRY_WAIT, max(0.0, hint)) if hint is not None else None


def _retry_info(error: grpc.RpcError) -> float | None:
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def _get(data: Any, key: str) -> Any:
    return data.get(key, "") if isinstance(data, dict) else ""


def _status(code: grpc.StatusCode, message: str) -> Any:
    return status_pb2.Status(code=code.value[0], message=message)
