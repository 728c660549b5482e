"""Flags with environment fallbacks: read once at start-up and passed in, never at import."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

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


def command_line(prog: str, description: str, env_prefix: str) -> argparse.ArgumentParser:
    """A service's parser with the logging flags every command shares; each subcommand
    sets `run` (a function of the parsed arguments returning the exit status)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    env_flag(parser, "--log-level", f"{env_prefix}_LOG_LEVEL", "info", "log level")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, set up logging, run the chosen command; Ctrl-C exits 130."""
    args = parser.parse_args(argv)
    common_logging.configure(args.log_level, json=args.log_json)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
