"""Anchors: the audit trail's chain heads written down outside the database.

`audit verify` (audit.py) proves every chain intact from its genesis to its head, but
someone with write access who removes a firm's whole chain *and* its head, or cuts a
chain's newest entries *and* moves its head back, leaves no broken link: the chains
that remain are each whole. An anchor closes that gap up to the moment it was taken.

`audit anchor --out FILE` writes every chain's head (its key, the id and hash of its
last entry) to FILE and prints the anchor's digest (SHA-256 of its heads in canonical
JSON). Keep the file anywhere but the database's own machine and publish the digest
where the database's writers cannot change it (a letter to the supervising authority, a
ticket in another system, a line in a daily report). `audit verify --anchor FILE
[--digest HEX]` then checks, besides every link, that each anchored entry is still on
its chain with the same hash: since the chain up to it verifies, everything written
before the anchor is still there, unchanged. A chain removed, or cut back before an
anchored entry, is named with that entry's id. The digest given (or printed, to compare
with the published one) proves the file itself was not edited.

What an anchor cannot see: entries written after it was taken (take one often, e.g.
daily from cron; each anchor covers everything before it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, select

from services.common.audit import VerifyReport, chains_of
from services.common.clock import now

FORMAT = "audit-anchor/1"
_CHUNK = 1000  # entry ids looked up per query


class AnchorError(Exception):
    """An anchor file that cannot be read or does not match its digest (says why)."""


@dataclass(frozen=True)
class Anchor:
    """Every chain's head at `taken_at`: chain key ("" is the global chain) →
    (id of its last entry, that entry's hash)."""

    service: str
    taken_at: datetime
    heads: Mapping[str, tuple[int, str]]

    @property
    def digest(self) -> str:
        """SHA-256 of the heads in canonical JSON: what is published."""
        canonical = json.dumps(
            sorted([k, i, h] for k, (i, h) in self.heads.items()),
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def take(connection: Connection, log: Table, head: Table, service: str) -> Anchor:
    """The heads of every chain that has an entry (read them in one snapshot: the CLI
    uses db.read_snapshot)."""
    heads: dict[str, tuple[int, str]] = {}
    top = connection.execute(select(head.c.last_id, head.c.last_hash).where(head.c.id == 1)).first()
    if top is not None and top.last_id:
        heads[""] = (int(top.last_id), str(top.last_hash))
    if "chain" in log.c:
        table = chains_of(log)
        query = select(table.c.chain, table.c.last_id, table.c.last_hash).where(table.c.last_id > 0)
        for row in connection.execute(query.execution_options(yield_per=5000)):
            heads[row.chain] = (int(row.last_id), str(row.last_hash))
    return Anchor(service, now(), heads)


def write(anchor: Anchor, path: Path) -> None:
    """The anchor as JSON at `path`, written whole or not at all."""
    body = {
        "format": FORMAT,
        "service": anchor.service,
        "taken_at": anchor.taken_at.isoformat(),
        "digest": anchor.digest,
        "heads": [[k, i, h] for k, (i, h) in sorted(anchor.heads.items())],
    }
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


MAX_ID = 2**31 - 1  # the log's id column (a 32-bit integer on PostgreSQL)
_HASH = re.compile(r"^[0-9a-f]{64}$")
_UNREADABLE = (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError)


def read(path: Path, service: str, digest: str | None = None) -> Anchor:
    """The anchor at `path`, checked against the digest it holds (and `digest`, the
    published one, when given); AnchorError says what is wrong."""
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise AnchorError(f"{path} is not an audit anchor ({FORMAT})")
        if body.get("service") != service:
            raise AnchorError(f"{path} anchors the {str(body.get('service'))[:16]} service")
        heads = dict(_head(row) for row in body["heads"])
        anchor = Anchor(service, datetime.fromisoformat(body["taken_at"]), heads)
        held = body["digest"]
        found = anchor.digest
    except AnchorError:
        raise
    except _UNREADABLE as exc:  # UnicodeError is a ValueError
        raise AnchorError(f"cannot read the anchor {path}: {type(exc).__name__}") from None
    for expected, what in ((held, "the digest it holds"), (digest, "--digest")):
        if expected is not None and str(expected).lower() != found:
            raise AnchorError(f"{path} does not match {what}: the file was changed")
    return anchor


def _head(row: Any) -> tuple[str, tuple[int, str]]:
    """One [chain, id, hash] of an anchor file, checked (ValueError says it is not)."""
    key, entry_id, hashed = row
    if not isinstance(key, str) or not isinstance(entry_id, int) or not isinstance(hashed, str):
        raise ValueError("a head is [chain, id, hash]")
    if not 0 < entry_id <= MAX_ID or not _HASH.match(hashed):
        raise ValueError("a head's id or hash is out of range")
    key.encode()  # a lone surrogate cannot be a stored key (UnicodeEncodeError)
    return key, (entry_id, hashed)


def check(connection: Connection, log: Table, anchor: Anchor) -> VerifyReport | None:
    """The first anchored entry no longer on its chain with its hash, or None. Run after
    `audit.verify` has found every chain intact: an anchored entry still in place then
    proves its chain unchanged up to it. The report counts no entries (it reads none in
    order): `verify_command` gives it verify's count."""
    chained = "chain" in log.c
    columns = [log.c.id, log.c.hash, *([log.c.chain] if chained else [])]
    wanted = sorted((i, k, h) for k, (i, h) in anchor.heads.items())
    for part in _chunks(wanted):
        query = select(*columns).where(log.c.id.in_([i for i, _, _ in part]))
        found = {r.id: (r.chain if chained else "", r.hash) for r in connection.execute(query)}
        for entry_id, key, hashed in part:
            if found.get(entry_id) != (key, hashed):
                where = f"chain {key[:24]!r}" if key else "the global chain"
                return VerifyReport(
                    0,
                    entry_id,
                    f"{where} no longer holds its head of the anchor taken "
                    f"{anchor.taken_at:%Y-%m-%d %H:%M} UTC (entries written before the "
                    "anchor were removed or replaced)",
                )
    return None


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
