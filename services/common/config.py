"""Flags with environment fallbacks: read once at start-up and passed in, never at import."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from services.common import logging as common_logging


def env_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    default: Any = None,
    help_text: str = "",
    **kwargs: Any,
) -> None:
    """Add `--flag`, defaulting to $ENV, then `default`; the help names the variable."""
    value = os.environ.get(env, default)
    parser.add_argument(
        flag, default=value, help=f"{help_text} [env {env}, default {default}]", **kwargs
    )


def number_arg(low: float, high: float | None = None, *, kind: type = int) -> Any:
    """For argparse: a number of `kind` (int: whole) from `low` to `high` (None: no top);
    nan and infinity are never one."""
    words = "a whole number" if kind is int else "a number"
    limits = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not low <= value <= (high if high is not None else value):
            raise argparse.ArgumentTypeError(f"must be {words} {limits}")
        return value

    return parse


def is_https(url: str) -> bool:
    """Whether `url` is an https:// one, its scheme in any case (`HTTPS://` too): the
    scheme of a URL is case-insensitive (RFC 3986 3.1), and a public URL written in
    capitals must still give Secure cookies."""
    return url[:8].lower() == "https://"


def public_url_arg(text: str) -> str:
    """For argparse: the base URL the QR codes and posters point to, http(s)://host[:port]
    [/path], without a trailing slash; anything else would be printed on every poster.
    Its scheme comes back in lower case (`HTTPS://` is `https://`): whatever compares it
    later (the Secure flag of the cookies) sees one spelling."""
    from urllib.parse import urlsplit

    value = text.rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in value)
    ):
        raise argparse.ArgumentTypeError(
            f"{text[:60]!r}: must be http(s)://HOST[:PORT][/PATH], the address phones open"
        )
    return parts.scheme + value[len(parts.scheme) :]  # urlsplit's scheme is lower case


def command_line(prog: str, description: str, env_prefix: str) -> argparse.ArgumentParser:
    """A service's parser with the logging flags every command shares; each subcommand
    sets `run` (a function of the parsed arguments returning the exit status)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    env_flag(parser, "--log-level", f"{env_prefix}_LOG_LEVEL", "info", "log level")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    return parser


class OperatorError(Exception):
    """Something the operator fixes on the command line or in a file or server it names
    (an address taken, a key file that is not one): `run_command` prints the message as
    one line on stderr and exits with `status`, never a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def operator_problem(exc: BaseException) -> tuple[str, int] | None:
    """The one line (and exit status) for an error of the operator's setting, None for
    any other (a defect: its traceback stays). The tokens file and the database named by
    --db are the commonest: the message names the file, or what the database driver said
    (its first line: never the URL, which may hold a password)."""
    from sqlalchemy import exc as sa_exc

    from services.common.auth import TokenFileError

    if isinstance(exc, OperatorError):
        return str(exc), exc.status
    if isinstance(exc, TokenFileError):
        return f"configuration error: tokens file {exc}", 2
    if isinstance(exc, sa_exc.NoSuchModuleError) or (
        isinstance(exc, sa_exc.ArgumentError) and "parse SQLAlchemy URL" in str(exc)
    ):  # the message quotes the scheme at most, never the whole URL
        return f"database error: --db is not a database URL we can use ({exc})", 2
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        said = str(getattr(exc, "orig", None) or exc)
        first = next((line for line in said.splitlines() if line.strip()), said)
        return f"database error: {first[:300]}", 1
    return None


class StoppedWhileStarting(BaseException):
    """A stop signal arrived before a server was up (`server.StopSignal`): its start-up
    is abandoned where it stood (a migration's transaction rolls back) and the command
    exits 0, as after a drain. A BaseException, so no `except Exception` on the way
    swallows it."""


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, set up logging, run the chosen command; Ctrl-C exits 130, a server stopped
    while it was starting 0. An error of the operator's setting (operator_problem) is one
    line on stderr, exit 1 or 2."""
    args = parser.parse_args(argv)
    common_logging.configure(args.log_level, json=args.log_json)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except StoppedWhileStarting as stopped:
        structlog.get_logger("server").info("stopped while starting", signal=str(stopped))
        return 0
    except Exception as exc:
        problem = operator_problem(exc)
        if problem is None:
            raise
        print(problem[0], file=sys.stderr)
        return problem[1]
