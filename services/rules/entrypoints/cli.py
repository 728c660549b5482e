"""`python -m services.rules …`: serve, evaluate a file of profiles, or run the demo."""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from sqlalchemy import Engine
from tqdm import tqdm

from services.common import backup, demo_city, processes, security
from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.clock import short_id
from services.common.config import (
    OperatorError,
    command_line,
    env_flag,
    number_arg,
    run_command,
)
from services.common.db import default_sqlite_url, existing_database, is_sqlite, make_engine
from services.common.grpc_errors import status_proto
from services.common.http_server import HttpServer, start_http
from services.rules.adapters import migrate
from services.rules.adapters.feed import FeedStore, mark_backup
from services.rules.adapters.feed_worker import (
    FEED_HEALTH_NAME,
    FeedWorker,
    JetStreamPublisher,
    NatsSettings,
)
from services.rules.adapters.ruleset_loader import Rulebook, RulesetError, load_rulebook
from services.rules.domain import labels
from services.rules.domain.errors import ValidationError
from services.rules.entrypoints import (
    batch_client,
    batch_json,
    convert,
    grpc_server,
    http_api,
    render,
)
from services.rules.entrypoints.batch_client import Unreadable
from services.rules.service_layer import (
    demo,
    event_groups,
    handlers,
    reevaluation,
    register_handlers,
)
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


# `reevaluate --all --processes 0` (the default): one process per core, at most this many
# (each holds the rulebook, about 90 MB; on SQLite a third process already gained nothing
# on 2 cores, its writes taking turns at one lock); a larger --processes N is taken as asked
DEFAULT_MAX_PROCESSES = 8


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
        "server processes sharing the port (SO_REUSEPORT); 0: one per core (the cgroup's CPU "
        "quota included)",
        type=int,
    )
    serve.add_argument("--shared-port", action="store_true", help=argparse.SUPPRESS)
    _event_group_flags(serve)
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
    forget = sub.add_parser(
        "forget-feed-publisher",
        help="the change feed's bus given up: replicas without --nats mark changes delivered",
    )
    env_flag(forget, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    forget.set_defaults(run=cmd_forget_feed_publisher)
    renew = sub.add_parser(
        "renew-feed-epoch",
        help="after restoring the database other than by `restore` or pg_restore (a base "
        "backup or PITR, a failover that lost commits, a SQLite file copied by hand): "
        "the change feed's cursors given before are refused",
    )
    env_flag(renew, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    renew.set_defaults(run=cmd_renew_feed_epoch)
    # and audit verify|anchor; a backup's change feed renews its epoch when it is used
    backup.add_commands(
        sub, "RULES", "rules", audit_trail, mark=mark_backup_copy, restored=renew_after_restore
    )

    migrate = sub.add_parser("migrate", help="create or upgrade the register's schema")
    env_flag(migrate, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    migrate.set_defaults(run=cmd_migrate)

    again = sub.add_parser("reevaluate", help="re-evaluate stored firms (resumable)")
    again.add_argument("--all", action="store_true", required=True, help="every stored firm")
    again.add_argument(
        "--as-of",
        type=_day_arg,
        default="",
        help="evaluation date (default today). As of today or a later day, a firm with a "
        "record dated the day after (within the clock skew) is decided as of that day, as "
        "the server decides; as of a past day, every firm exactly as of it (records dated "
        "later ignored). An unfinished run is resumed only for the same day and rule",
    )
    again.add_argument(
        "--batch-size",
        type=number_arg(1),
        default=reevaluation.BATCH_SIZE,
        help="firms per transaction",
    )
    again.add_argument(
        "--processes",
        type=number_arg(0),
        default=0,
        help="processes, each re-evaluating its own range of firm ids (default 0: one per "
        "core the process may use, container quota included, at most "
        f"{DEFAULT_MAX_PROCESSES}); on SQLite they take turns at its write lock only for "
        "writing, each deciding its next batch while another writes. On a 2-core machine "
        "that also runs the database, 2 took 300,000 firms in about 19 s on SQLite and 26 s "
        "on PostgreSQL, against 34 s and 47 s for 1 (docs/benchmarks.md); beside a live "
        "server on the same cores, 1 leaves it a core. A run is split into no more ranges "
        f"than give each {reevaluation.MIN_RANGE} firms; a resumed run keeps the ranges it "
        "started with",
    )
    _common_flags(again)
    again.set_defaults(run=cmd_reevaluate)

    evaluate = sub.add_parser("evaluate", help="evaluate a JSON or JSONL file of profiles")
    evaluate.add_argument("file", type=Path, help="a .json (object or list) or .jsonl file")
    evaluate.add_argument("--json", action="store_true", help="print one JSON decision per line")
    evaluate.add_argument(
        "--as-of",
        type=_day_arg,
        default="",
        help="evaluation date YYYY-MM-DD (default today; a profile with a record dated "
        "tomorrow, within the clock skew, as of tomorrow)",
    )
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


def _event_group_flags(parser: argparse.ArgumentParser) -> None:
    env_flag(
        parser,
        "--event-group-size",
        "RULES_EVENT_GROUP_SIZE",
        event_groups.DEFAULT_MAX_SIZE,
        "ReportEvent and UpsertEnterprise group commit: at most this many calls of one "
        "kind that arrive together share one transaction, each answered after its "
        "commit; 1: every call on its own",
        type=number_arg(1, 1000),
    )
    env_flag(
        parser,
        "--event-group-wait-ms",
        "RULES_EVENT_GROUP_WAIT_MS",
        event_groups.DEFAULT_MAX_WAIT * 1000,
        "milliseconds a group's first event waits for more while the group is not full "
        "(0: a group is what is queued when it starts; at most 1000)",
        type=number_arg(0, 1000, kind=float),
    )

    env_flag(
        parser,
        "--event-groups",
        "RULES_EVENT_GROUPS",
        event_groups.DEFAULT_GROUPS,
        "groups of each kind (ReportEvent, UpsertEnterprise) applied at once, each in its "
        "own transaction (one overlaps the database's work with the next group's CPU)",
        type=number_arg(1, 64),
    )


def _group_limits(args: argparse.Namespace) -> event_groups.GroupLimits:
    """The group commit's settings (their flags' types have checked them)."""
    size = int(getattr(args, "event_group_size", event_groups.DEFAULT_MAX_SIZE))
    wait = float(getattr(args, "event_group_wait_ms", event_groups.DEFAULT_MAX_WAIT * 1000))
    groups = int(getattr(args, "event_groups", event_groups.DEFAULT_GROUPS))
    return event_groups.GroupLimits(size, wait / 1000, groups)


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


def _day_arg(text: str) -> str:
    """An --as-of value: a YYYY-MM-DD date of the documented range (kept as text)."""
    try:
        handlers.parse_as_of(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.violations[0].description) from None
    return text


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
            url,
            pool_size=limits.db_workers,
            timeouts=common_server.timeouts_from(args),
            sqlite_synchronous=common_server.sqlite_synchronous_from(args),
        )
    migrate.upgrade(engine)
    return engine


def cmd_serve(args: argparse.Namespace) -> int:
    guard = security.from_args(args)  # before anything else: refuse to run open
    # a stop while loading or migrating ends the start at once (exit 0); once the server
    # is being built, it drains
    signalled = common_server.catch_stop_signals()
    rulebook = load_rulebook(args.rulesets)
    count = args.processes or processes.cpu_count()
    if count > 1 and not args.shared_port:
        return serve_processes(args, count)
    engine = _database(args.db, args)
    signalled.serving()
    running = grpc_server.build(
        rulebook,
        engine=engine,
        address=args.grpc,
        limits=common_server.limits_from(args),
        security=guard,
        event_groups=_group_limits(args),
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

    common_server.serve_until_signalled(running, on_stop=stop_workers, stop=signalled)
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


def cmd_forget_feed_publisher(args: argparse.Namespace) -> int:
    """Clear the bus the feed head names: once no replica publishes to NATS any more, the
    replicas without --nats mark positioned changes delivered again (and `prune-changes`
    can delete them). A replica still publishing names it again on its next start."""
    store = FeedStore(_database(args.db))
    with store.engine.begin() as connection:
        had = store.forget_publisher(connection)
    print(f"the change feed's publisher was {had or 'none'}; now none")
    if had:
        print(
            "a replica still running with --nats names it again only when it restarts: "
            "until then the replicas without --nats mark its changes delivered"
        )
    return 0


def cmd_renew_feed_epoch(args: argparse.Namespace) -> int:
    """Give the change feed a new epoch: every cursor given before is refused
    (FAILED_PRECONDITION), so no follower silently misses the changes a restored database
    lost. `restore`, a `pg_restore` and a data-only `pg_restore` into the same database
    renew it on their own; this is for the other ways a database comes back (a base
    backup or point-in-time recovery, a failover to an asynchronous standby that lost
    commits, a SQLite file copied by hand, a dump taken before the feed had epochs)."""
    head = FeedStore(_database(existing_database(args.db))).head(renew=True)
    _say_renewed(head.epoch, head.bare_limit)
    return 0


def _say_renewed(epoch: int, bare_limit: int) -> None:
    print(
        f"the change feed's epoch is now {epoch}: followers resuming from a cursor given "
        "before are refused (FAILED_PRECONDITION, RESYNC_REQUIRED) and read what they keep "
        "again; "
        f"bare cursors of before epochs are taken up to position {bare_limit}"
    )


def mark_backup_copy(copy: Path) -> None:
    """`backup`'s copy: its change feed head marked as a copy, so the database it becomes
    (by `restore`, or copied back by hand) renews its feed's epoch when first read."""
    engine = make_engine(f"sqlite:///{copy}", pool_size=1)
    try:
        with engine.begin() as connection:
            mark_backup(connection)  # (a live database of before 0017: nothing to mark)
    finally:
        engine.dispose()


def renew_after_restore(url: str) -> None:
    """After `restore`: the restored feed's epoch made anew (it is marked as a copy, or,
    a backup of before 0017, gets one now), so cursors of the feed it replaced are refused."""
    head = FeedStore(_database(url)).head(renew=True)
    _say_renewed(head.epoch, head.bare_limit)


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


def audit_trail(url: str) -> backup.Trail:
    from services.rules.adapters.orm import audit_head, audit_log

    return backup.Trail(_database(url), audit_log, audit_head)


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = _database(args.db)
    print(f"database at revision {migrate.current_revision(engine)}")
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    """Re-evaluate every firm: in this process, or split into ranges, one child process
    (forked from this one) per range; the parent reports the whole run."""
    engine = _database(args.db)
    today = handlers.parse_as_of("")
    when = handlers.parse_as_of(args.as_of) if args.as_of else today
    parts = args.processes or min(processes.cpu_count(), DEFAULT_MAX_PROCESSES)
    started = reevaluation.start_run(UnitOfWork(engine), when, parts, today=today)
    if len(started.ranges) > 1 and parts > 1:
        failed = _reevaluate_in_processes(args, engine, started)
    else:
        ctx = _frozen(grpc_server.context_from(load_rulebook(args.rulesets)))
        with tqdm(total=started.total, unit="firm", file=sys.stderr, disable=None) as bar:
            for range_id in started.ranges:
                reevaluation.run_range(
                    UnitOfWork(engine),
                    ctx,
                    range_id,
                    batch_size=args.batch_size,
                    on_batch=bar.update,
                )  # no read-ahead (run_range's default): one process has nothing to overlap
        failed = 0
    summary = reevaluation.summary(
        UnitOfWork(engine), started.run_id, started.resumed, started.total
    )
    word = "resumed" if summary.resumed else "started"
    print(
        f"re-evaluation {short_id(summary.run_id)} ({word}) as of {_run_day(summary)}: "
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


def _run_day(summary: reevaluation.RunSummary) -> str:
    """The day(s) a run's decisions speak for, as its summary line says them: a run as
    of today or later decided a firm with a record dated the day after as of that day
    (ReevaluationRun.raised); a past day's run decided every firm as of it exactly (review
    53 N11: the line named the run's day while some firms were decided for the next)."""
    day = summary.as_of.isoformat()
    if not summary.raised:
        return f"{day} (exactly; records dated later ignored)"
    after = (summary.as_of + timedelta(days=1)).isoformat()
    return f"{day} ({summary.ahead} firm(s) with a record dated {after} as of {after})"


# tracked objects allocated (net of those freed) before the collector runs. A batch keeps
# tens of thousands alive until it is written, and at Python's default (700) the collector
# walked them again and again: 1,433 collections for 20,000 firms, a tenth of the CPU
# (measured); 3 at 50,000 and none at this. A batch's objects are freed by reference
# counts when it ends, so the count falls back and only cyclic garbage would add up.
REEVALUATE_GC_THRESHOLD = 200_000


def _frozen(ctx: handlers.RulesContext) -> handlers.RulesContext:
    """`ctx`, once the modules' and the rulebook's objects are out of the collector's
    view (gc.freeze): a batch's many short-lived dicts trigger collections, and each full
    one would walk all of them again (a tenth of a re-evaluation's time); and the
    collector run only every `REEVALUATE_GC_THRESHOLD` objects (a batch's live ones)."""
    gc.freeze()
    gc.set_threshold(REEVALUATE_GC_THRESHOLD, *gc.get_threshold()[1:])
    return ctx


def _reevaluate_in_processes(
    args: argparse.Namespace, engine: Engine, started: reevaluation.Started
) -> int:
    """One child per range of the run, forked from this process: a child inherits the
    modules imported here (a fresh `python -m services.rules` spent a second importing
    them, the time of some 5,000 firms) and loads the rulebook itself. Forked before the
    progress bar (whose thread a child must not inherit) and with no pooled connection
    (each child opens its own). The bar follows the runs' records until every child has
    ended; returns how many failed (their ranges stay unfinished, for a later resume).
    Interrupted (Ctrl-C, SIGTERM), it stops the children before it exits (130): none is
    left running beside a resumed run."""
    engine.dispose()
    sys.stdout.flush()
    sys.stderr.flush()
    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(
            target=_reevaluate_range,
            args=(args.db, args.rulesets, range_id, args.batch_size),
            name=f"reevaluate-{short_id(range_id)}",
        )
        for range_id in started.ranges
    ]
    for child in children:
        child.start()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _follow(engine, started, children)
    except KeyboardInterrupt:
        for child in children:
            if child.is_alive():
                child.terminate()  # its batch in progress is rolled back
        for child in children:
            child.join(30)
        print(
            "interrupted: the batches written are kept; run the command again to resume",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return sum(c.exitcode != 0 for c in children)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _follow(engine: Engine, started: reevaluation.Started, children: list[Any]) -> None:
    """Wait for the children, the bar following the runs' records."""
    shown = 0
    with tqdm(total=started.total, unit="firm", file=sys.stderr, disable=None) as bar:
        running = {c.sentinel: c for c in children}
        while running:
            for ended in multiprocessing.connection.wait(list(running), timeout=1.0):
                running.pop(ended).join()
            if not bar.disable:
                done = reevaluation.processed(UnitOfWork(engine), started.run_id)
                bar.update(done - shown)
                shown = done


def _reevaluate_range(url: str, rulesets: Path, range_id: str, batch_size: int) -> None:
    """A child of `reevaluate --all --processes N`: its range, on an engine of its own
    (the parent migrated the database), decided as the run's record says (run_range)."""
    engine = make_engine(url)
    try:
        ctx = _frozen(grpc_server.context_from(load_rulebook(rulesets)))
        # SQLite's one write lock is what range processes wait on: each works out its next
        # batch while another writes. PostgreSQL's ranges never wait on each other (their
        # firms and the firms' audit chains are disjoint): reading twice would only cost.
        read_ahead = is_sqlite(engine)
        reevaluation.run_range(
            UnitOfWork(engine),
            ctx,
            range_id,
            batch_size=batch_size,
            read_ahead=read_ahead,
        )
    except KeyboardInterrupt:  # Ctrl-C reaches every process: the parent tells the user
        raise SystemExit(130) from None
    finally:
        engine.dispose()


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
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield number, _loads(line)
                    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too deep
                        yield number, Unreadable(str(exc)[:200])
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too deep
        raise OperatorError(
            f"{path.name}: not a JSON file of profiles: {str(exc)[:200]}", 2
        ) from exc
    items = data if isinstance(data, list) else [data]
    yield from enumerate(items, 1)


def _loads(line: bytes) -> Any:
    """One JSONL line: orjson (several times faster), or the standard library for what
    orjson refuses (NaN, numbers past a double's range), which also words any error as
    before. orjson reads an integer past 64 bits as a float; the profile's checks refuse
    both (out of range; not an integer)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line.decode("utf-8"))


def _count(path: Path) -> int | None:
    if path.suffix != ".jsonl":
        return None
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    # The modules' objects out of the collector's view: the short-lived dicts of every
    # profile trigger collections, and the full ones would walk all of them each time.
    gc.freeze()
    total = _count(args.file)
    bar = tqdm(
        total=total,
        unit="firm",
        file=sys.stderr,
        disable=None if (total or 0) >= PROGRESS_THRESHOLD else True,
    )
    failures = 0
    try:
        rulebook = None if args.server else load_rulebook(args.rulesets)
        if rulebook is None:
            batches: Iterator[list[batch_client.Result]] = batch_client.remote_batches(
                read_profiles(args.file), args.server, args.token, args.as_of
            )
        else:
            evaluate = _local(rulebook)
            batches = (
                [(w, d, _decided(evaluate, d, args.as_of))] for w, d in read_profiles(args.file)
            )
        out = _Output(sys.stdout, args.json, None if args.json else _words(rulebook, args))
        for batch in batches:
            failures += out.write(batch)
            bar.update(len(batch))
        out.flush()
    except ReaderGone:
        return _reader_gone()
    finally:
        bar.close()
    if failures:
        print(labels.NOT_EVALUATED_COUNT.format(n=failures), file=sys.stderr)
    return 1 if failures else 0


def _words(rulebook: Rulebook | None, args: argparse.Namespace) -> render.Words:
    """The names the text output reads codes by: from the rulesets evaluated with, or via
    a server from the local --rulesets when it loads (else the codes are shown)."""
    if rulebook is None:
        try:
            rulebook = load_rulebook(args.rulesets)
        except RulesetError:
            return render.Words()
    return render.Words(rulebook.fact_types.definitions, rulebook.menu_names)


class ReaderGone(Exception):
    """Whoever reads stdout stopped reading (`evaluate … | head`)."""


def _reader_gone() -> int:
    """Stop quietly, as a pipe's writer does when its reader went away: what is still
    buffered for stdout goes nowhere (not to a traceback at exit); status 1, the run is
    incomplete."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def _decided(evaluate: Any, data: Any, as_of: str) -> pb.Decision | None:
    return None if isinstance(data, Unreadable) else evaluate(data, as_of)


class _Output:
    """Decisions to stdout: readable text, or (--json) one JSON line each, written as
    UTF-8 bytes a batch at a time (`batch_json.DecisionLines`)."""

    def __init__(self, out: TextIO, as_json: bool, words: render.Words | None = None) -> None:
        self.out, self.json, self.words = out, as_json, words or render.Words()
        self.lines = batch_json.DecisionLines()
        binary = getattr(out, "buffer", None)
        utf8 = (getattr(out, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self.binary = binary if as_json and utf8 else None
        if self.binary is not None:
            out.flush()  # anything written as text comes first

    def write(self, batch: list[batch_client.Result]) -> int:
        """Print a batch of (line, profile, decision); return how many were rejected.
        ReaderGone when stdout's reader went away."""
        try:
            return self._write(batch)
        except BrokenPipeError:
            raise ReaderGone from None

    def _write(self, batch: list[batch_client.Result]) -> int:
        if not self.json:
            return sum(
                not _print_text(w, d, decision, self.out, self.words) for w, d, decision in batch
            )
        lines, rejected = [], 0
        for where, data, decision in batch:
            if decision is None:
                why = getattr(data, "why", "")
                lines.append(f"#{where}: not valid JSON: {why}\n".encode())
                rejected += 1
            elif decision.HasField("error"):
                lines.append(self.lines.line(decision, where))
                rejected += 1
            else:
                lines.append(self.lines.line(decision))
        text = b"".join(lines)
        if self.binary is not None:
            self.binary.write(text)
        else:
            self.out.write(text.decode("utf-8"))
        return rejected

    def flush(self) -> None:
        try:
            (self.binary or self.out).flush()
        except BrokenPipeError:
            raise ReaderGone from None


def _print_text(
    where: int, data: Any, decision: pb.Decision | None, out: TextIO, words: render.Words
) -> bool:
    """Print one profile's decision as text; return False when it was rejected."""
    if decision is None:
        print(f"#{where}：不是有效的 JSON（{getattr(data, 'why', '')}）", file=out)
        return False
    if decision.HasField("error"):
        out.write(render.rejection(where, decision.error))
        return False
    out.write(render.decision_text(decision, str(_get(data, "name")), words))
    return True


def _local(rulebook: Rulebook) -> Any:
    ctx = grpc_server.context_from(rulebook)

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


def _get(data: Any, key: str) -> Any:
    return data.get(key, "") if isinstance(data, dict) else ""
