"""`python -m services.rules …`: serve, evaluate a file of profiles, or run the demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
import structlog
from google.rpc import status_pb2
from sqlalchemy import Engine
from tqdm import tqdm

from services.common import backup, security
from services.common import logging as common_logging
from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.config import env_flag
from services.common.db import default_sqlite_url, make_engine
from services.common.grpc_errors import status_proto
from services.rules.adapters import migrate
from services.rules.adapters.ruleset_loader import RulesetError, load_rulebook
from services.rules.domain.errors import ValidationError
from services.rules.entrypoints import convert, grpc_server, render
from services.rules.service_layer import handlers, reevaluation, register_handlers
from services.rules.service_layer.unit_of_work import UnitOfWork

DEFAULT_GRPC = "127.0.0.1:50051"
PROGRESS_THRESHOLD = 200
_log = structlog.get_logger("rules")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    common_logging.configure(args.log_level, json=args.log_json)
    try:
        return int(args.run(args))
    except RulesetError as exc:
        print(f"ruleset error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.rules", description="Work-safety rules service"
    )
    env_flag(parser, "--log-level", "RULES_LOG_LEVEL", "info", "log level")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="migrate the database, then start the gRPC server")
    env_flag(serve, "--grpc", "RULES_GRPC", DEFAULT_GRPC, "HOST:PORT to listen on")
    _common_flags(serve)
    security.add_flags(serve, "RULES")
    common_server.add_flags(serve, "RULES")
    serve.set_defaults(run=cmd_serve)

    demo = sub.add_parser("demo", help="what `make run` starts: the server plus how to call it")
    env_flag(demo, "--grpc", "RULES_GRPC", DEFAULT_GRPC, "HOST:PORT to listen on")
    _common_flags(demo)
    security.add_flags(demo, "RULES")
    common_server.add_flags(demo, "RULES")
    demo.set_defaults(run=cmd_demo)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        required=True, metavar="ACTION"
    )
    verify = audit.add_parser("verify", help="recompute the hash chain; name the first break")
    env_flag(verify, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    verify.set_defaults(run=cmd_audit_verify)

    backup.add_commands(
        sub, "RULES", "rules", lambda url: cmd_audit_verify(argparse.Namespace(db=url))
    )

    migrate = sub.add_parser("migrate", help="create or upgrade the register's schema")
    env_flag(migrate, "--db", "RULES_DB", default_sqlite_url("rules"), "database URL")
    migrate.set_defaults(run=cmd_migrate)

    again = sub.add_parser("reevaluate", help="re-evaluate stored firms (resumable)")
    again.add_argument("--all", action="store_true", required=True, help="every stored firm")
    again.add_argument("--as-of", default="", help="evaluation date (default today)")
    again.add_argument("--batch-size", type=int, default=200, help="firms per transaction")
    _common_flags(again)
    again.set_defaults(run=cmd_reevaluate)

    evaluate = sub.add_parser("evaluate", help="evaluate a JSON or JSONL file of profiles")
    evaluate.add_argument("file", type=Path, help="a .json (object or list) or .jsonl file")
    evaluate.add_argument("--json", action="store_true", help="print one JSON decision per line")
    evaluate.add_argument("--as-of", default="", help="evaluation date YYYY-MM-DD (default today)")
    evaluate.add_argument(
        "--server",
        default="",
        help="evaluate through a running server at HOST:PORT, not in-process",
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
    engine = _database(args.db, args)
    running = grpc_server.build(
        rulebook,
        engine=engine,
        address=args.grpc,
        limits=common_server.limits_from(args),
        security=guard,
    )
    running.server.start()
    watcher = common_server.watch_database(engine, running.health, [grpc_server.SERVICE_NAME])
    _log.info(
        "rules service listening",
        address=args.grpc,
        port=running.port,
        database=engine.url.render_as_string(hide_password=True),
        ruleset_version=rulebook.catalogue.version,
        standards=[s.id for s in rulebook.catalogue.standards],
    )
    common_server.serve_until_signalled(running, on_stop=watcher.set)
    engine.dispose()
    return 0


def seed_demo(args: argparse.Namespace, path: Path = Path("examples/profiles.jsonl")) -> int:
    """Register the valid example firms (make run), so the register RPCs have data."""
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
    engine.dispose()
    return seeded


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from services.common.audit import verify_command
    from services.rules.adapters.orm import audit_head, audit_log

    return verify_command(_database(args.db), audit_log, audit_head)


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = _database(args.db)
    print(f"database at revision {migrate.current_revision(engine)}")
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    rulebook = load_rulebook(args.rulesets)
    engine = _database(args.db)
    ctx = grpc_server.context_from(rulebook)
    as_of = handlers.parse_as_of(args.as_of) if args.as_of else ctx.today()
    with tqdm(unit="firm", file=sys.stderr, disable=None) as bar:
        summary = reevaluation.reevaluate_all(
            UnitOfWork(engine), ctx, as_of, batch_size=args.batch_size, on_batch=bar.update
        )
    word = "resumed" if summary.resumed else "started"
    print(
        f"re-evaluation {summary.run_id[:8]} ({word}) as of {as_of}: "
        f"{summary.processed} of {summary.total} firm(s) done"
    )
    if summary.skipped:
        print(
            f"{len(summary.skipped)} firm(s) skipped, their stored profile no longer "
            f"validates (send UpsertEnterprise to correct): {', '.join(summary.skipped)}"
        )
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    seeded = seed_demo(args)
    host, _, port = args.grpc.rpartition(":")
    print(
        f"\nRules service starting on {args.grpc}; register {args.db}\n"
        f"{seeded} demo firm(s) from examples/profiles.jsonl are in the register.\n"
        "Try, in another terminal:\n"
        "  .venv/bin/python -m services.rules evaluate examples/profiles.jsonl\n"
        f"  RULES_TOKEN=<dev-enforcement token from var/dev-tokens.json> "
        f".venv/bin/python -m services.rules evaluate --server {host}:{port} "
        "examples/profiles.jsonl --json\n"
        f'  grpcurl -plaintext -H "authorization: Bearer <token>" '
        f'-d \'{{"enterprise_id": "91330782MA2000001K"}}\' '
        f"{host}:{port} rules.v1.RulesService/GetEnterpriseStatus   (reflection is on)\n"
        "Stop with Ctrl-C.\n",
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
                        yield number, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield number, _Unreadable(str(exc))
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data if isinstance(data, list) else [data]
    yield from enumerate(items, 1)


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
    evaluator = _remote(args.server, args.token) if args.server else _local(args.rulesets)
    failures = 0
    try:
        for where, data in read_profiles(args.file):
            failures += not _one(evaluator, where, data, args, sys.stdout)
            bar.update(1)
    finally:
        bar.close()
    if failures:
        print(f"{failures} profile(s) rejected", file=sys.stderr)
    return 1 if failures else 0


def _one(evaluator: Any, where: int, data: Any, args: argparse.Namespace, out: TextIO) -> bool:
    """Evaluate and print one profile; return False when it was rejected."""
    if isinstance(data, _Unreadable):
        print(f"#{where}: not valid JSON: {data.why}", file=out)
        return False
    decision = evaluator(data, args.as_of)
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


def _local(rulesets: str) -> Any:
    ctx = grpc_server.context_from(load_rulebook(rulesets))

    def evaluate(data: Any, as_of: str) -> pb.Decision:
        try:
            decision = handlers.evaluate_data(ctx, data, as_of, prefix="")
        except ValidationError as exc:
            return pb.Decision(
                enterprise_id=str(_get(data, "enterprise_id")), error=status_proto(exc)
            )
        return convert.decision_to_proto(decision)

    return evaluate


def _remote(address: str, token: str) -> Any:
    channel = grpc.insecure_channel(address)
    stub = rules_pb2_grpc.RulesServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def evaluate(data: Any, as_of: str) -> pb.Decision:
        request = pb.EvaluateRequest(as_of=as_of)
        try:
            request.profile.CopyFrom(convert.profile_from_json(data))
        except Exception as exc:
            return pb.Decision(
                enterprise_id=str(_get(data, "enterprise_id")),
                error=_status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)),
            )
        try:
            return stub.Evaluate(request, timeout=30, metadata=metadata)
        except grpc.RpcError as exc:
            return pb.Decision(
                enterprise_id=request.profile.enterprise_id,
                error=_status(exc.code(), exc.details() or ""),
            )

    return evaluate


def _get(data: Any, key: str) -> Any:
    return data.get(key, "") if isinstance(data, dict) else ""


def _status(code: grpc.StatusCode, message: str) -> Any:
    return status_pb2.Status(code=code.value[0], message=message)
