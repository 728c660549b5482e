"""Flags with environment fallbacks: read once at start-up and passed in, never at import."""

from __future__ import annotations

import argparse
import os
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


def command_line(prog: str, description: str, env_prefix: str) -> argparse.ArgumentParser:
    """A service's parser with the logging flags every command shares; each subcommand
    sets `run` (a function of the parsed arguments returning the exit status)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    env_flag(parser, "--log-level", f"{env_prefix}_LOG_LEVEL", "info", "log level")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    return parser


class StoppedWhileStarting(BaseException):
    """A stop signal arrived before a server was up (`server.StopSignal`): its start-up
    is abandoned where it stood (a migration's transaction rolls back) and the command
    exits 0, as after a drain. A BaseException, so no `except Exception` on the way
    swallows it."""


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, set up logging, run the chosen command; Ctrl-C exits 130, a server stopped
    while it was starting 0."""
    args = parser.parse_args(argv)
    common_logging.configure(args.log_level, json=args.log_json)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except StoppedWhileStarting as stopped:
        structlog.get_logger("server").info("stopped while starting", signal=str(stopped))
        return 0
