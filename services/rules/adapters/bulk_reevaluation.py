"""The batch re-evaluation's (and ReportEvent and UpsertEnterprise groups') reads and
writes, as multi-row statements.

`reevaluate --all` re-decides every firm; through the ORM each firm's decision, entry,
firm update, audit entries and change rows cost an object, a history walk and a flush
step. Here a batch is read in two queries (its firms, locked on PostgreSQL, with their
stored profiles parsed by orjson; their open entries) in the write transaction, and
written in a few statements in that transaction. A range process of `--processes N` on
SQLite reads it first from a read snapshot (no lock; each outcome's decision JSON and
audit entries made then, `rows_of`), then again in the write transaction, where a firm
whose row reads the same is the snapshot's object, its profile not parsed again:

* decisions inserted; white-list entries closed (expired, revoked) and extended, then
  granted ones inserted (the partial unique index allows one open entry per firm);
* firms updated (status, colour, decision; name, region and profile only when changed);
* the audit entries the ORM listener would collect, per firm in the order of the
  per-call path (an expired entry, the granted entry, the decision, the firm, the entry
  revoked or extended), sealed on each firm's chain as `audit.append` seals them;
* the change-feed rows the recorder would write, per firm in its order (an expiry
  first, then KIND_ORDER), a decision only when status, colour or blockers moved, and a
  move to another region last (REGION_LEFT, REGION_JOINED).

The many-row statements skip Core's per-row parameter building (`_executemany`): every
value still goes through its column's bind processor, so the stored values are Core's
and the ORM's (the same JSON text, the same instants); SQLite gets the driver's
executemany, PostgreSQL one COPY per table for inserts, in COPY's binary format for a
table with days or instants (an executemany, which psycopg pipelines, below COPY_FROM
rows) and one UPDATE … FROM json_to_recordset() for updates, its audit ids taken from
the table's sequence beforehand.

A ReportEvent group reads what it needs in one pipeline on PostgreSQL (`group_reads`:
its firms locked, then read with their entries, histories, quiet events and recorded
event ids) and writes (`write_events`) through the same statements as a batch, plus its
event records and their audit entries and feed rows (an UpsertEnterprise group the same,
without events, plus the rows and audit entries of the firms it stores); on PostgreSQL
the chain heads' lock, the audit ids and the previous decisions' blockers go in one pipeline
(`_before_seal`), then its inserts and updates in another (`_one_round_trip`).

Row locks are all taken by the first read (and the run's row by the flush before the
writes), the chain heads only afterwards (as the audit trail's ordering rule asks), so
this path cannot deadlock with the per-call one. A test compares the rows written here,
JSON as stored, with the ones the per-call path writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from functools import cache
from operator import itemgetter
from typing import Any

import orjson
from psycopg import ProgrammingError
from psycopg.pq import Format
from sqlalchemy import (
    JSON,
    Connection,
    Dialect,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    select,
    text,
    update,
)
from sqlalchemy.engine import IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeEngine

from services.common.audit import GENESIS, Audited, chains_of, heads_query, plain_entry_hash
from services.common.clock import IdSource, now
from services.common.db import driver_of, json_text
from services.rules.adapters.feed import event_change as feed_event_change
from services.rules.adapters.feed import move_detail
from services.rules.adapters.orm import (
    AUDIT,
    changes,
    decisions,
    events,
    firms,
    reevaluation_runs,
    whitelist_entries,
)
from services.rules.adapters.repository import (
    among,
    event_items_of_rows,
    histories_of_rows,
    recent_event_items_query,
    recent_histories_query,
    recorded_events_query,
)
from services.rules.adapters.serialize import decision_to_json
from services.rules.domain.changes import KIND_ORDER, ChangeKind
from services.rules.domain.reevaluation import EntryMove, OpenEntry, Reevaluated, StoredFirm
from services.rules.domain.register import (
    DecisionRecord,
    EventItem,
    EventRecord,
    Firm,
    HistoryEntry,
    ReevaluationRun,
    WhitelistEntry,
)

_Statement = Select[Any] | TextClause  # what `_read_together` runs
_FIRM = AUDIT.audited[Firm]
_DECISION = AUDIT.audited[DecisionRecord]
_ENTRY = AUDIT.audited[WhitelistEntry]
_EVENT = AUDIT.audited[EventRecord]
# An enum's `value` is a descriptor call; its `_value_`, read below, the same plain str.
_MOVE_KIND = {
    "expired": ChangeKind.WHITELIST_EXPIRED,
    "revoked": ChangeKind.WHITELIST_REVOKED,
    "extended": ChangeKind.WHITELIST_EXTENDED,
}


class BatchRegister:
    """Reads and writes of one batch of the re-evaluation, over the unit of work's session."""

    def __init__(self, session: Session, *, lock_rows: bool) -> None:
        self._session = session
        self._lock_rows = lock_rows

    @property
    def _connection(self) -> Connection:
        return self._session.connection()

    def next_firms(
        self,
        after: str,
        upto: str | None,
        limit: int,
        known: Mapping[str, StoredFirm] | None = None,
    ) -> list[StoredFirm]:
        """Up to `limit` firms with ids in (after, upto] (no upper end: None), in id
        order, locked for update on PostgreSQL (SQLite's writer holds the file). A firm
        of `known` (an earlier read's, by id) whose row reads the same again, its profile
        the same JSON text, is that very object (its profile not parsed again).

        Locked first, read after: a statement that waits for a row lock re-reads the
        locked row alone, so a read joined to the decisions in the locking statement
        would pair a firm just decided by another transaction with its previous
        decision's day (review 26). The read is the locked range, keeping the locked
        firms only (one inserted meanwhile is the next batch's)."""
        f = firms.c
        query = _stored_firms().where(f.enterprise_id > after)
        if upto is not None:
            query = query.where(f.enterprise_id <= upto)
        if not self._lock_rows:
            ordered = query.order_by(f.enterprise_id).limit(limit)
            return _read_firms(self._connection, ordered, known)
        lock = select(f.enterprise_id).where(f.enterprise_id > after)
        if upto is not None:
            lock = lock.where(f.enterprise_id <= upto)
        lock = lock.order_by(f.enterprise_id).limit(limit).with_for_update()
        locked = {row[0] for row in self._connection.execute(lock)}
        if not locked:
            return []
        query = query.where(f.enterprise_id <= max(locked)).order_by(f.enterprise_id)
        return [
            firm
            for firm in _read_firms(self._connection, query, known)
            if firm.enterprise_id in locked
        ]

    def group_reads(
        self,
        enterprise_ids: Sequence[str],
        keys: Sequence[tuple[str, str]],
        limit: int,
        cause_kinds: Sequence[str],
        quiet_kinds: Sequence[str],
    ) -> GroupReads:
        """A ReportEvent or UpsertEnterprise group's reads: the firms with these ids
        (locked on PostgreSQL, in id order: two groups never wait on each other in a
        cycle), each with its open white-list entry (detached records: what an answer
        shows, nothing the session tracks); which of the (source, event_id) `keys` are
        recorded; each firm's recent history (`Register.recent_histories`: its newest
        `limit` decisions, naming their events of `cause_kinds`) and newest `limit`
        events of `quiet_kinds`.

        Locked first, read after (as `next_firms` says why): the lock is a statement of
        its own and every read a statement after it, each with its own snapshot taken
        once the lock is held. On PostgreSQL all of them go in one pipeline: one round
        trip (the server still runs them one after another, in this order); on SQLite
        (whose writer holds the file) one after another."""
        ids = sorted(set(enterprise_ids))
        # PostgreSQL: lists as one array parameter each (`among`), LATERAL histories
        pg = self._connection.dialect.name == "postgresql"
        statements: list[tuple[_Statement, Mapping[str, Any]]] = []
        if self._lock_rows:
            statements.append((_lock_firms(pg), {"ids": ids}))
        wanted = set(keys)
        history = {"ids": ids, "limit": limit, "kinds": list(cause_kinds)}
        quiet = {"ids": ids, "limit": limit, "kinds": list(quiet_kinds)}
        statements += [
            (_firms_with_entries(pg), {"ids": ids}),
            (recent_histories_query(pg), history),
            (recent_event_items_query(pg), quiet),
        ]
        if wanted and pg:
            sources = sorted({source for source, _ in wanted})
            event_ids = sorted({event_id for _, event_id in wanted})
            asked = {"sources": sources, "event_ids": event_ids}
            statements.append((recorded_events_query(True), asked))
        elif wanted:
            statements.append((recorded_events_query(), {"keys": sorted(wanted)}))
        results = _read_together(self._connection, statements)
        if self._lock_rows:
            results = results[1:]
        firm_rows, history_rows, quiet_rows = results[:3]
        recorded = {(row[0], row[1]) for row in results[3]} & wanted if wanted else set()
        w = whitelist_entries.c
        loads = orjson.loads
        found = []
        for row in firm_rows:
            i, name, region, profile, status, risk, decision, day = row[:8]
            firm = StoredFirm(i, name, region, loads(profile), status, risk, decision, day)
            entry = None
            if row.w_id is not None:
                entry = WhitelistEntry(**{c.name: row._mapping[f"w_{c.name}"] for c in w})
            found.append((firm, entry))
        known = [firm.enterprise_id for firm, _ in found]
        return GroupReads(
            found,
            recorded,
            histories_of_rows(known, (r for r in history_rows if r.enterprise_id in known)),
            event_items_of_rows(known, (r for r in quiet_rows if r[0] in known)),
        )

    def open_entries(self, after: str, last: str) -> dict[str, OpenEntry]:
        """The open white-list entries of the firms with ids in (after, last], by firm: a
        range scan of the open-entry index (cheaper than a list of a batch's ids)."""
        w = whitelist_entries.c
        query = select(
            w.id,
            w.enterprise_id,
            w.name,
            w.region,
            w.granted_on,
            w.valid_until,
            w.decision_id,
            w.revoked_reason,
        ).where(w.enterprise_id > after, w.enterprise_id <= last, w.revoked_on.is_(None))
        return {row[1]: OpenEntry(*row) for row in self._connection.execute(query)}

    def ids_at(self, positions: Sequence[int]) -> list[str]:
        """The enterprise ids at these 0-based positions of the id order (range edges)."""
        column = firms.c.enterprise_id
        found = []
        for n in positions:
            query = select(column).order_by(column).offset(n).limit(1)
            if (enterprise_id := self._connection.execute(query).scalar()) is not None:
                found.append(enterprise_id)
        return found

    def ranges_of(self, parent_id: str) -> list[ReevaluationRun]:
        """The range runs of a run started in ranges, the last range (no end) last."""
        r = reevaluation_runs.c
        query = select(ReevaluationRun).where(r.parent_id == parent_id)
        found = self._session.scalars(query).all()
        return sorted(found, key=lambda run: (run.upto is None, run.upto or ""))

    def write(
        self,
        batch: Sequence[Reevaluated],
        caller: str,
        made: Sequence[BatchRows | None] = (),
    ) -> None:
        """Write the batch's decisions, entries, firms, audit entries and change rows;
        `made`: each outcome's `rows_of`, made ahead (None, or none at all: made here)."""
        if not batch:
            return
        connection = self._connection
        at = now()
        ready = [
            m if m is not None and m.caller == caller else rows_of(r, caller)
            for r, m in zip(batch, made or [None] * len(batch), strict=True)
        ]
        _insert_decisions(connection, batch, [m.payload for m in ready])
        _move_entries(connection, batch)
        _update_firms(connection, batch, as_stored=True)
        old = _seal(
            connection,
            [entry for m in ready for entry in m.entries],
            lock=self._lock_rows,
            decisions_of=_previous_decisions(batch),
        )
        ids = IdSource()
        rows = [row for r in batch for row in _change_rows(r, old, at, ids)]
        _executemany(connection, changes, rows)

    def write_events(self, applied: Sequence[AppliedCall]) -> None:
        """Write a ReportEvent group's rows as its events applied one after another would:
        the event records (in arrival order), the decisions they caused, each white-list
        entry and firm in its state after the group's last event that moved it, and per
        event, as its own caller's, the audit entries (the event's, then the decision's as
        `write` makes them) and the feed rows (the event's first, then as `write` orders
        them), a decision judged against the firm's previous one even when an earlier
        event of the group made it. An UpsertEnterprise group's calls are written the
        same way, without the event's row, audit entry and feed row (it records none)."""
        if not applied:
            return
        connection = self._connection
        with _one_round_trip(connection):
            self._write_events(connection, applied)

    def _write_events(self, connection: Connection, applied: Sequence[AppliedCall]) -> None:
        created = [a.reevaluated for a in applied if a.created and a.reevaluated is not None]
        _executemany(connection, firms, [_created_firm_row(r) for r in created])
        decided = [a.reevaluated for a in applied if a.reevaluated is not None]
        _insert_decisions(connection, decided, [a.payload for a in applied if a.reevaluated])
        _move_entries_in_turn(connection, decided)
        last = {r.firm.enterprise_id: r for r in decided}  # the firm after the group
        _update_firms(connection, list(last.values()))
        recorded = [a.record for a in applied if a.record is not None]
        _executemany(connection, events, [_event_row(record) for record in recorded])
        entries: list[dict[str, Any]] = []
        for a in applied:
            if a.record is not None:
                entries.append(_event_entry(a.record, a.caller))
            if a.created and a.reevaluated is not None:
                entries.append(_created_firm_entry(a.reevaluated, a.caller))
            if a.reevaluated is not None:
                entries.extend(_audit_entries(a.reevaluated, a.caller))
        old = _seal(
            connection, entries, lock=self._lock_rows, decisions_of=_previous_decisions(decided)
        )
        for r in decided:  # a decision of the group is the next one's predecessor
            old[r.decision_id] = [b.code for b in r.decision.whitelist_blockers]
        at, ids = now(), IdSource()
        rows = []
        for a in applied:
            if a.record is not None:
                rows.append(_event_change(a.record, a.region))
            if a.reevaluated is not None:
                rows.extend(_change_rows(a.reevaluated, old, at, ids))
        _executemany(connection, changes, rows)


def rows_of(r: Reevaluated, caller: str) -> BatchRows:
    """What `BatchRegister.write` writes of `r` that no row of the database changes (no
    lock needed): made ahead of the write transaction, outside it (the re-evaluation's
    read-ahead)."""
    return BatchRows(caller, decision_to_json(r.decision), _audit_entries(r, caller))


@dataclass(frozen=True, slots=True)
class BatchRows:
    """Rows `BatchRegister.write` writes of one outcome, made ahead (`rows_of`): its
    decision's stored JSON and its audit entries, for `caller`, not yet sealed (sealing
    stamps them in place: written once)."""

    caller: str
    payload: dict[str, Any]
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class AppliedCall:
    """One call of a ReportEvent or UpsertEnterprise group, applied in memory: the
    event's record (the answer kept for replays included; None: an upsert, which records
    no event), what it decided (None: it left the decision standing) with
    that decision's stored JSON, the caller its audit entries name, and the firm's
    region right after it (its feed row's, as the change recorder fills it in)."""

    record: EventRecord | None
    reevaluated: Reevaluated | None
    payload: dict[str, Any] | None
    caller: str
    region: str
    created: bool = False  # an upsert that stores a firm new to the register (`reevaluated.firm`)


@dataclass(frozen=True)
class GroupReads:
    """What `BatchRegister.group_reads` read for a group of calls: its firms found,
    each with its open entry (in id order); the event keys already recorded; by firm
    found, its recent history (decision items, the entries they granted or closed) and
    its newest quiet events."""

    firms: list[tuple[StoredFirm, WhitelistEntry | None]]
    recorded: set[tuple[str, str]]
    histories: dict[str, tuple[list[HistoryEntry], list[WhitelistEntry]]]
    quiet: dict[str, list[EventItem]]


@cache
def _lock_firms(array: bool) -> Select[Any]:
    """The firms of the list parameter `ids` (`among`), locked for update in id order."""
    f = firms.c
    query = select(f.enterprise_id).where(among(f.enterprise_id, "ids", array))
    return query.order_by(f.enterprise_id).with_for_update()


@cache
def _firms_with_entries(array: bool) -> Select[Any]:
    """The firms of the list parameter `ids` as `_stored_firms` reads them, each with its
    open white-list entry's columns (labelled w_<column>; NULL: none), in id order."""
    w, f = whitelist_entries.c, firms.c
    open_entry = and_(w.enterprise_id == f.enterprise_id, w.revoked_on.is_(None))
    return (
        _stored_firms()
        .outerjoin(whitelist_entries, open_entry)
        .add_columns(*(c.label(f"w_{c.name}") for c in w))
        .where(among(f.enterprise_id, "ids", array))
        .order_by(f.enterprise_id)
    )


def _read_together(
    connection: Connection, statements: Sequence[tuple[_Statement, Mapping[str, Any]]]
) -> list[list[Any]]:
    """The rows of each statement, run in this order in the connection's transaction.

    PostgreSQL: sent together in one psycopg pipeline (one round trip); each statement
    (built once, @cache) is compiled once (`_COMPILED`) and its rows come back as
    SQLAlchemy rows (by position, by attribute, `_mapping`) with the driver's values: no
    column these statements read has a result processor on psycopg (strings, numbers,
    days and instants are the driver's own; JSON is read as text). SQLite: one after
    another."""
    if connection.dialect.name != "postgresql":
        return [list(connection.execute(query, dict(params))) for query, params in statements]
    dialect = connection.dialect
    driver = driver_of(connection)
    cursors: list[Any] = []
    try:
        with driver.pipeline():
            for query, params in statements:
                compiled = _COMPILED.get((query, dialect.name))
                if compiled is None:
                    compiled = query.compile(dialect=dialect)
                    _COMPILED[(query, dialect.name)] = compiled
                if compiled.post_compile_params:  # expanding lists: rendered per call
                    state = compiled.construct_expanded_state(dict(params))
                    sql, values = state.statement, state.parameters
                else:  # one SQL text: the driver prepares it once
                    sql, values = compiled.string, compiled.construct_params(dict(params))
                cursor = driver.cursor()
                cursors.append(cursor)
                cursor.execute(sql, values)
        out: list[list[Any]] = []
        for cursor in cursors:
            names = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
            out.append(list(IteratorResult(SimpleResultMetaData(names), iter(rows))))
        return out
    finally:
        for cursor in cursors:
            cursor.close()


_COMPILED: dict[tuple[_Statement, str], Any] = {}  # statements built once (@cache)


def _stored_firms() -> Select[Any]:
    """The firms' stored state, each with the day of its current decision, looked up by
    the decision's id for each firm read (a scalar subquery, not a join): PostgreSQL then
    reads the decisions' primary key whatever its statistics say. Joined, statistics
    taken while the register had few decisions (a new register; a run's start on a
    database without autovacuum) made it hash the whole decisions table for every batch
    of `reevaluate --all`, which grew with the run: at 300,000 firms the read went from
    15 to 76 ms a batch of 1,000 (docs/benchmarks.md, "Stop 28")."""
    f = firms.c
    day = select(decisions.c.as_of).where(decisions.c.id == f.decision_id).scalar_subquery()
    return select(
        f.enterprise_id,
        f.name,
        f.region,
        cast(f.profile, Text),
        f.status,
        f.risk_level,
        f.decision_id,
        day.label("as_of"),
    ).select_from(firms)


def _read_firms(
    connection: Connection, query: Select[Any], known: Mapping[str, StoredFirm] | None = None
) -> list[StoredFirm]:
    """The firms `_stored_firms` rows hold, their profile text kept (`StoredFirm.stored`);
    a firm of `known` whose row is the same, that object."""
    loads = orjson.loads
    found = []
    known = known or {}
    for i, name, region, profile, status, risk, decision, day in connection.execute(query):
        old = known.get(i)
        if (
            old is not None
            and old.stored == profile
            and (old.name, old.region, old.status, old.risk_level, old.decision_id, old.decided_on)
            == (name, region, status, risk, decision, day)
        ):
            found.append(old)
            continue
        firm = StoredFirm(i, name, region, loads(profile), status, risk, decision, day, profile)
        found.append(firm)
    return found


def _insert_decisions(
    connection: Connection, batch: Sequence[Reevaluated], payloads: Sequence[Any]
) -> None:
    _executemany(
        connection,
        decisions,
        [
            {
                "id": r.decision_id,
                "enterprise_id": r.firm.enterprise_id,
                "decided_at": r.decided_at,
                "as_of": r.decision.as_of,
                "status": r.decision.status._value_,
                "risk_level": r.decision.risk_level._value_,
                "ruleset_version": r.decision.ruleset_version,
                "cause": r.cause,
                "whitelist_change": r.whitelist_change,
                "payload": payload,
            }
            for r, payload in zip(batch, payloads, strict=True)
        ],
    )


def _move_entries_in_turn(connection: Connection, batch: Sequence[Reevaluated]) -> None:
    """`_move_entries` for decisions of which several may move the same firm's entries
    (one granted, then revoked by the next): each entry is written once, in its state
    after the last move; entries that stood before are updated first (closing the old
    open entry before a new one is inserted, as the one-open-entry index asks)."""
    created: dict[str, dict[str, Any]] = {}
    updated: dict[str, dict[str, Any]] = {}
    for r in batch:
        for m in (r.expired, r.moved):
            if m is None:
                continue
            row = created.get(m.entry.id)
            if row is None:
                row = updated.setdefault(m.entry.id, {"id": m.entry.id})
            if m.kind == "extended":
                row.update(
                    valid_until=m.valid_until,
                    decision_id=m.decision_id,
                    name=m.name,
                    region=m.region,
                )
            else:
                row.update(
                    revoked_on=m.revoked_on,
                    revoked_reason=m.revoked_reason,
                    closed_decision_id=m.decision_id,
                )
        if (g := r.granted) is not None:
            created[g.id] = _granted_row(g)
    alike: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in updated.values():
        alike.setdefault(tuple(sorted(row)), []).append(row)
    for rows in alike.values():  # each entry once: one statement, queued with the writes
        _executemany(connection, whitelist_entries, rows, key="id")
    _executemany(connection, whitelist_entries, list(created.values()))


def _event_row(record: EventRecord) -> dict[str, Any]:
    """The events row of a record: every field but its id (the database numbers it). The
    values as they are, not `asdict`'s deep copies: the JSON columns are serialised when
    written, and copying the answer kept for replays (`result`) cost a fifth of a
    group's write."""
    return {name: getattr(record, name) for name in _EVENT_COLUMNS}


_EVENT_COLUMNS = tuple(f.name for f in fields(EventRecord) if f.name != "id")


def _event_entry(record: EventRecord, caller: str) -> dict[str, Any]:
    """The audit entry the ORM listener makes of a new event record."""
    values = {name: getattr(record, name) for name in _EVENT.fields}
    entry = _entry(
        _EVENT, "create", record.event_id, record.enterprise_id, None, _fields(_EVENT, values)
    )
    entry["caller"] = caller
    return entry


def _event_change(record: EventRecord, region: str) -> dict[str, Any]:
    """The feed row of an event applied (feed.py's), in the firm's region."""
    change = feed_event_change(record)
    return {
        "change_id": change.change_id,
        "enterprise_id": change.enterprise_id,
        "region": change.region or region,
        "kind": change.kind.value,
        "detail": change.detail,
        "recorded_at": change.recorded_at,
    }


def _move_entries(connection: Connection, batch: Sequence[Reevaluated]) -> None:
    closed = [
        {
            "_id": m.entry.id,
            "revoked_on": m.revoked_on,
            "revoked_reason": m.revoked_reason,
            "closed_decision_id": m.decision_id,
        }
        for r in batch
        for m in (r.expired, r.moved)
        if m is not None and m.kind != "extended"
    ]
    _update_entries(connection, closed)
    extended = [
        {
            "_id": m.entry.id,
            "valid_until": m.valid_until,
            "decision_id": m.decision_id,
            "name": m.name,
            "region": m.region,
        }
        for r in batch
        if (m := r.moved) is not None and m.kind == "extended"
    ]
    _update_entries(connection, extended)
    granted = [_granted_row(g) for r in batch if (g := r.granted) is not None]
    _executemany(connection, whitelist_entries, granted)


def _update_entries(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """One executemany: each row sets its columns (all rows name the same ones) on the
    entry whose id is its `_id`."""
    if rows:
        columns = [name for name in rows[0] if name != "_id"]
        connection.execute(
            update(whitelist_entries)
            .where(whitelist_entries.c.id == bindparam("_id"))
            .values({name: bindparam(name) for name in columns}),
            rows,
        )


def _update_firms(
    connection: Connection, batch: Sequence[Reevaluated], *, as_stored: bool = False
) -> None:
    """The firms' new decision columns, name and region, and profile where it is
    re-stored, by one statement for each set of columns written. `as_stored`: each
    outcome's `firm` is its row as this transaction read it (the batch re-evaluation's),
    so name and region are written only where they differ from it (as the ORM's update
    sets only the attributes that changed): setting them to the same value made SQLite
    rewrite the firm's entry in the region index all the same. Without (a group of
    calls, whose later call's `firm` is an earlier call's outcome, not the stored row),
    always written."""
    alike: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for r in batch:
        f = r.firm
        row: dict[str, Any] = {
            "enterprise_id": f.enterprise_id,
            "status": r.decision.status._value_,
            "risk_level": r.decision.risk_level._value_,
            "decision_id": r.decision_id,
            "updated_at": r.decided_at,
        }
        renamed = not as_stored or (r.name, r.region) != (f.name, f.region)
        if renamed:
            row["name"], row["region"] = r.name, r.region
        if r.profile is not None:
            row["profile"] = r.profile
        alike.setdefault((renamed, r.profile is not None), []).append(row)
    for rows in alike.values():
        _executemany(connection, firms, rows, key="enterprise_id")


def _seal(
    connection: Connection,
    entries: list[dict[str, Any]],
    *,
    lock: bool,
    decisions_of: Sequence[str] = (),
) -> dict[str, list[str]]:
    """`audit.append` for a batch of per-firm chains: the same links and heads, but the
    rows go in by one executemany (COPY on PostgreSQL) without RETURNING (a multi-row
    INSERT … RETURNING of hundreds of rows cost more than the rest of the write). The
    rows' ids are taken beforehand, in order: from the table's sequence on PostgreSQL;
    on SQLite, after the table's largest id (what SQLite gives a table without
    AUTOINCREMENT; one writer, whose transaction this is). The entries are stamped and
    linked in place (each a dict of its own, made for this call).

    Returns the blocker codes of the decisions `decisions_of` (`_previous_decisions`), read
    with the heads: on PostgreSQL the heads' lock, the ids and that read go in one
    pipeline (one round trip instead of three)."""
    log = AUDIT.log
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_chain.setdefault(entry["chain"], []).append(entry)
    keys = sorted(by_chain)  # heads locked in key order, as audit.append does
    found, taken, old = _before_seal(connection, keys, len(entries), decisions_of, lock=lock)
    if not entries:
        return old
    heads = dict(found)
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    rows: list[dict[str, Any]] = []
    ends: dict[str, str] = {}
    for key in keys:
        prev = heads.get(key, GENESIS)
        for entry in by_chain[key]:
            entry["at"] = at
            digest = plain_entry_hash(prev, entry)  # values are plain: _fields
            entry["prev_hash"], entry["hash"] = prev, digest
            rows.append(entry)
            prev = digest
        ends[key] = prev
    for row, row_id in zip(rows, taken, strict=True):
        row["id"] = row_id
    last = {row["chain"]: row["id"] for row in rows}  # rows are in chain order
    _executemany(connection, log, rows)
    chains = chains_of(log)
    moved = [
        {"chain": k, "last_id": last[k], "last_hash": h} for k, h in ends.items() if k in heads
    ]
    _executemany(connection, chains, moved, key="chain")
    new = [
        {"chain": k, "last_id": last[k], "last_hash": h} for k, h in ends.items() if k not in heads
    ]
    _executemany(connection, chains, new)
    return old


def _before_seal(
    connection: Connection,
    keys: list[str],
    count: int,
    decision_ids: Sequence[str],
    *,
    lock: bool,
) -> tuple[list[Any], Sequence[int], dict[str, list[str]]]:
    """What sealing `count` entries on the chains `keys` reads first: the chains' heads
    (locked with `lock`), the rows' ids, ascending, and the blocker codes of the decisions
    `decision_ids`. PostgreSQL: one pipeline (the heads locked first, in key order);
    SQLite: one after another."""
    log = AUDIT.log
    pg = connection.dialect.name == "postgresql"
    blockers = (_decision_payloads(pg), {"ids": sorted(set(decision_ids))})
    if not pg:
        heads = _sqlite_chain_heads(connection, keys) if count else []
        largest = connection.exec_driver_sql(f"SELECT max(id) FROM {log.name}").scalar() or 0
        found = _read_together(connection, [blockers]) if decision_ids else [[]]
        return heads, range(largest + 1, largest + 1 + count), _blockers_of(found[0])
    statements: list[tuple[_Statement, Mapping[str, Any]]] = []
    if count:
        statements.append((heads_query(chains_of(AUDIT.log), lock), {"keys": keys}))
        statements.append((_next_ids(), {"table": log.name, "n": count}))
    if decision_ids:
        statements.append(blockers)
    found = _read_together(connection, statements) if statements else []
    heads = list(found[0]) if count else []
    taken = sorted(int(row[0]) for row in found[1]) if count else []
    return heads, taken, _blockers_of(found[-1]) if decision_ids else {}


def _sqlite_chain_heads(connection: Connection, keys: list[str]) -> list[Any]:
    """SQLite: (chain, last_hash) of those of `keys` that have a head, in key order (its
    one writer holds the file: nothing to lock). The keys go as one JSON text parameter,
    not as one bound parameter each, which Core renders every time. PostgreSQL reads
    them, locked, in `_before_seal`'s pipeline (`audit.heads_query`)."""
    heads = chains_of(AUDIT.log).name
    sql = (
        f"SELECT chain, last_hash FROM {heads}"
        " WHERE chain IN (SELECT value FROM json_each(?)) ORDER BY chain"
    )
    return list(connection.exec_driver_sql(sql, (orjson.dumps(keys).decode(),)))


@cache
def _next_ids() -> TextClause:
    """PostgreSQL: `n` fresh ids from the sequence behind the table `table`'s id. The
    sequence is looked up once (the subquery, kept apart by OFFSET 0), not once per id:
    `pg_get_serial_sequence` in the select list ran for every row, about 5 µs of the
    server's CPU an id where `nextval` itself costs under 1 µs."""
    return text(
        "SELECT nextval(s.seq) FROM (SELECT CAST(pg_get_serial_sequence(:table, 'id')"
        " AS regclass) AS seq OFFSET 0) AS s, generate_series(1, :n)"
    )


def _granted_row(g: OpenEntry) -> dict[str, Any]:
    """The white-list entries row of an entry a decision grants."""
    return {
        "id": g.id,
        "enterprise_id": g.enterprise_id,
        "name": g.name,
        "region": g.region,
        "granted_on": g.granted_on,
        "valid_until": g.valid_until,
        "decision_id": g.decision_id,
        "revoked_on": None,
        "revoked_reason": "",
        "granted_decision_id": g.decision_id,
        "closed_decision_id": None,
    }


def _fields(
    spec: Audited, values: Mapping[str, Any], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The audited fields of `values` (those of `names` only, when given) as the audit
    trail keeps them (services/common/audit.py: a date or datetime as its isoformat, then
    redacted when not None)."""
    out = {
        name: value.isoformat() if isinstance(value := values[name], date) else value
        for name in (spec.fields if names is None else names)
    }
    for name, redact in (spec.redact or {}).items():
        if name in out and out[name] is not None:
            out[name] = redact(out[name])
    return out


def _entry(
    spec: Audited, action: str, entity_id: str, chain: str, before: Any, after: Any
) -> dict[str, Any]:
    return {
        "caller": "",  # set by _audit_entries
        "action": action,
        "entity": spec.entity,
        "entity_id": entity_id,
        "before": before,
        "after": after,
        "chain": chain,
    }


def _changed(
    spec: Audited, old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The audited fields that differ, before and after (as an ORM update records them).
    Only the fields whose values differ are made plain (`_fields`): equal values make
    equal plain ones, and those that differ are compared again once plain (two values
    a redaction makes alike are no change)."""
    differ = [k for k in spec.fields if old[k] != new[k]]
    before, after = _fields(spec, old, differ), _fields(spec, new, differ)
    moved = [k for k in differ if before[k] != after[k]]
    return {k: before[k] for k in moved}, {k: after[k] for k in moved}


def _entry_values(entry: OpenEntry, **changes: Any) -> dict[str, Any]:
    return {
        "enterprise_id": entry.enterprise_id,
        "granted_on": entry.granted_on,
        "valid_until": entry.valid_until,
        "revoked_on": None,
        "revoked_reason": entry.revoked_reason,
        "decision_id": entry.decision_id,
        **changes,
    }


def _move_values(move: EntryMove) -> dict[str, Any]:
    if move.kind == "extended":
        return _entry_values(move.entry, valid_until=move.valid_until, decision_id=move.decision_id)
    return _entry_values(move.entry, revoked_on=move.revoked_on, revoked_reason=move.revoked_reason)


def _move_entry(move: EntryMove, chain: str) -> dict[str, Any] | None:
    before, after = _changed(_ENTRY, _entry_values(move.entry), _move_values(move))
    if not after:
        return None
    return _entry(_ENTRY, "update", move.entry.id, chain, before, after)


def _created_firm_row(r: Reevaluated) -> dict[str, Any]:
    """The row of a firm an upsert of a group stores, as the per-call path inserts it
    (as sent, without a decision: `_update_firms` then writes the decision's columns)."""
    f = r.firm
    return {
        "enterprise_id": f.enterprise_id,
        **_firm_values(f),
        "profile": f.profile,
        "created_at": r.decided_at,
        "updated_at": r.decided_at,
    }


def _created_firm_entry(r: Reevaluated, caller: str) -> dict[str, Any]:
    """The audit entry of that insert, first on the firm's chain."""
    chain, values = r.firm.enterprise_id, _firm_values(r.firm)
    return {**_entry(_FIRM, "create", chain, chain, None, _fields(_FIRM, values)), "caller": caller}


def _firm_values(f: StoredFirm) -> dict[str, Any]:
    """A stored firm's audited values (those the ORM's firm entries record)."""
    return {
        "name": f.name,
        "region": f.region,
        "status": f.status,
        "risk_level": f.risk_level,
        "decision_id": f.decision_id,
    }


def _audit_entries(r: Reevaluated, caller: str) -> list[dict[str, Any]]:
    chain = r.firm.enterprise_id
    out: list[dict[str, Any] | None] = []
    if r.expired is not None:
        out.append(_move_entry(r.expired, chain))
    if (g := r.granted) is not None:
        values = _entry_values(g, revoked_reason="")
        out.append(_entry(_ENTRY, "create", g.id, chain, None, _fields(_ENTRY, values)))
    d = r.decision
    # the decision's values as `_fields` makes them for its fields (in _DECISION's order,
    # the day as text, none redacted), without its per-value checks; test_reevaluation_bulk
    # compares every entry with the per-call path's, so a change to orm.AUDITED shows there
    decided = {
        "enterprise_id": chain,
        "status": d.status._value_,
        "risk_level": d.risk_level._value_,
        "ruleset_version": d.ruleset_version,
        "as_of": d.as_of.isoformat(),
        "cause": r.cause,
        "whitelist_change": r.whitelist_change,
    }
    out.append(_entry(_DECISION, "create", r.decision_id, chain, None, decided))
    old = _firm_values(r.firm)
    new = {
        "name": r.name,
        "region": r.region,
        "status": d.status._value_,
        "risk_level": d.risk_level._value_,
        "decision_id": r.decision_id,
    }
    before, after = _changed(_FIRM, old, new)
    if after:
        out.append(_entry(_FIRM, "update", chain, chain, before, after))
    if r.moved is not None:
        out.append(_move_entry(r.moved, chain))
    entries = [e for e in out if e is not None]
    for e in entries:
        e["caller"] = caller
    return entries


def _previous_decisions(batch: Sequence[Reevaluated]) -> list[str]:
    """The previous decisions of the firms whose status and colour stay (their decision
    is a change only if the blockers moved): whose blocker codes `_seal` reads."""
    return [
        r.firm.decision_id
        for r in batch
        if r.firm.decision_id
        and (r.firm.status, r.firm.risk_level)
        == (r.decision.status._value_, r.decision.risk_level._value_)
    ]


@cache
def _decision_payloads(array: bool) -> Select[Any]:
    """The decisions of the list parameter `ids` (`among`): (id, payload as JSON text)."""
    d = decisions.c
    return select(d.id, cast(d.payload, Text)).where(among(d.id, "ids", array))


def _blockers_of(rows: Sequence[Any]) -> dict[str, list[str]]:
    """The blocker codes of each decision of `_decision_payloads`' rows, by id."""
    old = {}
    for decision_id, stored in rows:
        payload = orjson.loads(stored) if stored else {}
        payload = payload if isinstance(payload, dict) else {}
        old[decision_id] = [b["code"] for b in payload.get("whitelist_blockers", [])]
    return old


def _change_row(
    kind: ChangeKind,
    enterprise_id: str,
    region: str,
    detail: dict[str, Any],
    at: datetime,
    ids: Callable[[], str],
) -> dict[str, Any]:
    return {
        "change_id": ids(),
        "enterprise_id": enterprise_id,
        "region": region,
        "kind": kind.value,
        "detail": detail,
        "recorded_at": at,
    }


def _entry_change(
    kind: ChangeKind,
    entry: OpenEntry,
    values: Mapping[str, Any],
    region: str,
    at: datetime,
    ids: Callable[[], str],
) -> dict[str, Any]:
    revoked = values["revoked_on"]
    detail = {
        "granted_on": values["granted_on"].isoformat(),
        "valid_until": values["valid_until"].isoformat(),
        "revoked_on": revoked.isoformat() if revoked else "",
        "reason": values["revoked_reason"],
        "decision_id": values["decision_id"],
    }
    return _change_row(kind, entry.enterprise_id, region, detail, at, ids)


def _change_rows(
    r: Reevaluated, old_blockers: Mapping[str, list[str]], at: datetime, ids: Callable[[], str]
) -> list[dict[str, Any]]:
    """The feed rows of one firm, as the change recorder orders them: the expiry (its
    own flush in the per-call path) first, then the decision and the entry's move."""
    out: list[tuple[int, dict[str, Any]]] = []
    d, f = r.decision, r.firm
    blockers = [b.code for b in d.whitelist_blockers]
    same = f.decision_id is not None and (f.status, f.risk_level) == (
        d.status._value_,
        d.risk_level._value_,
    )
    if not (same and old_blockers.get(f.decision_id or "") == blockers):
        detail = {
            "decision_id": r.decision_id,
            "status": d.status._value_,
            "risk_level": d.risk_level._value_,
            "blocker_codes": blockers,
            "previous_status": f.status if f.decision_id else "",
            "previous_risk_level": f.risk_level if f.decision_id else "",
            "as_of": d.as_of.isoformat(),
            "cause": r.cause,
        }
        kind = ChangeKind.DECISION_CHANGED
        row = _change_row(kind, f.enterprise_id, r.region, detail, at, ids)
        out.append((KIND_ORDER[kind], row))
    if (g := r.granted) is not None:
        kind = ChangeKind.WHITELIST_GRANTED
        values = _entry_values(g, revoked_reason="")
        out.append((KIND_ORDER[kind], _entry_change(kind, g, values, g.region, at, ids)))
    if (m := r.moved) is not None and (
        m.kind == "revoked" or m.valid_until != m.entry.valid_until
    ):  # an extension to the same end changes nothing a follower sees
        kind = _MOVE_KIND[m.kind]  # revoked or extended: an expiry is `r.expired`
        region = m.region if m.kind == "extended" else m.entry.region
        row = _entry_change(kind, m.entry, _move_values(m), region, at, ids)
        out.append((KIND_ORDER[kind], row))
    out.sort(key=lambda pair: pair[0])
    rows = [row for _, row in out]
    if (e := r.expired) is not None:
        rows.insert(
            0,
            _entry_change(_MOVE_KIND["expired"], e.entry, _move_values(e), e.entry.region, at, ids),
        )
    if f.region != r.region:  # the move last, as the recorder writes it
        rows.extend(_move_rows(r, at, ids))
    return rows


def _move_rows(r: Reevaluated, at: datetime, ids: Callable[[], str]) -> list[dict[str, Any]]:
    """A firm's move to another region (feed.py's `region_moves`): REGION_LEFT in the
    region it left, REGION_JOINED in the one it joined, with its state after."""
    d, m, g = r.decision, r.moved, r.granted
    entry = None
    if g is not None:
        entry = (g.granted_on, g.valid_until)
    elif m is not None and m.kind == "extended":
        assert m.valid_until is not None
        entry = (m.entry.granted_on, m.valid_until)
    detail = move_detail(
        r.firm.region, r.region, (d.status._value_, d.risk_level._value_, r.decision_id), entry
    )
    left, joined = ChangeKind.REGION_LEFT, ChangeKind.REGION_JOINED
    return [
        _change_row(left, r.firm.enterprise_id, r.firm.region, detail, at, ids),
        _change_row(joined, r.firm.enterprise_id, r.region, dict(detail), at, ids),
    ]


# ---------------------------------------------------------------- driver-level executemany

COPY_FROM = 64  # rows: an insert of fewer goes by executemany on PostgreSQL too
_QUEUE = "bulk_writes_queued"  # on Connection.info inside `_one_round_trip`


@contextmanager
def _one_round_trip(connection: Connection) -> Iterator[None]:
    """PostgreSQL: the inserts and updates `_executemany` makes inside are queued and
    sent together when the block ends, in one pipeline (one round trip instead of one
    or two each; the reads inside still go at once, and none of them reads what is
    queued). Nothing is sent when the block fails. SQLite: nothing changes."""
    if connection.dialect.name != "postgresql":
        yield
        return
    queued: list[tuple[str, Any, bool]] = []
    info = connection.info  # not read again: a connection lost inside is invalidated, and
    info[_QUEUE] = queued  # its .info would raise PendingRollbackError over the real error
    try:
        yield
    finally:
        info.pop(_QUEUE, None)
    driver = driver_of(connection)
    with driver.pipeline(), driver.cursor() as cursor:
        for sql, params, many in queued:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)


_STATEMENTS: dict[tuple[str, str, str, tuple[str, ...], str], tuple[str, list[Any]]] = {}


def _statement(
    connection: Connection, table: Table, kind: str, columns: tuple[str, ...], key: str = ""
) -> tuple[str, list[Any]]:
    """INSERT (or UPDATE … WHERE key = …) of `columns` as the driver's SQL, and each
    column's bind processor (None: passed as is), built once per dialect."""
    dialect = connection.dialect
    cache_key = (dialect.name, table.name, kind, columns, key)
    known = _STATEMENTS.get(cache_key)
    if known is not None:
        return known
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    if kind == "insert":
        names = ", ".join(quote(c) for c in columns)
        sql = (
            f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))})"
        )
        order = columns
    else:
        sets = ", ".join(f"{quote(c)} = {mark}" for c in columns)
        sql = f"UPDATE {quote(table.name)} SET {sets} WHERE {quote(key)} = {mark}"
        order = (*columns, key)
    processors = [_processor(table.c[c].type, dialect) for c in order]
    _STATEMENTS[cache_key] = (sql, processors)
    return sql, processors


def _processor(column_type: TypeEngine[Any], dialect: Dialect) -> Any:
    """The column's bind processor (None: values pass as they are); for a JSON column,
    the JSON text Core has the driver store (the engine's `json_serializer`, db.py)."""
    if type(column_type) is JSON:
        return json_text
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _executemany(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str = "",
) -> None:
    """Insert `rows` (or, with `key`, update each row's other columns where `key` is its
    value) through the driver's executemany, every value through its column's bind
    processor as Core would: Core's executemany spends more per row building parameters
    than the database spends writing it."""
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c != key)
    sql, processors = _statement(connection, table, "update" if key else "insert", columns, key)
    order = (*columns, key) if key else columns
    bound = _bound(rows, order, processors)
    if connection.dialect.name == "postgresql":
        queued = connection.info.get(_QUEUE)
        if key:
            _update_from_json(connection, table, order, bound)
            return
        if queued is not None:
            if len(bound) > 1:
                queued.append(_insert_from_json(connection, table, order, bound))
            else:
                queued.append((sql, bound, True))
            return
        if len(bound) >= COPY_FROM:
            _copy(connection, table, order, bound)
            return
    # SQLite; a few rows on PostgreSQL: psycopg sends an executemany's statements in one
    # pipeline (one round trip), where a COPY takes two
    connection.exec_driver_sql(sql, bound)


def _bound(
    rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...], processors: list[Any]
) -> list[tuple[Any, ...]]:
    """Each row's values of `columns`, in that order, each through its column's bind
    processor (None: as is). Column by column: a JSON column's values each encoded, any
    other processed column's once per distinct object (a batch's rows share their days
    and instants)."""
    pick = itemgetter(*columns)
    picked = [pick(row) for row in rows] if len(columns) > 1 else [(pick(r),) for r in rows]
    processed = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not processed:
        return picked
    by_column: list[Sequence[Any]] = list(zip(*picked, strict=True))
    for i, process in processed:
        values = by_column[i]
        if process is json_text:
            by_column[i] = [json_text(v) for v in values]
        else:  # by identity: equal values may differ (an instant in two time zones)
            distinct = {id(v): v for v in values}
            done = {k: process(v) for k, v in distinct.items()}
            by_column[i] = [done[id(v)] for v in values]
    return list(zip(*by_column, strict=True))


def _copy(
    connection: Connection, table: Table, columns: tuple[str, ...], bound: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL: insert by COPY … FROM STDIN on the transaction's own connection (one
    statement for the whole batch; an executemany is a statement per row, each parsed,
    planned and run by the server), in COPY's binary format where `_copy_types` says it
    pays. The values stored are the same either way: the bound values are those the text
    format writes (a JSON column's text goes as text, which the json type's binary input
    takes as it is, validated)."""
    quote = connection.dialect.identifier_preparer.quote
    cursor = driver_of(connection).cursor()
    types = _copy_types(connection, cursor, table, columns)
    binary = " (FORMAT BINARY)" if types is not None else ""
    names = ", ".join(quote(c) for c in columns)
    sql = f"COPY {quote(table.name)} ({names}) FROM STDIN{binary}"
    try:
        with cursor.copy(sql) as copy:
            if types is not None:
                copy.set_types(types)
            for values in bound:
                copy.write_row(values)
    finally:
        cursor.close()


_COPY_TYPES: dict[tuple[str, tuple[str, ...]], list[int] | None] = {}


def _copy_types(
    connection: Connection, cursor: Any, table: Table, columns: tuple[str, ...]
) -> list[int] | None:
    """The oids a binary COPY of `columns` of `table` writes (a JSON column's as text:
    its bound value is the JSON text `json_text` made), found once per table and columns;
    None for the text format: when no column is a day or an instant, or a column's type
    is not one psycopg knows or has no binary dumper for.

    Measured on one batch of 1,000 firms replayed 30 times (docs/benchmarks.md, "Stop
    35"), the binary format cost psycopg about 40–60 % less a row in every table, but
    PostgreSQL more where a row is strings only: it receives each string on its own
    (the text format converts a whole line at once), so the audit log's rows, eight
    short strings and two JSON texts, cost it about 1.8 µs more a firm for 0.8 saved in
    Python. A day or an instant, whose text PostgreSQL parses, is what tips it: the
    decisions' rows (an instant, a day, the decision's JSON) −1.8 µs in Python for +0.2
    in PostgreSQL, the feed's changes −1.5 for +0.5."""
    key = (table.name, columns)
    if key in _COPY_TYPES:
        return _COPY_TYPES[key]
    dialect = connection.dialect
    registry, adapters = cursor.adapters.types, cursor.adapters
    names = [  # "VARCHAR(32)" → varchar, "TIMESTAMP WITH TIME ZONE" → timestamptz, …
        "text"
        if type(t := table.c[c].type) is JSON
        else t.compile(dialect=dialect).split("(")[0].strip().lower()
        for c in columns
    ]
    found: list[int] | None = None
    if any(name in _TIMES for name in names):
        try:
            found = [registry.get_oid(name) for name in names]
            for oid in found:
                adapters.get_dumper_by_oid(oid, Format.BINARY)
        except (KeyError, ProgrammingError):
            found = None
    _COPY_TYPES[key] = found
    return found


_TIMES = {"date", "timestamp", "timestamp with time zone", "timestamp without time zone"}


def _from_json(
    connection: Connection, table: Table, columns: tuple[str, ...]
) -> tuple[str, dict[str, str]]:
    """The column definition list of a json_to_recordset of `columns` (a JSON column
    declared text: its value is the JSON text the bind processor built), and each
    column's value read from it as `v` (cast back to JSON where it is one)."""
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    kinds = {c: table.c[c].type.compile(dialect=dialect) for c in columns}
    jsons = {c for c in columns if type(table.c[c].type) is JSON}
    declared = ", ".join(f"{quote(c)} {'text' if c in jsons else kinds[c]}" for c in columns)
    values = {
        c: f"CAST(v.{quote(c)} AS {kinds[c]})" if c in jsons else f"v.{quote(c)}" for c in columns
    }
    return declared, values


def _json_rows(columns: tuple[str, ...], bound: list[tuple[Any, ...]]) -> tuple[str]:
    """The batch's rows as one JSON text: the one parameter of `_from_json`'s statements."""
    return (orjson.dumps([dict(zip(columns, values, strict=True)) for values in bound]).decode(),)


def _insert_from_json(
    connection: Connection, table: Table, columns: tuple[str, ...], bound: list[tuple[Any, ...]]
) -> tuple[str, tuple[str], bool]:
    """PostgreSQL, queued in a pipeline: INSERT … SELECT from json_to_recordset(the
    batch's rows as one JSON text), in the batch's order (WITH ORDINALITY: a serial id,
    such as the change feed's position, is drawn row after row as an executemany draws
    it). One statement for the batch where an executemany is one per row, each bound,
    planned and run by the server (about two thirds of PostgreSQL's CPU a ReportEvent
    group cost was its writes); the values stored are those the executemany stores."""
    quote = connection.dialect.identifier_preparer.quote
    declared, values = _from_json(connection, table, columns)
    names = ", ".join(quote(c) for c in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) "
        f"SELECT {', '.join(values[c] for c in columns)} "
        f"FROM ROWS FROM (json_to_recordset(CAST(%s AS json)) AS ({declared})) "
        f"WITH ORDINALITY AS v({names}, n_) ORDER BY n_"
    )
    return sql, _json_rows(columns, bound), False


def _update_from_json(
    connection: Connection, table: Table, columns: tuple[str, ...], bound: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL: UPDATE … FROM json_to_recordset(the batch's rows as one JSON text), the
    key last: one statement and one parameter for the batch (an array per column made
    psycopg dump every value in Python). A JSON column's value goes as its JSON text (a
    string, cast back), so the stored text is the one the bind processor built."""
    quote = connection.dialect.identifier_preparer.quote
    key = columns[-1]
    declared, values = _from_json(connection, table, columns)
    sets = ", ".join(f"{quote(c)} = {values[c]}" for c in columns[:-1])
    sql = (
        f"UPDATE {quote(table.name)} SET {sets} "
        f"FROM json_to_recordset(CAST(%s AS json)) AS v({declared}) "
        f"WHERE {quote(table.name)}.{quote(key)} = v.{quote(key)}"
    )
    params = _json_rows(columns, bound)
    queued = connection.info.get(_QUEUE)
    if queued is not None:
        queued.append((sql, params, False))
        return
    connection.exec_driver_sql(sql, params)
