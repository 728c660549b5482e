"""Flags with environment fallbacks: read once at start-up and passed in, never at import."""

from __future__ import annotations

import argparse
import os
from typing import Any


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
