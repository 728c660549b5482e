"""`python -m services.booking …`: serve (gRPC + phone page), migrate, sweep, demo."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog
from sqlalchemy import Engine

from services.booking.adapters import migrate
from services.booking.adapters.menu import MenuError, load_menu
from services.booking.adapters.rules_client import BREAKER_OPEN_SECONDS, MAX_CALLS, RulesClient
from services.booking.adapters.sms import BackgroundSms, ConsoleSms
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.qr import Keyring
from services.booking.entrypoints import firm_commands, grpc_server, users_cli
from services.booking.service_layer import (
    demo,
    dispatch,
    experts,
    photo_scrub,
    posters,
    staff_accounts,
    tickets,
)
from services.booking.service_layer.outbox import (
    HELD_AFTER_SECONDS,
    LEASE_SECONDS,
    BeingSent,
    HeldFirm,
    OutboxStatus,
    OutboxWorker,
    deliver_pending,
    held_firms,
)
from services.booking.service_layer.ports import BookingContext
from services.common import backup, demo_city, security
from services.common import server as common_server
from services.common.call_groups import GroupLimits
from services.common.clock import today_shanghai
from services.common.config import (
    OperatorError,
    command_line,
    env_flag,
    number_arg,
    public_url_arg,
    run_command,
)
from services.common.context import bind, call_scope
from services.common.db import default_sqlite_url, existing_database, make_engine
from services.common.errors import DomainError
from services.common.http_server import start_http
from services.common.instants import in_shanghai
from services.common.ratelimit import Rate, RateLimiter
from services.common.regions import RegionsError, load_regions
from services.common.secret_files import SecretFileError, check_private
from services.common.security import client_credentials
from services.common.values import trim

if TYPE_CHECKING:
    from services.booking.entrypoints.web.uploads import UploadLimits

ORDERS_PER_QR_TOKEN = Rate(per_second=20 / 3600, burst=10)  # 10 at once, then 20 an hour
# CreateOrder calls refused for the caller's own reasons, per QR token: 20 at once, then
# one a minute; past it an invalid call is refused unread, a valid one still taken
# (orders.py `refusals_limited`; not the order limit's)
REFUSED_ORDERS_PER_QR_TOKEN = Rate(per_second=60 / 3600, burst=20)
_log = structlog.get_logger("booking")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a rulesets file it cannot read (menu.yaml, regions.yaml) is one
    line on stderr and exit status 2, as the rules service does, never a traceback."""
    try:
        return run_command(_parser(), argv)
    except (MenuError, RegionsError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = command_line(
        "python -m services.booking", "Expert booking service (扫码点单)", "BOOKING"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for name, run, help_text in (
        ("serve", cmd_serve, "migrate, then serve gRPC and HTTP"),
        ("demo", cmd_demo, "what `make run` starts (seeds demo data)"),
    ):
        command = sub.add_parser(name, help=help_text)
        _common(command)
        _rules_guards(command)
        env_flag(command, "--grpc", "BOOKING_GRPC", "127.0.0.1:50052", "gRPC HOST:PORT")
        env_flag(command, "--http", "BOOKING_HTTP", "127.0.0.1:8080", "phone page HOST:PORT")
        env_flag(
            command,
            "--public-url",
            "BOOKING_PUBLIC_URL",
            "http://127.0.0.1:8080",
            "base URL the QR codes point to",
            type=public_url_arg,
        )
        env_flag(
            command,
            "--trusted-proxies",
            "BOOKING_TRUSTED_PROXIES",
            "",
            "reverse proxies (comma-separated IPs or networks) whose X-Forwarded-For and "
            "X-Forwarded-Proto name the client: the per-address limits count phones, not "
            "the proxy; empty: none trusted",
        )
        env_flag(command, "--hotline", "BOOKING_HOTLINE", "12345", "hotline on the posters")
        env_flag(
            command,
            "--sweep-interval",
            "BOOKING_SWEEP_INTERVAL",
            3600.0,
            "seconds between overdue sweeps",
            type=float,
        )
        common_server.add_flags(command, "BOOKING")
        security.add_flags(command, "BOOKING")
        _order_group_flags(command)
        _upload_flags(command)
        command.set_defaults(run=run)
    backup.add_commands(sub, "BOOKING", "booking", audit_trail)  # and audit verify|anchor
    users_cli.add_commands(sub)  # staff accounts: users add|disable|reset-password|list
    migrate_cmd = sub.add_parser("migrate", help="create or upgrade the booking schema")
    env_flag(migrate_cmd, "--db", "BOOKING_DB", default_sqlite_url("booking"), "database URL")
    migrate_cmd.set_defaults(run=cmd_migrate)
    box = sub.add_parser("outbox", help="events waiting for the rules service")
    env_flag(box, "--db", "BOOKING_DB", default_sqlite_url("booking"), "database URL")
    box.add_argument(
        "--retry-failed",
        action="store_true",
        help="requeue the events the rules service refused (after fixing why)",
    )
    box.add_argument(
        "--resend-since",
        default="",
        metavar="YYYY-MM-DD",
        help="send again every event delivered since this day (after restoring rules)",
    )
    box.add_argument(
        "--discard",
        default="",
        metavar="EVENT_ID",
        help="never send this refused event, so that its firm's later events go on "
        "(audited; needs --reason)",
    )
    box.add_argument("--reason", default="", help="why --discard drops the event (audited)")
    box.set_defaults(run=cmd_outbox)
    scrub = sub.add_parser(
        "scrub-photos",
        help="remove the metadata (EXIF GPS, XMP, comments) of photos stored before "
        "uploads were scrubbed; run once after upgrading (safe to run again)",
    )
    env_flag(scrub, "--db", "BOOKING_DB", default_sqlite_url("booking"), "database URL")
    scrub.add_argument(
        "--batch",
        type=number_arg(1, 500),
        default=photo_scrub.BATCH,
        help="photos per transaction (each ≤ 5 MB, all held in memory at once)",
    )
    scrub.add_argument(
        "--after",
        default="",
        metavar="PHOTO_ID",
        help="go on after this photo id (an interrupted run's last line says it); "
        "without it every photo is looked at again, the clean ones left untouched",
    )
    scrub.set_defaults(run=cmd_scrub_photos)
    sweep_cmd = sub.add_parser("sweep", help="mark overdue tickets, report them, deliver")
    _common(sweep_cmd)
    _rules_guards(sweep_cmd)  # it delivers the outbox to rules
    sweep_cmd.set_defaults(run=cmd_sweep)
    firm_commands.add_commands(sub, _common, _rules_guards, _context)  # sign-in-phone, posters
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    env_flag(
        parser,
        "--db",
        "BOOKING_DB",
        default_sqlite_url("booking"),
        "database URL (sqlite:///… or postgresql+psycopg://…)",
    )
    env_flag(
        parser,
        "--rules",
        "BOOKING_RULES",
        "127.0.0.1:50051",
        "rules service HOST:PORT, or several replicas HOST:P1,HOST:P2 (round-robin, failover)",
    )
    env_flag(parser, "--menu", "BOOKING_MENU", "rulesets/menu.yaml", "service menu file")
    env_flag(
        parser,
        "--regions",
        "BOOKING_REGIONS",
        "rulesets/regions.yaml",
        "the 镇街 experts may serve and filters may name (the rules service's file)",
    )
    env_flag(
        parser,
        "--rules-tls-ca",
        "BOOKING_RULES_TLS_CA",
        None,
        "CA that signed the rules service's certificate: talk to it over TLS",
    )
    env_flag(
        parser,
        "--rules-tls-cert",
        "BOOKING_RULES_TLS_CERT",
        None,
        "client certificate for mutual TLS with the rules service (PEM)",
    )
    env_flag(
        parser,
        "--rules-tls-key",
        "BOOKING_RULES_TLS_KEY",
        None,
        "client key for mutual TLS with the rules service (PEM)",
    )
    env_flag(
        parser,
        "--rules-token",
        "BOOKING_RULES_TOKEN",
        "",
        "bearer token for the rules service "
        "(scopes rules.read, rules.evaluate, rules.write, rules.contact)",
    )
    env_flag(
        parser,
        "--qr-keys",
        "BOOKING_QR_KEYS",
        "var/qr-keys.json",
        'QR signing keys: {"active": id, "keys": {id: hex secret}}; a missing file stops the '
        "command unless --new-qr-keys (or --dev, or demo) asks for a new one",
    )
    parser.add_argument(
        "--new-qr-keys",
        action="store_true",
        help="create the QR key file with a new random key when it is missing (a first "
        "start); without it a missing file is refused, since a new key would turn every "
        "poster already printed into a refused code",
    )


def _rules_guards(parser: argparse.ArgumentParser) -> None:
    """The rules client's guards, for the commands that call the rules service (a
    command that never does refuses them: outbox, sign-in-phone)."""
    env_flag(
        parser,
        "--rules-breaker-seconds",
        "BOOKING_RULES_BREAKER_SECONDS",
        BREAKER_OPEN_SECONDS,
        "after a rules replica was unreachable or let a call run past its 5 s timeout, "
        "calls skip it for this long (none left: UNAVAILABLE at once), then one probes it",
        type=number_arg(0, 600, kind=float),
    )
    env_flag(
        parser,
        "--rules-max-calls",
        "BOOKING_RULES_MAX_CALLS",
        MAX_CALLS,
        "calls that may wait on the rules service at once (shared among its replicas); "
        "one more waits a moment for a slot, then is UNAVAILABLE: keep it below --db-workers",
        type=number_arg(1, 1000),
    )


def load_keyring(path: Path, create: bool = False) -> Keyring:
    """The QR signing keys. A missing file gets a fresh random key (kept for restarts)
    only when `create` asks (--new-qr-keys, --dev, demo): otherwise it is an operator's
    error, since a secret volume not mounted or a mistyped path would otherwise bring up
    a new key, and every poster already on a wall would be refused (review 65)."""
    if not path.exists() and not create:
        raise OperatorError(
            f"configuration error: QR key file {path} does not exist; a new key would "
            "refuse every QR code already printed. Restore the file, or pass "
            "--new-qr-keys on a first start to create one",
            2,
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key_id = "k" + today_shanghai().strftime("%y%m")
        data = {"active": key_id, "keys": {key_id: secrets.token_hex(32)}}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        _log.warning("created a new QR signing key file", path=str(path))
    try:
        check_private(path, "QR signing key file", readable=False)
    except SecretFileError as exc:
        raise OperatorError(f"refusing to start: {exc}", 2) from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = {str(k): bytes.fromhex(v) for k, v in data["keys"].items()}
        active = data["active"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # never the file's text: it is the keys
        raise OperatorError(
            f"configuration error: QR key file {path}: not "
            f'{{"active": id, "keys": {{id: hex}}}} ({type(exc).__name__})',
            2,
        ) from exc
    try:
        return Keyring(keys, str(active))
    except ValueError as exc:  # the active key not among them, a short key, a bad id
        raise OperatorError(f"configuration error: QR key file {path}: {exc}", 2) from exc


def _rules_token(args: argparse.Namespace) -> str:
    """--rules-token, or under --dev the booking-service token of the dev tokens file."""
    if args.rules_token or not getattr(args, "dev", False):
        return str(args.rules_token)
    return security.write_dev_tokens(security.DEV_TOKENS).get("booking-service", "")


def _may_create_keys(args: argparse.Namespace) -> bool:
    """A missing QR key file may be created: asked for, on a development machine, or for
    the demo (`make run`)."""
    return bool(args.new_qr_keys or getattr(args, "dev", False) or args.run is cmd_demo)


def _context(args: argparse.Namespace) -> BookingContext:
    return BookingContext(
        keyring=load_keyring(Path(args.qr_keys), create=_may_create_keys(args)),
        menu=load_menu(args.menu),
        rules=RulesClient(
            args.rules,
            token=_rules_token(args),
            credentials=client_credentials(
                args.rules_tls_ca, args.rules_tls_cert, args.rules_tls_key
            ),
            # a command that never calls rules has no guard flags (_rules_guards)
            breaker_seconds=float(getattr(args, "rules_breaker_seconds", BREAKER_OPEN_SECONDS)),
            max_calls=int(getattr(args, "rules_max_calls", MAX_CALLS)),
        ),
        public_url=getattr(args, "public_url", ""),  # sweep serves no pages
        hotline=getattr(args, "hotline", "12345"),
        order_limiter=RateLimiter(ORDERS_PER_QR_TOKEN),
        refused_order_limiter=RateLimiter(REFUSED_ORDERS_PER_QR_TOKEN),
        today=today_shanghai,
        regions=load_regions(args.regions),
        # the default backend: codes in the server log (adapters/sms.py), sent off-request
        sms=BackgroundSms(ConsoleSms()),
    )


def warn_console_sms(ctx: BookingContext, *, dev: bool) -> None:
    """At start-up: outside --dev, say loudly that the console SMS backend writes every
    sign-in code to the server log (whoever reads the log can sign in as any firm)."""
    backend = ctx.sms.inner if isinstance(ctx.sms, BackgroundSms) else ctx.sms
    if isinstance(backend, ConsoleSms) and not dev:
        _log.error(
            "SMS: the console backend is in use outside --dev; every firm's sign-in code "
            "is written to this log and nobody receives one. Configure an SMS gateway "
            "(services/booking/adapters/sms.py) before firms sign in.",
            sms_backend="console",
        )


def audit_trail(url: str) -> backup.Trail:
    from services.booking.adapters.orm import audit_head, audit_log

    engine = make_engine(url)
    migrate.upgrade(engine)
    return backup.Trail(engine, audit_log, audit_head)


def cmd_outbox(args: argparse.Namespace) -> int:
    """How many events wait, which were refused and why, which firms they hold; then
    optionally requeue the refused, discard one, or queue again those delivered since a
    day. Every change is in the audit trail under the caller `staff-cli`."""
    from services.booking.service_layer import outbox

    if args.discard and not trim(args.reason):
        print("--discard needs --reason TEXT (kept in the audit trail)", file=sys.stderr)
        return 2
    since = None
    if args.resend_since:
        try:
            since = date.fromisoformat(args.resend_since)
        except ValueError:
            print("--resend-since takes a date YYYY-MM-DD", file=sys.stderr)
            return 2
    engine = make_engine(existing_database(args.db))
    migrate.upgrade(engine)
    with call_scope():
        bind(firm_commands.CALLER)
        _print_outbox(outbox.outbox_status(SqlUnitOfWork(engine)))
        if args.retry_failed:
            requeued = outbox.requeue_failed(SqlUnitOfWork(engine))
            if requeued:
                print(f"requeued {len(requeued)} event(s)")
        if args.discard:
            try:
                done = outbox.discard(SqlUnitOfWork(engine), args.discard, args.reason)
            except DomainError as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 1
            fate = (
                "not sent again, though its last try got no answer: the rules service may "
                "have applied it (check the firm there)"
                if done.maybe_applied
                else "never sent"
            )
            print(
                f"discarded {done.event_id} ({done.kind}) of {done.enterprise_id}: {fate}; "
                f"{done.freed} later event(s) of the firm go on to the rules service"
            )
        if since is not None:
            again = outbox.resend_since(SqlUnitOfWork(engine), since)
            print(
                f"{len(again)} event(s) delivered since {since} queued again; the running "
                "service's worker sends them (the rules service ignores those it still has)"
            )
    return 0


def cmd_scrub_photos(args: argparse.Namespace) -> int:
    """Photos stored before uploads were scrubbed lose their metadata (review 64): in
    batches, each committed on its own; resumable (--after) and idempotent. A photo that
    cannot be read is named and kept. Every rewrite is in the audit trail under
    `staff-cli`."""
    engine = make_engine(existing_database(args.db))
    migrate.upgrade(engine)

    def progress(report: photo_scrub.ScrubReport) -> None:
        print(
            f"... {report.scrubbed} scrubbed, {report.clean} already clean, "
            f"{len(report.unreadable)} unreadable; up to photo {report.last_id} "
            f"(--after {report.last_id} goes on from here)",
            file=sys.stderr,
        )

    with call_scope():
        bind(firm_commands.CALLER)
        report = photo_scrub.scrub_photos(
            lambda: SqlUnitOfWork(engine), after=args.after, batch=args.batch, done_batch=progress
        )
    for photo_id, ticket_id in report.unreadable:
        print(f"  unreadable, kept as it is: photo {photo_id} of ticket {ticket_id}")
    print(
        f"photos: {report.scrubbed} scrubbed, {report.clean} already clean, "
        f"{len(report.unreadable)} unreadable (kept as they are)"
    )
    return 0


def _print_outbox(status: OutboxStatus) -> None:
    print(
        f"{status.waiting} event(s) waiting for delivery; {len(status.parked)} refused by "
        "the rules service or unreadable (parked)"
    )
    for event_id, error in status.parked:
        print(f"  {event_id}: {error}")
    if status.sending:
        print(
            f"{len(status.sending)} event(s) being sent: claimed by a delivery, rules' "
            "answer not recorded yet (a claim lasts "
            f"{LEASE_SECONDS:g} s; times in Asia/Shanghai)"
        )
        for sent in status.sending:
            print(f"  {_being_sent(sent)}")
    if status.held:
        print(
            f"{len(status.held)} firm(s) held: a firm's later events wait behind its "
            "earliest one. Parked: requeue it (--retry-failed, after fixing the cause) or "
            "discard it (--discard EVENT_ID --reason TEXT); refused for now: retried with "
            f"backoff, listed after {HELD_AFTER_SECONDS / 60:g} minutes "
            "(times in Asia/Shanghai)"
        )
        for firm in status.held:
            print(f"  {firm.enterprise_id}: {firm.behind} event(s) held behind {_holding(firm)}")


def _at(instant: datetime) -> str:
    return in_shanghai(instant).strftime("%Y-%m-%d %H:%M:%S")


def _being_sent(sent: BeingSent) -> str:
    """An event being sent, by whom and since when, for `booking outbox`."""
    line = (
        f"{sent.event_id}: {sent.kind} of {sent.enterprise_id}, claimed since "
        f"{_at(sent.since)} by {sent.claimed_by or '(not recorded)'}, "
        f"{sent.attempts} attempt(s); "
    )
    if sent.lapsed:
        return line + (
            f"claim ran out {_at(sent.until)} (its process died or stalled): sent again at "
            "the next pass of a running worker"
        )
    return line + f"claim ends {_at(sent.until)}"


def _holding(firm: HeldFirm) -> str:
    """The event holding a firm, what it came to and since when, for `booking outbox`."""
    if firm.parked:
        state = f"parked, failing since {_at(firm.since)}"
    else:
        state = f"refused for now since {_at(firm.since)}, {firm.attempts} attempt(s)"
        if firm.next_attempt_at is not None:
            state += f", next {_at(firm.next_attempt_at)}"
    return f"{firm.event_id} ({firm.kind}; {state}): {firm.error}"


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    print(f"database at revision {migrate.current_revision(engine)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    ctx = _context(args)
    marked = tickets.sweep(SqlUnitOfWork(engine), ctx)
    report = deliver_pending(SqlUnitOfWork(engine), ctx.rules)
    held = held_firms(SqlUnitOfWork(engine))
    print(
        f"{marked} overdue ticket(s) reported; {report.delivered} event(s) delivered"
        + ("; the rules service is unavailable, the rest will be retried" if report.waiting else "")
        + (
            f"; {len(held)} firm(s) held behind an event the rules service refused or keeps "
            "refusing for now (see booking outbox)"
            if held
            else ""
        )
    )
    return 0


def _warm(ctx: BookingContext) -> None:
    """Fetch the clause catalogue from the rules service, retrying until it answers."""
    delay = 1.0
    while True:
        try:
            count = ctx.rules.warm_clauses()  # type: ignore[attr-defined]
            _log.info("clause catalogue loaded from the rules service", clauses=count)
            return
        except Exception as exc:
            _log.warning("rules service not reachable yet", error=str(exc)[:200])
            time.sleep(delay)
            delay = min(delay * 2, 60)


def _periodic(
    ctx: BookingContext,
    engine: Engine,
    worker: OutboxWorker,
    interval: float,
    stop: threading.Event,
) -> None:
    """Every `interval` seconds: sweep overdue tickets, retry waiting orders (and cancel
    those whose half-days have passed), then wake the outbox worker. Each job runs on its
    own (`_periodic_job`): one that fails is logged and the others still run."""
    jobs = (
        ("sweep", lambda: tickets.sweep(SqlUnitOfWork(engine), ctx)),
        ("redispatch", lambda: dispatch.redispatch_waiting(SqlUnitOfWork(engine), ctx)),
        ("outbox wake", worker.wake),
    )
    while not stop.wait(interval):
        for name, job in jobs:
            _periodic_job(name, job)


def _periodic_job(name: str, job: Callable[[], object]) -> None:
    """Run one periodic job; a failure is logged once, naming the job, and not raised
    (the next interval tries it again)."""
    try:
        job()
    except Exception:
        _log.exception("periodic job failed", job=name)


def _order_group_flags(parser: argparse.ArgumentParser) -> None:
    env_flag(
        parser,
        "--order-group-size",
        "BOOKING_ORDER_GROUP_SIZE",
        None,
        "CreateOrder group commit: at most this many orders that arrive together share "
        "one transaction, each answered after its commit; 1: every order on its own "
        "(unset: 8 on SQLite, 1 on PostgreSQL)",
        type=number_arg(1, 1000),
    )
    env_flag(
        parser,
        "--order-group-wait-ms",
        "BOOKING_ORDER_GROUP_WAIT_MS",
        None,
        "milliseconds a group's first order waits for more while the group is not full "
        "(0: a group is what is queued when it starts; at most 1000; unset: 2)",
        type=number_arg(0, 1000, kind=float),
    )
    env_flag(
        parser,
        "--order-groups",
        "BOOKING_ORDER_GROUPS",
        None,
        "CreateOrder groups applied at once, each in its own transaction (unset: 1 on "
        "SQLite, 2 on PostgreSQL)",
        type=number_arg(1, 64),
    )


def _upload_flags(parser: argparse.ArgumentParser) -> None:
    """What the expert's visit photos may take of the web process (web/uploads.py
    `UploadLimits`, whose defaults apply to what is not given)."""
    env_flag(
        parser,
        "--visit-photo-writers",
        "BOOKING_VISIT_PHOTO_WRITERS",
        None,
        "visits (staff page) writing their photos to the database at once, each holding "
        "about one photo in memory; one more waits up to 60 s for a slot, then its form "
        "comes back to be sent again (unset: 4)",
        type=number_arg(1, 64),
    )
    env_flag(
        parser,
        "--visit-photo-spool-mb",
        "BOOKING_VISIT_PHOTO_SPOOL_MB",
        None,
        "MB of disk (in TMPDIR) the photos of the visits being sent may take together; "
        "a photo past it is refused beside its field, the form kept (unset: 1000)",
        type=number_arg(10, 1_000_000),
    )
    env_flag(
        parser,
        "--upload-idle-seconds",
        "BOOKING_UPLOAD_IDLE_SECONDS",
        None,
        "seconds a request body (a visit's photos, a proof, any form) may send nothing "
        "before it is cut: answered 408, the spool room and files it held given back "
        "(unset: 30)",
        type=number_arg(1, 3600, kind=float),
    )
    env_flag(
        parser,
        "--upload-min-rate-kb",
        "BOOKING_UPLOAD_MIN_RATE_KB",
        None,
        "KB a second a request body must average once past its first idle seconds, or it "
        "is cut the same way (a trickle); 0: no minimum (unset: 4)",
        type=number_arg(0, 1_000_000, kind=float),
    )


def upload_limits(args: argparse.Namespace) -> UploadLimits:
    """The visit photos' limits as given (`_upload_flags`), UploadLimits' defaults for
    what is not."""
    from services.booking.entrypoints.web.uploads import UploadLimits

    limits = UploadLimits()
    if (writers := getattr(args, "visit_photo_writers", None)) is not None:
        limits = replace(limits, writers=int(writers))
    if (spool := getattr(args, "visit_photo_spool_mb", None)) is not None:
        limits = replace(limits, spool_bytes=int(spool) * 1024 * 1024)
    if (idle := getattr(args, "upload_idle_seconds", None)) is not None:
        limits = replace(limits, pace=replace(limits.pace, idle_seconds=float(idle)))
    if (rate := getattr(args, "upload_min_rate_kb", None)) is not None:
        limits = replace(limits, pace=replace(limits.pace, min_rate=float(rate) * 1024))
    return limits


def _order_group_limits(args: argparse.Namespace) -> GroupLimits:
    """CreateOrder's group commit settings as given (their flags' types have checked
    them); what is not given is 0 (the wait: -1), the database's default
    (order_groups.limits_for)."""
    size = getattr(args, "order_group_size", None)
    wait = getattr(args, "order_group_wait_ms", None)
    groups = getattr(args, "order_groups", None)
    return GroupLimits(
        int(size or 0), -1.0 if wait is None else float(wait) / 1000, int(groups or 0)
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from services.booking.entrypoints.web import create_web_app
    from services.booking.entrypoints.web.uploads import Uploads

    guard = security.from_args(args)  # before anything else: refuse to run open
    # a stop while migrating ends the start at once (exit 0); once the server is being
    # built, it drains
    signalled = common_server.catch_stop_signals()
    limits = common_server.limits_from(args)
    engine = make_engine(
        args.db,
        pool_size=limits.db_workers,
        timeouts=common_server.timeouts_from(args),
        sqlite_synchronous=common_server.sqlite_synchronous_from(args),
    )
    migrate.upgrade(engine)
    ctx = _context(args)
    _check_token_regions(guard, ctx)
    warn_console_sms(ctx, dev=bool(getattr(args, "dev", False)))
    signalled.serving()
    worker = OutboxWorker(lambda: SqlUnitOfWork(engine), ctx.rules)
    running = grpc_server.build(
        ctx,
        engine,
        address=args.grpc,
        limits=limits,
        on_outbox=worker.wake,
        security=guard,
        order_groups=_order_group_limits(args),
    )
    host, _, http_port = args.http.rpartition(":")
    uploads = Uploads(upload_limits(args))
    http = start_http(
        create_web_app(ctx, engine, on_outbox=worker.wake, staff=guard.tokens, uploads=uploads),
        host,
        int(http_port),
        trusted_proxies=args.trusted_proxies,
    )
    running.server.start()
    worker.start()
    threading.Thread(target=_warm, args=(ctx,), name="warm-clauses", daemon=True).start()
    stop = threading.Event()
    threading.Thread(
        target=_periodic,
        args=(ctx, engine, worker, args.sweep_interval, stop),
        name="sweep",
        daemon=True,
    ).start()
    watcher = common_server.watch_database(engine, running.health, [grpc_server.SERVICE_NAME])
    _log.info(
        "booking service listening",
        grpc=args.grpc,
        grpc_port=running.port,
        http_port=http.port,
        public_url=args.public_url,
        rules=args.rules,
        database=engine.url.render_as_string(hide_password=True),
    )

    def on_stop() -> None:
        stop.set()
        watcher.set()
        http.stop()
        worker.stop()

    common_server.serve_until_signalled(running, on_stop=on_stop, stop=signalled)
    return 0


def _check_token_regions(guard: security.Security, ctx: BookingContext) -> None:
    """Refuse to start when a tokens file entry names a region regions.yaml does not
    know (its inspector would otherwise see no ticket at all)."""
    if guard.tokens is None or ctx.regions is None:
        return
    for principal in guard.tokens.principals():
        if principal.region and ctx.regions.area(principal.region) is None:
            problem = ctx.regions.problem(principal.region, counties=True)
            raise SystemExit(f"tokens file: {principal.caller}: {problem}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Wait for the rules service, seed experts, issue codes for the demo firms, serve."""
    ctx = _context(args)
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    _wait_for_rules(args.rules)
    today = today_shanghai()
    slots = [f"{today + timedelta(days=d)} {h}" for d in range(1, 15) for h in ("AM", "PM")]
    for expert_id, name, domains, regions in DEMO_EXPERTS:
        experts.upsert_expert(
            SqlUnitOfWork(engine),
            ctx,
            {
                "expert_id": expert_id,
                "name": name,
                "phone": "13900000000",
                "domains": domains,
                "regions": regions,
                "slots": slots,
                "max_visits_per_day": 2,
                "active": True,
            },
        )
    city = demo_city.city(today)
    seeded = demo.seed_city(SqlUnitOfWork(engine), ctx, city)
    _log.info("demo city", seeded=str(seeded) if seeded else "already there")
    logins = staff_accounts.seed_demo_staff(
        SqlUnitOfWork(engine), demo_city.STAFF_EXPERT_ID, ctx.regions
    )
    public = replace(ctx, public_url=args.public_url)
    lines = demo_codes(engine, public, DEMO_FIRMS + _firms_with_open_tickets(city, 2), Path("var"))
    lines.append(SIGN_IN_NOTE)
    print(
        "\nBooking service: phone page on "
        + args.public_url
        + ", gRPC on "
        + args.grpc
        + "\nDemo QR codes (open a URL on a phone or in a browser):\n"
        + "\n".join(lines)
        + f"\nSupervisors' dashboard: {args.public_url}/dashboard\n"
        + f"Staff pages: {args.public_url}/staff/login (demo accounts):\n"
        + "".join(f"  {user:16} {password:22} {role}\n" for user, password, role in logins),
        file=sys.stderr,
    )
    return cmd_serve(args)


def demo_codes(engine: Engine, ctx: BookingContext, firms: Sequence[str], out: Path) -> list[str]:
    """The banner's lines: each demo firm's code URL, its poster written to `out`. The
    current code, a first one only where a firm has none: a restart of `make run` keeps
    the codes (and the posters) of the last one working."""
    lines = []
    for enterprise_id in firms:
        try:
            code = posters.current_code(lambda: SqlUnitOfWork(engine), ctx, enterprise_id)
        except Exception as exc:  # a demo firm missing from the rules register
            lines.append(f"  {enterprise_id}: {exc}")
            continue
        poster = out / f"poster-{enterprise_id}.svg"
        poster.write_text(posters.poster_svg(ctx, code), encoding="utf-8")
        lines.append(f"  {enterprise_id}  {code.url}\n      poster: {poster}")
    return lines


def _firms_with_open_tickets(city: demo_city.City, count: int) -> tuple[str, ...]:
    """A few of the demo city's firms whose page shows tickets still to rectify: the
    demo expert account's first (of demo-inspector's street: the proof they send
    reaches demo-inspector's queue), each with the sign-in mobile SIGN_IN_NOTE names."""
    orders = [*city.staff_orders(), *city.orders]
    found = dict.fromkeys(
        o.enterprise_id for o in orders if any(t.proof_on is None for t in o.tickets)
    )
    return tuple(found)[:count]


def _wait_for_rules(address: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(address) as channel:
        while True:
            try:
                grpc.channel_ready_future(channel).result(timeout=2)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the rules service at {address} did not come up") from None


# what the banner says after the city firms' codes (demo.py gave them this sign-in mobile)
SIGN_IN_NOTE = (
    f"  (a city firm signs in on its page with the mobile {demo.DEMO_PHONE}; the code is in"
    " this log: console SMS)"
)
DEMO_FIRMS = (
    "91330782MA2000001K",
    "91330782MA2000002N",
    "91330782MA2000003R",
    "91330782MA2000004W",
)
DEMO_EXPERTS = (
    (  # the demo expert account's: its orders are in the demo city (demo_city.staff_orders)
        demo_city.STAFF_EXPERT.expert_id,
        demo_city.STAFF_EXPERT.name,
        list(demo_city.STAFF_EXPERT.domains),
        list(demo_city.STAFF_EXPERT.regions),
    ),
    ("E-DUST-01", "李工（粉尘防爆）", ["dust_explosion"], ["北苑街道"]),
    ("E-CHEM-01", "张工（危化品）", ["hazardous_chemicals"], ["临江街道"]),
    (
        "E-GEN-01",
        "王工（综合）",
        ["fire_crowded", "confined_space", "warehousing_logistics", "gas"],
        ["稠城街道", "佛堂镇"],
    ),
)
