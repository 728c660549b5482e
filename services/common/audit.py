"""A tamper-evident audit trail: every state change, who made it, before and after.

How it works, for both services:
* An `after_flush` listener on the unit of work's sessions collects one entry per
  inserted, updated or deleted record of an audited class (its changed fields before and
  after), with the caller bound to the current call (services/common/context.py).
* At `before_commit` the entries are sealed: the single `audit_head` row is locked
  (PostgreSQL `FOR UPDATE`; SQLite's BEGIN IMMEDIATE already serialises writers), each
  entry's hash is SHA-256(previous hash + canonical JSON of the entry), and the rows and
  the new head are written in the same transaction as the change they describe. The head
  lock is taken only in the commit phase, after all row locks, so it cannot deadlock.
* `verify` recomputes the chain and names the first entry that does not match, which is
  where someone edited, deleted or inserted a row by hand (the head also catches a cut tail).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from services.common.context import current_caller

GENESIS = "0" * 64
_PENDING = "audit_pending"


def audit_tables(metadata: MetaData) -> tuple[Table, Table]:
    log = Table(
        "audit_log",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", String(40), nullable=False),
        Column("caller", String(100), nullable=False),
        Column("action", String(16), nullable=False),
        Column("entity", String(40), nullable=False),
        Column("entity_id", String(64), nullable=False, index=True),
        Column("before", JSON, nullable=True),
        Column("after", JSON, nullable=True),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    )
    head = Table(
        "audit_head",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("last_id", Integer, nullable=False),
        Column("last_hash", String(64), nullable=False),
        Column("note", Text, nullable=False, server_default=""),
    )
    return log, head


@dataclass(frozen=True)
class Audited:
    """How to record one mapped class: its entity name, id field, and the fields to keep.
    `redact` maps a field to a function that makes it safe to keep (e.g. mask a phone)."""

    entity: str
    id_field: str
    fields: tuple[str, ...]
    redact: Mapping[str, Callable[[Any], Any]] | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def entry_hash(prev: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev + canonical(entry)).encode()).hexdigest()


class AuditTrail:
    """Attach to a sessionmaker; records the audited classes' changes, sealed at commit."""

    def __init__(self, log: Table, head: Table, audited: Mapping[type, Audited]) -> None:
        self.log, self.head, self.audited = log, head, dict(audited)

    def install(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "after_flush", self._collect)
        event.listen(factory, "before_commit", self._seal)
        event.listen(factory, "after_rollback", lambda s: s.info.pop(_PENDING, None))

    def _collect(self, session: Session, _context: Any) -> None:
        pending = session.info.setdefault(_PENDING, [])
        for action, objects in (
            ("create", session.new),
            ("update", session.dirty),
            ("delete", session.deleted),
        ):
            for obj in objects:
                spec = self.audited.get(type(obj))
                if spec is not None:
                    entry = self._entry(spec, obj, action)
                    if entry is not None:
                        pending.append(entry)

    def _entry(self, spec: Audited, obj: Any, action: str) -> dict[str, Any] | None:
        state = inspect(obj)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for name in spec.fields:
            history = state.attrs[name].history
            now = _plain(getattr(obj, name))
            if action == "update":
                if not history.has_changes():
                    continue
                before[name] = self._safe(
                    spec, name, _plain(history.deleted[0]) if history.deleted else None
                )
            after[name] = self._safe(spec, name, now)
        if action == "update" and not after:
            return None
        return {
            "caller": current_caller(),
            "action": action,
            "entity": spec.entity,
            "entity_id": str(getattr(obj, spec.id_field)),
            "before": before or None,
            "after": None if action == "delete" else after,
        }

    @staticmethod
    def _safe(spec: Audited, name: str, value: Any) -> Any:
        redact = (spec.redact or {}).get(name)
        return redact(value) if redact and value is not None else value

    def _seal(self, session: Session) -> None:
        session.flush()  # commit's own flush comes after before_commit: collect it first
        pending = session.info.pop(_PENDING, [])
        if pending:
            append(
                session.connection(),
                self.log,
                self.head,
                pending,
                lock=session.get_bind().dialect.name != "sqlite",
            )


def append(
    connection: Connection,
    log: Table,
    head: Table,
    entries: Iterable[dict[str, Any]],
    *,
    lock: bool,
) -> None:
    """Chain and write entries after the current head, in one go."""
    query = select(head.c.last_id, head.c.last_hash).where(head.c.id == 1)
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise RuntimeError("audit_head row missing: run the migrations")
    prev, last_id = row.last_hash, row.last_id
    for entry in entries:
        sealed = {**entry, "at": datetime.now(UTC).isoformat(timespec="microseconds")}
        digest = entry_hash(prev, sealed)
        result = connection.execute(insert(log).values(**sealed, prev_hash=prev, hash=digest))
        key = result.inserted_primary_key
        assert key is not None
        last_id, prev = int(key[0]), digest
    connection.execute(update(head).where(head.c.id == 1).values(last_id=last_id, last_hash=prev))


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    broken_at: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.broken_at is None


FIELDS = ("at", "caller", "action", "entity", "entity_id", "before", "after")


def verify(connection: Connection, log: Table, head: Table) -> VerifyReport:
    """Recompute the chain; report the first entry whose link or content does not match."""
    prev, count = GENESIS, 0
    last_id = 0
    for row in connection.execute(select(log).order_by(log.c.id)):
        count += 1
        entry = {name: getattr(row, name) for name in FIELDS}
        if row.prev_hash != prev:
            return VerifyReport(
                count,
                row.id,
                "its previous-hash link does not match the "
                "entry before it (a row was removed or added)",
            )
        if entry_hash(prev, entry) != row.hash:
            return VerifyReport(
                count, row.id, "its content does not match its hash (the row was edited)"
            )
        prev, last_id = row.hash, row.id
    top = connection.execute(select(head.c.last_id, head.c.last_hash).where(head.c.id == 1)).first()
    if top is None or (top.last_hash, top.last_id) != (prev, last_id):
        return VerifyReport(
            count,
            last_id + 1,
            "the chain ends before the recorded head (entries were removed from the end)",
        )
    return VerifyReport(count, None, "")


def verify_command(engine: Any, log: Table, head: Table) -> int:
    """`… audit verify`: print the result; exit code 1 when the chain is broken."""
    with engine.connect() as connection:
        report = verify(connection, log, head)
    if report.ok:
        print(f"audit trail intact: {report.entries} entries, every link verified")
        return 0
    print(
        f"audit trail BROKEN at entry {report.broken_at}: {report.reason} "
        f"({report.entries} entries read)"
    )
    return 1
