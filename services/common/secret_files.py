"""Permission checks of the files that hold secrets, at start-up (review 64 F4).

The tokens file decides who may call what, and the QR signing keys (`--qr-keys`) sign
every firm's code: a file that anyone but its owner (and its group) may write lets them
add a token or a key, so a server refuses to start with one. The QR keys are secret in
themselves (whoever reads them forges any firm's code), so that file may not be
readable by others either; a tokens file is read by others harmlessly when it holds
only `token_sha256` digests, so a readable one that holds tokens in clear is logged as
a warning (`readable_by_others`), not refused. A server's TLS private key
(`--tls-key`) is held to the QR keys' rule: whoever reads it can pose as the server; so
is a client's TLS key (booking's `--rules-tls-key`, `security.client_credentials`):
whoever reads it can pose as booking to the rules service.
"""

from __future__ import annotations

import stat
from pathlib import Path


class SecretFileError(Exception):
    """A secrets file others may change (or, for keys, read): the message says which."""


def check_private(path: Path, what: str, *, readable: bool = True) -> None:
    """Refuse (SecretFileError) `path` when group or others may write it, or, with
    `readable` False, when others may read it. A missing file is the reader's concern."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SecretFileError(
            f"{what} {path} may be written by group or others (mode {stat.filemode(mode)}): "
            f"chmod go-w {path}"
        )
    if not readable and mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH):
        raise SecretFileError(
            f"{what} {path} may be read by others (mode {stat.filemode(mode)}): chmod o-rwx {path}"
        )


def readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False
