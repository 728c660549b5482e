"""The one way both services parse the project's YAML files (rulesets/*.yaml, which
the rules service and booking both read: menu.yaml and regions.yaml).

One parser for every reader, so the two services accept and refuse the same files:
libyaml's safe loader when PyYAML was built with it (the wheels pinned in
requirements.lock are), the same data in a tenth of the pure-Python loader's time
(most of a command's start, e.g. `reevaluate`'s); the pure-Python safe loader
otherwise. Whatever a parser raises on a file it cannot read (a YAML error, a bad
escape's ValueError, nesting deep enough for a RecursionError) becomes one
`YamlFileError` naming the file, so a person sees a message, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MESSAGE_MAX = 300  # characters of the parser's own message kept (it may quote the file)


class YamlFileError(ValueError):
    """A file that is not YAML the project can read; the message names the file."""


def parse_yaml(raw: bytes | str, name: str) -> Any:
    """The file's data (`name` only names it in the error)."""
    try:
        return yaml.load(raw, Loader=LOADER)  # a safe loader, C or Python
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        text = " ".join(str(exc).split())[:MESSAGE_MAX] or type(exc).__name__
        raise YamlFileError(f"{name}: not valid YAML: {text}") from None


def read_yaml_file(path: Path) -> Any:
    """The data of the file at `path`; YamlFileError names it when it cannot be read
    or parsed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlFileError(f"{path.name}: {exc.strerror or exc}") from None
    return parse_yaml(raw, path.name)
