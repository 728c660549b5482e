"""`python -m services.booking users add|disable|reset-password|list`: staff accounts.

A password never goes on the command line (other users see it in `ps`): `--password-stdin`
reads it from the first line of standard input; without it a random one is made and
printed once.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from services.booking.adapters import migrate
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.staff import ROLE_SCOPES, Role
from services.booking.service_layer import staff_accounts
from services.common.config import env_flag
from services.common.db import default_sqlite_url, make_engine
from services.common.errors import DomainError, ValidationError
from services.common.regions import load_regions


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = sub.add_parser("users", help="staff accounts of the staff pages")
    actions = users.add_subparsers(required=True, metavar="ACTION", dest="action")
    add = actions.add_parser("add", help="a new account")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="the person's name, as pages show it")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--region", default="", help="an inspector's 镇街 (name or code)")
    add.add_argument("--expert-id", default="", help="an expert's id in the expert pool")
    _password_flag(add)
    disable = actions.add_parser("disable", help="no more sign-in; signs the person out")
    disable.add_argument("username")
    reset = actions.add_parser("reset-password", help="a new password; unlocks the account")
    reset.add_argument("username")
    _password_flag(reset)
    actions.add_parser("list", help="every account: role, region, expert, state")
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
        return sys.stdin.readline().rstrip("\r\n"), False
    return secrets.token_urlsafe(12), True


def cmd_users(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    migrate.upgrade(engine)
    uow = SqlUnitOfWork(engine)
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
