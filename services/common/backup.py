"""Backup and restore of the embedded default (SQLite), for both services' CLIs.

`backup` takes a consistent copy of a live database with SQLite's online backup API, in
one step: it reads one snapshot (WAL: writers go on meanwhile), so the copy holds every
transaction committed before it started and none half. It goes to a temporary file next
to FILE, is checked (integrity_check), and only then renamed to FILE.

`restore` copies a backup back the same way, into a database no server is using, and
checks it. PostgreSQL is backed up with pg_dump (see the README).
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, Table
from sqlalchemy.engine import make_url

from services.common import audit_anchor
from services.common.audit import verify_command
from services.common.config import env_flag
from services.common.db import default_sqlite_url, existing_database, read_snapshot


class BackupError(Exception):
    """Why a backup or restore could not be made (the message says what to do)."""


class Trail(NamedTuple):
    """A migrated database's audit trail (`audit verify`, `audit anchor`, `restore`)."""

    engine: Engine
    log: Table
    head: Table


def sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise BackupError(
            "backup/restore are for the SQLite default; back PostgreSQL up with pg_dump "
            "(README: Backup and restore)"
        )
    return Path(parsed.database)


def _copy(source: Path, target: Path) -> int:
    """Copy `source` into `target` in one backup step; returns the page count."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            dst.execute("PRAGMA synchronous=FULL")  # the copy is on disk when it is done
            try:
                src.backup(dst)  # pages=-1: one snapshot, never restarted by writers
            except sqlite3.DatabaseError as exc:  # not a database, encrypted, torn
                raise BackupError(f"{source} is not a SQLite database we can read: {exc}") from exc
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the copy does not pass integrity_check: {check}")
            return int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
    finally:
        src.close()


def backup(url: str, out: Path, mark: Callable[[Path], None] | None = None) -> int:
    """A consistent copy of the live database at `url` in `out`; returns its pages.
    `mark(copy)` runs on the copy before it takes its name (the rules service marks its
    change feed there as a copy: whoever uses it first renews the feed's epoch)."""
    source = sqlite_path(url)
    if not source.exists():
        raise BackupError(f"no database at {source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        pages = _copy(source, partial)
        if mark is not None:
            mark(partial)
        os.replace(partial, out)
        _sync_folder(out.parent)  # the rename too survives a power cut
    finally:
        partial.unlink(missing_ok=True)
    return pages


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def restore(backup_file: Path, url: str) -> int:
    """Replace the database at `url` (no server may be using it) by `backup_file`."""
    target = sqlite_path(url)
    if not backup_file.exists():
        raise BackupError(f"no backup at {backup_file}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return _copy(backup_file, target)


def add_commands(
    sub: Any,
    env_prefix: str,
    service: str,
    trail: Callable[[str], Trail],
    mark: Callable[[Path], None] | None = None,
    restored: Callable[[str], None] | None = None,
) -> None:
    """`audit verify`, `audit anchor`, `backup --out FILE` and `restore --from FILE` on a
    CLI's subcommands; `trail(url)` opens a database's audit trail (restore verifies it).
    `mark(copy)`: what `backup` does to its copy before naming it; `restored(url)`: what
    `restore` does once the backup is in, before verifying it."""
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        required=True, metavar="ACTION"
    )
    verify = audit.add_parser("verify", help="recompute the hash chain; name the first break")
    env_flag(verify, "--db", f"{env_prefix}_DB", default_sqlite_url(service), "database URL")
    verify.add_argument(
        "--anchor",
        type=Path,
        help="an `audit anchor` file: its heads must still be on their chains",
    )
    verify.add_argument("--digest", help="the anchor's published digest (checks the file)")
    verify.set_defaults(run=lambda args: _cmd_verify(args, service, trail))
    anchor = audit.add_parser(
        "anchor", help="write every chain's head to a file kept outside the database"
    )
    env_flag(anchor, "--db", f"{env_prefix}_DB", default_sqlite_url(service), "database URL")
    anchor.add_argument("--out", type=Path, required=True, help="the anchor file to write")
    anchor.set_defaults(run=lambda args: _cmd_anchor(args, service, trail))
    take = sub.add_parser(
        "backup", help="a consistent copy of the live SQLite database (while it serves)"
    )
    env_flag(take, "--db", f"{env_prefix}_DB", default_sqlite_url(service), "database URL")
    take.add_argument("--out", type=Path, required=True, help="the backup file to write")
    take.set_defaults(run=lambda args: _cmd_backup(args, mark))
    back = sub.add_parser(
        "restore", help="replace the SQLite database by a backup (stop the server first)"
    )
    env_flag(back, "--db", f"{env_prefix}_DB", default_sqlite_url(service), "database URL")
    back.add_argument("--from", dest="source", type=Path, required=True, help="a backup file")
    back.set_defaults(
        run=lambda args: _cmd_restore(args, lambda url: _verify(trail(url)), restored)
    )


def _verify(trail: Trail, anchor: audit_anchor.Anchor | None = None) -> int:
    checked = None
    if anchor is not None:
        checked = functools.partial(audit_anchor.check, log=trail.log, anchor=anchor)
    return verify_command(trail.engine, trail.log, trail.head, checked)


def _cmd_verify(args: argparse.Namespace, service: str, trail: Callable[[str], Trail]) -> int:
    anchor = None
    if args.anchor is not None:
        try:
            anchor = audit_anchor.read(args.anchor, service, args.digest)
        except audit_anchor.AnchorError as exc:
            print(f"audit verify failed: {exc}", file=sys.stderr)
            return 2
        print(f"anchor of {anchor.taken_at.isoformat(timespec='seconds')}, digest {anchor.digest}")
        if args.digest is None:
            print("the digest was not compared with a published one: pass --digest HEX")
    elif args.digest is not None:
        print("audit verify failed: --digest checks an --anchor file", file=sys.stderr)
        return 2
    return _verify(trail(existing_database(args.db)), anchor)


def _cmd_anchor(args: argparse.Namespace, service: str, trail: Callable[[str], Trail]) -> int:
    opened = trail(existing_database(args.db))
    with read_snapshot(opened.engine) as connection:
        anchor = audit_anchor.take(connection, opened.log, opened.head, service)
    try:
        audit_anchor.write(anchor, args.out)
    except OSError as exc:
        print(f"audit anchor failed: {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"anchor of {len(anchor.heads)} chain heads written to {args.out}")
    print(f"digest {anchor.digest}  (publish it where this database's writers cannot change it)")
    return 0


def _attempt(what: str, run: Callable[[], int]) -> int | None:
    """The page count of a backup or restore, or None after saying why it failed."""
    try:
        return run()
    except BackupError as exc:
        print(f"{what} failed: {exc}", file=sys.stderr)
        return None


def _cmd_backup(args: argparse.Namespace, mark: Callable[[Path], None] | None = None) -> int:
    pages = _attempt("backup", lambda: backup(args.db, args.out, mark))
    if pages is None:
        return 1
    print(f"backup written to {args.out} ({pages} pages, integrity ok)")
    return 0


def _cmd_restore(
    args: argparse.Namespace,
    verify_audit: Callable[[str], int],
    restored: Callable[[str], None] | None = None,
) -> int:
    pages = _attempt("restore", lambda: restore(args.source, args.db))
    if pages is None:
        return 1
    print(f"restored {args.source} into {sqlite_path(args.db)} ({pages} pages, integrity ok)")
    if restored is not None:
        restored(args.db)
    return verify_audit(args.db)
