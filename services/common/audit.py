"""A tamper-evident audit trail: every state change, who made it, before and after.

How it works, for both services:
* An `after_flush` listener on the unit of work's sessions collects one entry per
  inserted, updated or deleted record of an audited class (its changed fields before and
  after), with the caller bound to the current call (services/common/context.py). A
  repository that writes a record itself (Core statements, no flush) adds the same
  entries through `AuditTrail.created` and `changed`.
* At `before_commit` (of the transaction, not of a savepoint: a savepoint rolled back
  drops only the entries collected since it began) the entries are sealed onto their
  chain: each entry's hash is
  SHA-256(previous hash of its chain + canonical JSON of the entry), and the rows and the
  chain's new head are written in the same transaction as the change they describe.
* Chains. An audited class may name a `chain_field` (the rules register chains per firm:
  `enterprise_id`; booking per firm and per expert, its keys prefixed with
  `chain_prefix`, "firm:" or "expert:"); its entries go on that key's own chain, whose head
  is a row of `audit_chains`. Entries of classes without one (booking's photos and staff
  accounts, and rows from before the per-key chains) stay on the one global chain, whose
  head is the single `audit_head` row. Each
  head touched is locked (PostgreSQL `FOR UPDATE`, in key order; SQLite's BEGIN IMMEDIATE
  already serialises writers) only in the commit phase, after all row locks, so it cannot
  deadlock. A repository may take that lock itself at the commit, sent with its last
  write (booking's order insert: one round trip instead of two), and tell the seal so
  (`AuditTrail.heads_locked`); the seal then reads no head again. In rules a firm's
  writers already hold its row lock, so its chain's head adds
  no waiting; in booking a dispatch already holds its expert's row, and two orders of one
  firm queue on the firm's head only for their commits. Writers of different keys never
  wait on each other for the trail.
* `verify` recomputes every chain and names the first entry that does not match, which is
  where someone edited, deleted, inserted or reordered a row by hand (each head also
  catches a cut tail).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Index,
    Insert,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TextClause,
    Update,
    bindparam,
    event,
    exists,
    func,
    insert,
    inspect,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from services.common.context import current_caller
from services.common.db import read_snapshot, sqlite_driver_run

GENESIS = "0" * 64
_PENDING = "audit_pending"
_MARKS = "audit_savepoints"  # entries collected before each open savepoint
_LOCKED = "audit_heads_locked"  # (keys, {chain: last_hash}): heads locked before the seal


CHAINS = "audit_chains"  # the per-key heads, for trails created with chains=True


def audit_tables(
    metadata: MetaData,
    *,
    chains: bool = False,
    chain_length: int = 64,
    entity_index: bool = True,
) -> tuple[Table, Table]:
    """The log and the global head; with `chains`, the log's `chain` column (keys of up
    to `chain_length` characters) and the `audit_chains` heads (found again through the
    log's metadata) as well. `entity_index`: the log's entries indexed by entity id
    (ix_audit_log_entity_id); the rules register has none (its migration 0014)."""
    extra: list[Any] = []
    if chains:
        extra = [
            Column("chain", String(chain_length), nullable=False, server_default=""),
            Index("ix_audit_log_chain_id", "chain", "id"),
        ]
        Table(
            CHAINS,
            metadata,
            Column("chain", String(chain_length), primary_key=True),
            Column("last_id", Integer, nullable=False),
            Column("last_hash", String(64), nullable=False),
        )
    log = Table(
        "audit_log",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", String(40), nullable=False),
        Column("caller", String(100), nullable=False),
        Column("action", String(16), nullable=False),
        Column("entity", String(40), nullable=False),
        Column("entity_id", String(64), nullable=False, index=entity_index),
        Column("before", JSON, nullable=True),
        Column("after", JSON, nullable=True),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        *extra,
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
    `redact` maps a field to a function that makes it safe to keep (e.g. mask a phone);
    `chain_field` names the field whose value, after `chain_prefix`, is the entry's chain
    (None: the global one). The prefix keeps apart keys of different kinds that could be
    equal (an expert's id and a firm's)."""

    entity: str
    id_field: str
    fields: tuple[str, ...]
    redact: Mapping[str, Callable[[Any], Any]] | None = None
    chain_field: str | None = None
    chain_prefix: str = ""


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


def plain_entry_hash(prev: str, entry: Mapping[str, Any]) -> str:
    """`entry_hash` of an entry whose values are only str, int, bool, None and dicts and
    lists of them (no float, date or other type `canonical` turns by `default=str`):
    orjson's sorted compact UTF-8 is then `canonical`'s text, at a fraction of its cost
    (a test compares the two on control characters, non-BMP text and nesting)."""
    return hashlib.sha256(
        prev.encode() + orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


class AuditTrail:
    """Attach to a sessionmaker; records the audited classes' changes, sealed at commit."""

    def __init__(self, log: Table, head: Table, audited: Mapping[type, Audited]) -> None:
        self.log, self.head, self.audited = log, head, dict(audited)

    def install(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "after_flush", self._collect)
        event.listen(factory, "before_commit", self._seal)
        event.listen(factory, "after_transaction_create", _mark_savepoint)
        event.listen(factory, "after_transaction_end", _unmark_savepoint)
        event.listen(factory, "after_rollback", _discard)

    def holds(self, session: Session) -> bool:
        """Entries of `session` recorded and not yet sealed."""
        return bool(session.info.get(_PENDING))

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
        entry = {
            "caller": current_caller(),
            "action": action,
            "entity": spec.entity,
            "entity_id": str(getattr(obj, spec.id_field)),
            "before": before or None,
            "after": None if action == "delete" else after,
        }
        if spec.chain_field is not None:
            entry["chain"] = spec.chain_prefix + str(getattr(obj, spec.chain_field))
        return entry

    # Changes a repository writes itself (Core statements, no ORM flush) are recorded
    # here, with the entries the flush would have collected (_collect), in the same list:
    # sealed at the commit, dropped with a savepoint rolled back.

    def values(self, record: Any, spec: Audited | None = None) -> dict[str, Any]:
        """The audited fields of `record` as they are now (lists copied): what `changed`
        compares against later. `spec`: how to record it, for a class whose flushes are
        not audited but some deliberate changes are (booking's outbox: an operator's
        discard or requeue, not every delivery); default: its class's."""
        spec = spec or self.audited[type(record)]
        return {
            name: list(v) if isinstance(v := getattr(record, name), list) else v
            for name in spec.fields
        }

    def created(self, session: Session, record: Any, values: Mapping[str, Any]) -> None:
        """Record the creation of `record` with its audited fields' `values` (`values()`
        of it as it was inserted, or as it was first taken, before later changes that
        `changed` records)."""
        spec = self.audited[type(record)]
        after = {name: self._safe(spec, name, _plain(values[name])) for name in spec.fields}
        self._record(session, spec, record, "create", None, after)

    def changed(
        self,
        session: Session,
        record: Any,
        before: Mapping[str, Any],
        spec: Audited | None = None,
    ) -> None:
        """Record an update of `record` from the audited fields' values `before` to its
        own now: the fields that differ, as the flush's history would name them (no entry
        when none does). `spec` as for `values`."""
        spec = spec or self.audited[type(record)]
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        for name in spec.fields:
            now = getattr(record, name)
            if now != before[name]:
                old[name] = self._safe(spec, name, _plain(before[name]))
                new[name] = self._safe(spec, name, _plain(now))
        if new:
            self._record(session, spec, record, "update", old, new)

    def _record(
        self,
        session: Session,
        spec: Audited,
        record: Any,
        action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any],
    ) -> None:
        entry = {
            "caller": current_caller(),
            "action": action,
            "entity": spec.entity,
            "entity_id": str(getattr(record, spec.id_field)),
            "before": before,
            "after": after,
        }
        if spec.chain_field is not None:
            entry["chain"] = spec.chain_prefix + str(getattr(record, spec.chain_field))
        session.info.setdefault(_PENDING, []).append(entry)

    @staticmethod
    def _safe(spec: Audited, name: str, value: Any) -> Any:
        redact = (spec.redact or {}).get(name)
        return redact(value) if redact and value is not None else value

    def pending_chains(self, session: Session) -> list[str]:
        """The per-key chains the entries collected so far go to, in key order (the
        order their heads are locked in)."""
        return sorted({e["chain"] for e in session.info.get(_PENDING, ()) if e.get("chain")})

    @staticmethod
    def heads_locked(session: Session, keys: Sequence[str], rows: Iterable[Any]) -> None:
        """Say that this transaction has already read and locked the heads of the chains
        `keys` (`rows`: (chain, last_hash) of those that have one, as `heads_query` reads
        them), so that the seal does not read them again (a repository that sends that
        read with a write of its own: one round trip instead of two). The seal uses them
        only when they cover every chain it appends to; a rollback forgets them."""
        session.info[_LOCKED] = (frozenset(keys), {r[0]: r[1] for r in rows})

    @staticmethod
    def forget_locked(session: Session) -> None:
        """Forget the heads `heads_locked` named: a rollback to a savepoint taken before
        them (raw SQL: no rollback event SQLAlchemy sees) released their locks."""
        session.info.pop(_LOCKED, None)

    def _seal(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint's release: its entries are sealed with the transaction's
        session.flush()  # commit's own flush comes after before_commit: collect it first
        pending = session.info.pop(_PENDING, [])
        locked = session.info.pop(_LOCKED, None)
        if pending:
            append(
                session.connection(),
                self.log,
                self.head,
                pending,
                lock=session.get_bind().dialect.name != "sqlite",
                locked=locked,
            )


def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint begins: remember how many entries were collected before it."""
    if transaction.nested:
        marks = session.info.setdefault(_MARKS, [])
        marks.append(len(session.info.get(_PENDING, [])))


def _unmark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and session.info.get(_MARKS):
        session.info[_MARKS].pop()


def _discard(session: Session) -> None:
    """A rollback drops the entries of what it undid: a savepoint's, or all of them."""
    marks = session.info.get(_MARKS)
    if session.in_nested_transaction() and marks:
        del session.info.get(_PENDING, [])[marks[-1] :]
    else:
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)
    session.info.pop(_LOCKED, None)  # read again at the seal (what a savepoint undid aside)


def append(
    connection: Connection,
    log: Table,
    head: Table,
    entries: Iterable[dict[str, Any]],
    *,
    lock: bool,
    locked: tuple[frozenset[str], dict[str, str]] | None = None,
) -> None:
    """Chain and write entries after their chains' heads, in one go: the global chain
    (entries without a "chain" key) after `audit_head`, every other chain after its row
    of `audit_chains` (created by its first entry). `locked`: heads this transaction
    has already read and locked (AuditTrail.heads_locked), used when they cover every
    chain of the entries (else all are read, and locked, again)."""
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_chain.setdefault(entry.get("chain", ""), []).append(entry)
    glob = by_chain.pop("", None)
    if glob:
        _append_global(connection, log, head, glob, lock=lock)
    if by_chain:
        known = locked[1] if locked is not None and locked[0].issuperset(by_chain) else None
        _append_chains(connection, log, chains_of(log), by_chain, lock=lock, heads=known)


def chains_of(log: Table) -> Table:
    """The per-key heads that go with `log` (audit_tables(..., chains=True))."""
    assert log.metadata is not None
    table = log.metadata.tables.get(CHAINS)
    if table is None:
        raise RuntimeError("this audit trail has no per-key chains (audit_tables(chains=True))")
    return table


def _stamped(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    return [{**entry, "at": at} for entry in entries]


def _link(prev: str, entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    rows = []
    for entry in entries:
        digest = entry_hash(prev, entry)
        rows.append({**entry, "prev_hash": prev, "hash": digest})
        prev = digest
    return rows, prev


def _insert(connection: Connection, log: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows (one statement, many values) and return their ids in row order."""
    result = connection.execute(_insert_returning(log), rows)
    return [int(i) for i in result.scalars()]


# A commit's audit statements, built once per table (building one and computing its cache
# key took ~0.14 ms a commit); values come as parameters, the SQL is unchanged.


@cache
def _insert_returning(log: Table) -> Insert:
    return insert(log).returning(log.c.id, sort_by_parameter_order=True)


@cache
def heads_query(chains: Table, lock: bool = True) -> TextClause:
    """PostgreSQL: (chain, last_hash) of the heads of the chains in the array parameter
    :keys, in key order, locked with `lock` (what the seal reads; for a repository that
    sends it with its own statements: AuditTrail.heads_locked, the rules' batch writer)."""
    sql = f"SELECT chain, last_hash FROM {chains.name} WHERE chain = ANY(:keys) ORDER BY chain"
    return text(sql + (" FOR UPDATE" if lock else ""))


@cache
def _heads_query(chains: Table, lock: bool) -> Select[Any]:
    query = select(chains.c.chain, chains.c.last_hash)
    query = query.where(chains.c.chain.in_(bindparam("keys", expanding=True)))
    query = query.order_by(chains.c.chain)
    return query.with_for_update() if lock else query


@lru_cache(maxsize=64)
def _sqlite_heads(chains: Table, count: int) -> Select[Any]:
    """SQLite: `_heads_query` (unlocked: one writer at a time) for `count` chains named
    :k0…, one parameter each, so that it is compiled once for the driver (a list
    parameter is expanded into the SQL on every execution)."""
    wanted = [bindparam(f"k{n}", type_=chains.c.chain.type) for n in range(count)]
    return select(chains.c.chain, chains.c.last_hash).where(chains.c.chain.in_(wanted))


@cache
def _move_heads(chains: Table) -> Update:
    return (
        update(chains)
        .where(chains.c.chain == bindparam("_chain"))
        .values(last_id=bindparam("last_id"), last_hash=bindparam("last_hash"))
    )


_ONE_STATEMENT_ROWS = 32  # more in one commit (a large group): the insert, then the moves


def rows_select(table: Table, names: Sequence[str], count: int, prefix: str = "") -> Any:
    """`count` rows of parameters (:<prefix><name>_<n>, typed as `table`'s columns
    `names`) as one SELECT ... UNION ALL SELECT ..., for INSERT ... SELECT: unlike a
    multi-row VALUES, SQLAlchemy caches its compiled form (compiling cost more than the
    database's work)."""
    rows = [
        select(*(bindparam(f"{prefix}{name}_{n}", type_=table.c[name].type) for name in names))
        for n in range(count)
    ]
    return rows[0] if count == 1 else union_all(*rows)


@lru_cache(maxsize=64)
def _insert_rows(log: Table, names: tuple[str, ...], count: int) -> Insert:
    """One insert of `count` rows (:<name>_<n>, the columns `names`), numbered in the
    order given."""
    return insert(log).from_select(list(names), rows_select(log, names, count))


@cache
def _move_heads_to_last(log: Table, chains: Table) -> Update:
    """Move the head of chain :_chain to its last row (the highest id of the chain: this
    transaction holds the head, so no one else appended to it) and :last_hash."""
    last = select(func.max(log.c.id)).where(log.c.chain == chains.c.chain).scalar_subquery()
    return (
        update(chains)
        .where(chains.c.chain == bindparam("_chain"))
        .values(last_id=last, last_hash=bindparam("last_hash"))
    )


@lru_cache(maxsize=64)
def _insert_and_move(log: Table, chains: Table, names: tuple[str, ...], count: int) -> Update:
    """PostgreSQL: _insert_rows and the move of each of their chains' heads to its last
    row (the highest id), in one statement (a data-modifying WITH): one round trip
    instead of two. The heads are already locked (_heads_query)."""
    written = _insert_rows(log, names, count).returning(log.c.id, log.c.chain, log.c.hash)
    rows = written.cte("written")
    later = rows.alias("later")
    last = ~exists().where(later.c.chain == rows.c.chain, later.c.id > rows.c.id)
    return (
        update(chains)
        .where(chains.c.chain == rows.c.chain, last)
        .values(last_id=rows.c.id, last_hash=rows.c.hash)
    )


def _append_global(
    connection: Connection, log: Table, head: Table, entries: list[dict[str, Any]], *, lock: bool
) -> None:
    query = select(head.c.last_id, head.c.last_hash).where(head.c.id == 1)
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise RuntimeError("audit_head row missing: run the migrations")
    rows, last_hash = _link(row.last_hash, _stamped(entries))
    ids = _insert(connection, log, rows)
    connection.execute(
        update(head).where(head.c.id == 1).values(last_id=ids[-1], last_hash=last_hash)
    )


def _append_chains(
    connection: Connection,
    log: Table,
    chains: Table,
    by_chain: dict[str, list[dict[str, Any]]],
    *,
    lock: bool,
    heads: Mapping[str, str] | None = None,
) -> None:
    keys = sorted(by_chain)  # heads locked in key order: two writers cannot deadlock on them
    if heads is None and connection.dialect.name == "sqlite":  # by the driver: _sqlite_heads
        named = {f"k{n}": key for n, key in enumerate(keys)}
        stored = sqlite_driver_run(connection, _sqlite_heads(chains, len(keys)), named)
        heads = {chain: last_hash for chain, last_hash in stored}
    elif heads is None:
        query = _heads_query(chains, lock)
        heads = {r.chain: r.last_hash for r in connection.execute(query, {"keys": keys})}
    else:
        heads = {key: heads[key] for key in keys if key in heads}
    rows: list[dict[str, Any]] = []
    ends: list[tuple[str, int, str]] = []  # (chain, index of its last row, its hash)
    for key in keys:
        linked, last_hash = _link(heads.get(key, GENESIS), _stamped(by_chain[key]))
        rows.extend(linked)
        ends.append((key, len(rows) - 1, last_hash))
    if len(rows) <= _ONE_STATEMENT_ROWS and all(key in heads for key in keys):
        # every chain has its head: the rows in one statement (no ids to read back), and
        # each head moved to its chain's last row; on PostgreSQL both in one statement
        params = {f"{name}_{n}": value for n, row in enumerate(rows) for name, value in row.items()}
        names = tuple(rows[0])
        if connection.dialect.name == "postgresql":
            connection.execute(_insert_and_move(log, chains, names, len(rows)), params)
            return
        moves = [{"_chain": key, "last_hash": h} for key, _, h in ends]
        # SQLite: by the driver, compiled once (SQLAlchemy's execution gathered and
        # processed each of the rows' parameters: a tenth of a group's CPU an order)
        sqlite_driver_run(connection, _insert_rows(log, names, len(rows)), params)
        sqlite_driver_run(connection, _move_heads_to_last(log, chains), moves)
        return
    ids = _insert(connection, log, rows)
    moved = [
        {"_chain": key, "last_id": ids[i], "last_hash": h} for key, i, h in ends if key in heads
    ]
    if moved:
        connection.execute(_move_heads(chains), moved)
    new = [
        {"chain": key, "last_id": ids[i], "last_hash": h} for key, i, h in ends if key not in heads
    ]
    if new:  # a racing first entry of the same chain fails on the key: the caller retries
        connection.execute(insert(chains), new)


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
    """Recompute every chain; report the first entry whose link or content does not
    match, or the first chain whose head is not where its entries end."""
    chained = "chain" in log.c
    ends = {"": _global_head(connection, head)}
    if chained:
        table = chains_of(log)
        for r in connection.execute(select(table.c.chain, table.c.last_id, table.c.last_hash)):
            ends[r.chain] = (r.last_hash, r.last_id)
    order = (log.c.chain, log.c.id) if chained else (log.c.id,)
    rows = connection.execute(select(log).order_by(*order).execution_options(yield_per=2000))
    count, key, prev, last_id = 0, "", GENESIS, 0
    for row in rows:
        row_key = row.chain if chained else ""
        if row_key != key:
            if (broken := _cut(ends, key, prev, last_id, count)) is not None:
                return broken
            key, prev, last_id = row_key, GENESIS, 0
        count += 1
        entry = {name: getattr(row, name) for name in FIELDS}
        if row_key:
            entry["chain"] = row_key
        if row.prev_hash != prev:
            return VerifyReport(
                count,
                row.id,
                "its previous-hash link does not match the "
                "entry before it (a row was removed, added or moved)",
            )
        if entry_hash(prev, entry) != row.hash:
            return VerifyReport(
                count, row.id, "its content does not match its hash (the row was edited)"
            )
        prev, last_id = row.hash, row.id
    if (broken := _cut(ends, key, prev, last_id, count)) is not None:
        return broken
    for chain, (_, top_id) in sorted(ends.items()):  # heads whose entries are all gone
        if chain and top_id:
            return VerifyReport(
                count, top_id, f"chain {chain[:24]!r} has a head but no entries (they were removed)"
            )
    return VerifyReport(count, None, "")


def _global_head(connection: Connection, head: Table) -> tuple[str, int]:
    top = connection.execute(select(head.c.last_id, head.c.last_hash).where(head.c.id == 1)).first()
    return (top.last_hash, top.last_id) if top is not None else ("", -1)


def _cut(
    ends: dict[str, tuple[str, int]], key: str, prev: str, last_id: int, count: int
) -> VerifyReport | None:
    """The chain `key` just read ends at (prev, last_id): its head must say the same."""
    if ends.pop(key, None) != (prev, last_id):
        where = f"chain {key[:24]!r}" if key else "the chain"
        return VerifyReport(
            count,
            last_id + 1,
            f"{where} ends before the recorded head (entries were removed from the end)",
        )
    return None


def verify_command(
    engine: Any,
    log: Table,
    head: Table,
    anchored: Callable[[Connection], VerifyReport | None] | None = None,
) -> int:
    """`… audit verify`: print the result; exit code 1 when the chain is broken.
    `anchored` (audit_anchor.check, bound to an anchor) runs after the links verify. It
    all reads one snapshot: a live database's commits made meanwhile are not half seen."""
    with read_snapshot(engine) as connection:
        report = verify(connection, log, head)
        if report.ok and anchored is not None and (moved := anchored(connection)):
            report = replace(moved, entries=report.entries)
    if report.ok:
        print(f"audit trail intact: {report.entries} entries, every link verified")
        return 0
    print(
        f"audit trail BROKEN at entry {report.broken_at}: {report.reason} "
        f"({report.entries} entries read)"
    )
    return 1
