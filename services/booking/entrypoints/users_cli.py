"""`python -m services.booking users add|disable|reset-password|list`: staff accounts.

A password never goes on the command line (other users see it in `ps`): `--password-stdin`
reads it from the first line of standard input (prompted without echo on a terminal);
without it a random one is made and printed once. Options are never abbreviated
(`--password` is not `--password-stdin`). A SQLite database must exist already, except
for `add` (whose folder must): a mistyped path is an error, not a new empty database.
The audit trail names the operator as `cli:<os user>`.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from services.booking.adapters import migrate
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.staff import ROLE_SCOPES, Role
from services.booking.service_layer import staff_accounts
from services.common.config import env_flag
from services.common.context import Principal, bind, call_scope
from services.common.db import default_sqlite_url, make_engine
from services.common.errors import DomainError, ValidationError
from services.common.regions import load_regions
from services.common.values import trim


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="staff accounts of the staff pages", allow_abbrev=False)
    actions = users.add_subparsers(required=True, metavar="ACTION", dest="action")
    add = actions.add_parser("add", help="a new account", allow_abbrev=False)
    add.add_argument("username")
    add.add_argument("--name", required=True, help="the person's name, as pages show it")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--region", default="", help="an inspector's 镇街 (name or code)")
    add.add_argument("--expert-id", default="", help="an expert's id in the expert pool")
    _password_flag(add)
    disable = actions.add_parser(
        "disable", help="no more sign-in; signs the person out", allow_abbrev=False
    )
    disable.add_argument("username")
    reset = actions.add_parser(
        "reset-password", help="a new password; unlocks the account", allow_abbrev=False
    )
    reset.add_argument("username")
    _password_flag(reset)
    actions.add_parser(
        "list", help="every account: role, region, expert, state", allow_abbrev=False
    )
    for parser in (add, disable, reset, *actions.choices.values()):
        if not any(a.dest == "db" for a in parser._actions):
            env_flag(parser, "--db", "BOOKING_DB", default_sqlite_url("booking"), "database URL")
    add.add_argument(
        "--regions", default="rulesets/regions.yaml", help="the 镇街 a region may name"
    )
    users.set_defaults(run=cmd_users)


def _password_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else a random one is printed)",
    )


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, made here)."""
    if args.password_stdin:
        if sys.stdin.isatty():  # typed by hand: prompt, and do not echo it
            return getpass.getpass("password: "), False
        return sys.stdin.readline().rstrip("\r\n"), False
    return secrets.token_urlsafe(12), True


def _database_problem(url: str, action: str) -> str | None:
    """Why `url` names no database this action may use (a SQLite file that is not there:
    only `add` may create one, in a folder that exists), or None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "--db: not a database URL"
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(str(parsed.database))
    if not path.parent.is_dir():
        return f"--db: no folder {path.parent}"
    if action != "add" and not path.is_file():
        return f"--db: no database at {path}"
    return None


def _operator() -> Principal:
    """Whom the audit trail names for this command: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal(f"cli:{user}"[:100])


def cmd_users(args: argparse.Namespace) -> int:
    if problem := _database_problem(args.db, args.action):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        with call_scope():
            bind(_operator())
            engine = make_engine(args.db)
            migrate.upgrade(engine)
            return _handled(args, SqlUnitOfWork(engine))
    except DBAPIError as exc:
        where = make_url(args.db).render_as_string(hide_password=True)
        first = trim(str(exc.orig or exc)).splitlines()[0][:200]
        print(f"error: database {where}: {first}", file=sys.stderr)
        return 1


def _handled(args: argparse.Namespace, uow: SqlUnitOfWork) -> int:
    try:
        return _run(args, uow)
    except ValidationError as exc:
        for v in exc.violations:
            print(f"error: {v.field}: {v.description}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, uow: SqlUnitOfWork) -> int:
    if args.action == "list":
        for a in staff_accounts.list_users(uow):
            state = "active" if a.active else "disabled"
            extra = " ".join(x for x in (a.region, a.expert_id) if x)
            print(f"{a.username}\t{a.role}\t{a.display_name}\t{extra or '-'}\t{state}")
        return 0
    if args.action == "disable":
        staff_accounts.disable_user(uow, args.username)
        print(f"{args.username} disabled; signed out everywhere")
        return 0
    password, made = _password(args)
    if args.action == "reset-password":
        staff_accounts.reset_password(uow, args.username, password)
        print(f"{args.username}: new password set; signed out everywhere")
    else:
        new = staff_accounts.NewAccount(
            args.username, args.name, args.role, password, args.region, args.expert_id
        )
        account = staff_accounts.add_user(uow, load_regions(args.regions), new)
        scopes = ", ".join(sorted(ROLE_SCOPES[Role(account.role)]))
        print(f"{account.username} added: {account.role} ({scopes})")
    if made:
        print(f"password: {password}")
    return 0
