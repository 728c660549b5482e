"""The change feed's storage: record in the writer's transaction, sequence, read, prune.

* `ChangeRecorder` (installed on the unit of work's sessions, like the audit trail)
  turns what a transaction wrote — an event record, an inspection verdict, a decision
  whose status, colour or blockers differ from the firm's last one, a white-list entry
  granted, extended, expired or revoked — into rows of `changes`, written in the same
  transaction: nothing committed is missing from the feed, nothing rolled back is in it.
* `sequence` gives committed rows their feed positions, under the `feed_head` row lock
  (one sequencer at a time across every replica). A transaction still open when the
  sequencer runs is invisible to it and gets a later position once it commits, so a
  follower reading `position > cursor` never skips it. Writers never touch `feed_head`,
  so the register's writers are not serialised by the feed.
* `read` serves WatchChanges and the publisher; `prune` deletes old delivered rows and
  raises `pruned_through`, below which a cursor is too old.
* `head` reads the feed head with its epoch (domain/changes.py), and makes the epoch anew
  when the head is not where it was written: its `anchor` names the database and table
  it lives in (PostgreSQL: their oids, which a `pg_restore`, into the same database or
  another, changes, and the transaction that last wrote the head, which a data-only
  restore changes) or, in a copy `backup` made, names no place at all, so a database
  brought back from a dump or a backup renews its epoch the first time it is read, and
  the cursors of the feed it replaces are refused (review 58 F1).
* A firm that moves to another region gets two rows after the transaction's others:
  REGION_LEFT in the region it left and REGION_JOINED in the one it joined, both with
  its state after the move, so a follower of either region learns it (review 58 F2).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.util import identity_key

from services.common.clock import new_id, now
from services.common.db import read_snapshot
from services.common.instants import as_utc
from services.rules.adapters.orm import changes, decisions, feed_head, firms, whitelist_entries
from services.rules.domain.changes import KIND_ORDER, Change, ChangeKind, new_epoch
from services.rules.domain.register import (
    DecisionRecord,
    EventRecord,
    Firm,
    InspectionRecord,
    WhitelistEntry,
)

_log = structlog.get_logger("feed")
_PENDING = "feed_pending"
_MOVES = "feed_region_moves"  # {enterprise_id: [region before the transaction, after]}
PUBLISH_LOCK = 7_331_007  # a PostgreSQL advisory lock key: one publisher at a time


@dataclass
class _Candidate:
    """A decision seen at flush: a change only if it differs from the previous one."""

    change: Change
    previous_id: str | None
    same_status_and_colour: bool


class ChangeRecorder:
    """Collects changes at every flush of a session and writes them before its commit."""

    def install(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "after_flush", self._collect)
        event.listen(factory, "before_commit", self._write)
        event.listen(factory, "after_rollback", _forget)

    def holds(self, session: Session) -> bool:
        """Changes of `session` collected and not yet written."""
        return bool(session.info.get(_PENDING)) or bool(session.info.get(_MOVES))

    def _collect(self, session: Session, _context: Any) -> None:
        """This flush's changes, the event first and then what it caused (KIND_ORDER);
        flushes stay in their order (an entry expired in one flush, granted anew in the
        next, is EXPIRED then GRANTED)."""
        pending: list[Change | _Candidate] = session.info.setdefault(_PENDING, [])
        found: list[Change | _Candidate] = []
        for obj in session.new:
            if isinstance(obj, EventRecord):
                found.append(event_change(obj))
            elif isinstance(obj, InspectionRecord):
                found.append(_inspection(obj))
            elif isinstance(obj, WhitelistEntry):
                found.append(_entry(obj, ChangeKind.WHITELIST_GRANTED))
            elif isinstance(obj, DecisionRecord):
                found.append(_decision(session, obj))
        for obj in session.dirty:
            if isinstance(obj, WhitelistEntry) and (kind := _entry_move(obj)) is not None:
                found.append(_entry(obj, kind))
            elif isinstance(obj, Firm):
                _note_move(session, obj)
        found.sort(key=lambda c: KIND_ORDER[c.kind if isinstance(c, Change) else c.change.kind])
        pending.extend(found)

    def _write(self, session: Session) -> None:
        session.flush()  # commit's own flush comes after before_commit: collect it first
        pending = session.info.pop(_PENDING, [])
        moves = {k: v for k, v in session.info.pop(_MOVES, {}).items() if v[0] != v[1]}
        if not pending and not moves:
            return
        connection = session.connection()
        found = _decided(connection, pending) + region_moves(connection, moves)
        if not found:
            return
        regions = _regions(session, connection, {c.enterprise_id for c in found})
        connection.execute(
            insert(changes),
            [
                {
                    "change_id": c.change_id,
                    "enterprise_id": c.enterprise_id,
                    "region": c.region or regions.get(c.enterprise_id, ""),
                    "kind": c.kind.value,
                    "detail": c.detail,
                    "recorded_at": c.recorded_at,
                }
                for c in found
            ],
        )


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_MOVES, None)


def _note_move(session: Session, firm: Firm) -> None:
    """Remember a stored firm's region before the transaction and after this flush."""
    history = inspect(firm).attrs.region.history
    if history.deleted and history.added:
        moves: dict[str, list[str]] = session.info.setdefault(_MOVES, {})
        moves.setdefault(firm.enterprise_id, [history.deleted[0], ""])[1] = firm.region


def move_detail(
    from_region: str,
    to_region: str,
    decision: tuple[str, str, str],
    entry: tuple[Any, Any] | None,
) -> dict[str, Any]:
    """A move's detail (the batch writer's too): the regions, the firm's decision after
    the move (status, colour, id) and its open white-list entry's days (None: none)."""
    status, risk_level, decision_id = decision
    return {
        "from_region": from_region,
        "to_region": to_region,
        "status": status,
        "risk_level": risk_level,
        "decision_id": decision_id,
        "whitelisted": entry is not None,
        "granted_on": entry[0].isoformat() if entry else "",
        "valid_until": entry[1].isoformat() if entry else "",
    }


def region_moves(connection: Connection, moves: dict[str, list[str]]) -> list[Change]:
    """REGION_LEFT (in the region it left) then REGION_JOINED (in the one it joined) for
    each firm that moved, with its state as the transaction left it (read back: every
    change of the transaction is flushed)."""
    if not moves:
        return []
    ids = sorted(moves)
    decided = {
        row.enterprise_id: (row.status, row.risk_level, row.decision_id or "")
        for row in connection.execute(
            select(
                firms.c.enterprise_id, firms.c.status, firms.c.risk_level, firms.c.decision_id
            ).where(firms.c.enterprise_id.in_(ids))
        )
    }
    w = whitelist_entries.c
    entries = {
        row.enterprise_id: (row.granted_on, row.valid_until)
        for row in connection.execute(
            select(w.enterprise_id, w.granted_on, w.valid_until).where(
                w.enterprise_id.in_(ids), w.revoked_on.is_(None)
            )
        )
    }
    out = []
    for enterprise_id in ids:
        before, after = moves[enterprise_id]
        detail = move_detail(before, after, decided[enterprise_id], entries.get(enterprise_id))
        out.append(_change(ChangeKind.REGION_LEFT, enterprise_id, detail, before))
        out.append(_change(ChangeKind.REGION_JOINED, enterprise_id, dict(detail), after))
    return out


def _change(
    kind: ChangeKind, enterprise_id: str, detail: dict[str, Any], region: str = ""
) -> Change:
    return Change(new_id(), kind, enterprise_id, region, now(), detail)


def event_change(record: EventRecord) -> Change:
    """The change an event record makes (the batch writer of ReportEvent groups too)."""
    return _change(
        ChangeKind.EVENT_APPLIED,
        record.enterprise_id,
        {
            "event_id": record.event_id,
            "kind": record.kind,
            "occurred_on": record.occurred_on.isoformat(),
            "source": record.source,
            "summary": record.summary,
        },
    )


def _inspection(record: InspectionRecord) -> Change:
    kind = ChangeKind.INSPECTION_ALLOWED if record.allowed else ChangeKind.INSPECTION_DENIED
    return _change(
        kind,
        record.enterprise_id,
        {
            "authority": record.authority,
            "kind": record.kind,
            "planned_on": record.planned_on.isoformat(),
            "joint": record.joint,
            "joint_id": record.joint_id,
            "reason_code": record.reason_code,
        },
    )


def _entry(entry: WhitelistEntry, kind: ChangeKind) -> Change:
    return _change(
        kind,
        entry.enterprise_id,
        {
            "granted_on": entry.granted_on.isoformat(),
            "valid_until": entry.valid_until.isoformat(),
            "revoked_on": entry.revoked_on.isoformat() if entry.revoked_on else "",
            "reason": entry.revoked_reason,
            "decision_id": entry.decision_id,
        },
        entry.region,
    )


def _entry_move(entry: WhitelistEntry) -> ChangeKind | None:
    state = inspect(entry)
    if state.attrs.revoked_on.history.has_changes() and entry.revoked_on is not None:
        if entry.closed_as == "expired":  # the move's kind, not the reason's words
            return ChangeKind.WHITELIST_EXPIRED
        return ChangeKind.WHITELIST_REVOKED
    if state.attrs.valid_until.history.has_changes() and entry.revoked_on is None:
        return ChangeKind.WHITELIST_EXTENDED
    return None


def _decision(session: Session, record: DecisionRecord) -> _Candidate:
    firm = session.identity_map.get(identity_key(Firm, record.enterprise_id))
    previous_id, before = None, ("", "")
    if isinstance(firm, Firm):
        state = inspect(firm)
        deleted = state.attrs.decision_id.history.deleted
        previous_id = deleted[0] if deleted else None
        old_status = state.attrs.status.history.deleted
        old_colour = state.attrs.risk_level.history.deleted
        before = (
            old_status[0] if old_status else firm.status,
            old_colour[0] if old_colour else firm.risk_level,
        )
    blockers = [b["code"] for b in record.payload.get("whitelist_blockers", [])]
    change = _change(
        ChangeKind.DECISION_CHANGED,
        record.enterprise_id,
        {
            "decision_id": record.id,
            "status": record.status,
            "risk_level": record.risk_level,
            "blocker_codes": blockers,
            "previous_status": before[0] if previous_id else "",
            "previous_risk_level": before[1] if previous_id else "",
            "as_of": record.as_of.isoformat(),
            "cause": record.cause,
        },
        firm.region if isinstance(firm, Firm) else "",
    )
    same = previous_id is not None and before == (record.status, record.risk_level)
    return _Candidate(change, previous_id, same)


# built once (every decision that keeps status and colour reads its predecessor's)
_PAYLOADS = select(decisions.c.id, decisions.c.payload).where(
    decisions.c.id.in_(bindparam("ids", expanding=True))
)


def _decided(connection: Connection, pending: list[Change | _Candidate]) -> list[Change]:
    """The changes in their order, keeping a decision only when status, colour or
    blockers moved."""
    candidates = [p for p in pending if isinstance(p, _Candidate)]
    ids = [c.previous_id for c in candidates if c.same_status_and_colour and c.previous_id]
    old: dict[str, list[str]] = {}
    if ids:
        for row in connection.execute(_PAYLOADS, {"ids": ids}):
            payload = row.payload if isinstance(row.payload, dict) else {}
            old[row.id] = [b["code"] for b in payload.get("whitelist_blockers", [])]
    out = []
    for p in pending:
        if isinstance(p, Change):
            out.append(p)
        elif not (
            p.same_status_and_colour
            and old.get(p.previous_id or "") == p.change.detail["blocker_codes"]
        ):
            out.append(p.change)
    return out


def _regions(session: Session, connection: Connection, ids: set[str]) -> dict[str, str]:
    regions = {}
    for enterprise_id in ids:
        firm = session.identity_map.get(identity_key(Firm, enterprise_id))
        if isinstance(firm, Firm):
            regions[enterprise_id] = firm.region
    missing = ids - set(regions)
    if missing:
        query = select(firms.c.enterprise_id, firms.c.region).where(
            firms.c.enterprise_id.in_(missing)
        )
        regions.update({row.enterprise_id: row.region for row in connection.execute(query)})
    return regions


RECORDER = ChangeRecorder()


# ---------------------------------------------------------------- sequencing and reading


# PostgreSQL: the changes `ids` (ascending) positioned start + 1, start + 2, … in one
# statement
_POSITIONS = text(
    "UPDATE changes AS c SET position = :start + v.n "
    "FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS v(id, n) WHERE c.id = v.id"
)


class FeedStore:
    """Positions, reads and prunes the feed; wakes in-process followers on new positions."""

    def __init__(self, engine: Engine) -> None:
        """Sequencing only positions changes; marking them delivered is the feed worker's
        (after publishing them, or at once when no publisher is configured), so a follower
        that sequences never takes a change away from the bus."""
        self.engine = engine
        self._lock_rows = engine.dialect.name != "sqlite"
        self._news = threading.Condition()
        self._generation = 0

    @property
    def publishes_in_transaction(self) -> bool:
        """Whether the feed worker publishes a batch inside the transaction that holds
        the publishers' lock (PostgreSQL), or with no transaction open (SQLite, where
        every write transaction holds the process's one write lock: review 57 D3)."""
        return self._lock_rows

    def lock_publishing(self, connection: Connection) -> bool:
        """Whether this transaction may publish: one publisher at a time across replicas
        (PostgreSQL: a transaction-scoped advisory lock, taken without waiting; SQLite:
        none: two processes on one file may publish a batch twice, and JetStream drops
        the repeat by its `Nats-Msg-Id`). Not the feed head's row lock, which sequencing
        takes: a batch waiting on a slow bus held it, so no change got a position and
        every WatchChanges follower stalled with the bus (review 49 F2)."""
        if not self._lock_rows:
            return True
        taken = connection.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK}
        ).scalar()
        return bool(taken)

    def publisher(self, connection: Connection, *, hold: bool = False) -> str | None:
        """The bus a replica publishes this database's changes to (`claim_publisher`), or
        None when none has. `hold`: on PostgreSQL the head is read FOR SHARE, so no claim
        commits before this transaction ends (a replica without NATS marking changes
        delivered must not mark any that a claim made meanwhile leaves to the bus:
        review 50 N6)."""
        query = select(feed_head.c.publisher).where(feed_head.c.id == 1)
        if hold and self._lock_rows:
            query = query.with_for_update(read=True)
        return connection.execute(query).scalar()

    def claim_publisher(self, connection: Connection, name: str) -> str | None:
        """Name the bus this database's changes go to: from now on a replica without a
        publisher leaves them to it instead of marking them delivered (review 49 F1).
        Written only when it differs (a replica claims once a process). The bus named
        before, when another (two replicas with different streams split the feed)."""
        before = self.publisher(connection)
        connection.execute(
            update(feed_head)
            .where(feed_head.c.id == 1, feed_head.c.publisher.is_distinct_from(name))
            .values(publisher=name, **written_anchor(connection))
        )
        return before if before not in (None, name) else None

    def forget_publisher(self, connection: Connection) -> str | None:
        """Clear the bus's name (the bus given up): the name it had."""
        had = self.publisher(connection)
        connection.execute(
            update(feed_head)
            .where(feed_head.c.id == 1)
            .values(publisher=None, **written_anchor(connection))
        )
        return had

    def lock_head(self, connection: Connection, *, wait: bool = True) -> Any:
        """Read (and, on PostgreSQL, lock) the feed head: one sequencer/pruner at a time.
        `wait=False`: None at once when another holds it (it is doing the work)."""
        query = select(feed_head.c.last_position, feed_head.c.pruned_through).where(
            feed_head.c.id == 1
        )
        if self._lock_rows:
            query = query.with_for_update(skip_locked=not wait)
        row = connection.execute(query).first()
        if row is None and wait:
            raise RuntimeError("feed_head row missing: run the migrations")
        return row

    def has_unpositioned(self) -> bool:
        """A cheap read (a partial index) before taking the head lock to sequence. In id
        order, as `sequence` reads them: with that order PostgreSQL takes the partial
        index whatever its statistics say; without it, statistics taken while many
        changes were unpositioned (a burst, a lagging feed) made it scan every change,
        five times a second in each serving process (stop 27)."""
        with self.engine.connect() as connection:
            found = connection.execute(unpositioned_query()).first() is not None
            connection.commit()  # not the pool's ROLLBACK: psycopg drops its prepared statements
        return found

    def sequence(self, limit: int = 1000) -> int:
        """Give the committed changes without a position the next positions, in id order."""
        if not self.has_unpositioned():
            return 0
        with self.engine.begin() as connection:
            head = self.lock_head(connection, wait=False)
            if head is None:
                return 0  # another process is sequencing, publishing or pruning
            ids = list(
                connection.execute(
                    select(changes.c.id)
                    .where(changes.c.position.is_(None))
                    .order_by(changes.c.id)
                    .limit(limit)
                ).scalars()
            )
            if not ids:
                return 0
            start = head.last_position
            if connection.dialect.name == "postgresql":
                # one statement: an executemany is an UPDATE per change, each bound,
                # planned and run by the server (a fifth of a ReportEvent's feed cost)
                connection.execute(_POSITIONS, {"start": start, "ids": ids})
            else:
                connection.execute(
                    update(changes)
                    .where(changes.c.id == bindparam("_id"))
                    .values(position=bindparam("_position")),
                    [{"_id": i, "_position": start + n + 1} for n, i in enumerate(ids)],
                )
            connection.execute(
                update(feed_head)
                .where(feed_head.c.id == 1)
                .values(last_position=start + len(ids), **written_anchor(connection))
            )
        self.notify()
        return len(ids)

    def notify(self) -> None:
        with self._news:
            self._generation += 1
            self._news.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until the next sequencing in this process, or `timeout` (other replicas)."""
        with self._news:
            seen = self._generation
            self._news.wait_for(lambda: self._generation != seen, timeout=timeout)

    def pruned_through(self) -> int:
        return self.bounds()[0]

    def bounds(self) -> tuple[int, int]:
        """(pruned through, last position): the cursors this feed can still serve lie
        between the two."""
        head = self.head()
        return head.pruned, head.last

    def head(self, *, renew: bool = False) -> FeedHead:
        """The feed head, its epoch made anew first when the head was restored (`renew`:
        in any case, as `renew-feed-epoch` asks)."""
        with self.engine.connect() as connection:
            found = feed_head_of(connection, renew=renew)
            connection.commit()  # as in has_unpositioned (and a renewal with it)
        return found

    def read_head(self) -> FeedHead:
        """The feed head, read in a snapshot that takes no write lock (SQLite's BEGIN
        IMMEDIATE would queue a read behind the writers); when its epoch must be made
        anew (a restored database), through `head`, which renews it."""
        with read_snapshot(self.engine) as connection:
            row = _head_row(connection)
        if _needs_epoch(row):
            return self.head()
        return _head_of(row)

    def read(self, after: int, regions: Sequence[str] = (), limit: int = 200) -> list[Change]:
        """Positioned changes after `after`, of firms in `regions` (empty: every region)."""
        query = select(changes).where(changes.c.position > after)
        if regions:
            query = query.where(changes.c.region.in_(list(regions)))
        query = query.order_by(changes.c.position).limit(limit)
        with self.engine.connect() as connection:
            found = [_from_row(row) for row in connection.execute(query)]
            connection.commit()  # as in has_unpositioned
        return found

    def prune(self, before: datetime) -> int:
        """Delete positioned, delivered changes recorded before `before`; return how many."""
        with self.engine.begin() as connection:
            head = self.lock_head(connection)
            doomed = (
                (changes.c.position.is_not(None))
                & (changes.c.published_at.is_not(None))
                & (changes.c.recorded_at < before)
            )
            top = connection.execute(select(func.max(changes.c.position)).where(doomed)).scalar()
            if top is None:
                return 0
            result = connection.execute(delete(changes).where(doomed & (changes.c.position <= top)))
            connection.execute(
                update(feed_head)
                .where(feed_head.c.id == 1)
                .values(
                    pruned_through=max(int(top), int(head.pruned_through)),
                    **written_anchor(connection),
                )
            )
            return int(result.rowcount or 0)


# ---------------------------------------------------------------- the feed's epoch

SQLITE_ANCHOR = "sqlite"  # a SQLite file has no identity of its own to name
BACKUP_ANCHOR = "backup"  # a `backup` copy's: whoever uses it first renews its epoch
# PostgreSQL: the database's oid, the feed head table's, and the transaction that wrote
# the head row. `pg_restore` (with --clean into the same database, or into another)
# creates the table anew, so the restored head's anchor names another table than the one
# it is read from. A data-only restore into the same table (TRUNCATE, then `pg_restore
# --data-only`; review 61 R61-1) keeps both oids, but the row it inserts is written by the
# restore's transaction, not the one its anchor names: every write of the head row puts
# its own transaction id in the anchor (`written_anchor`), and the row's `xmin` is that
# transaction's while the row is as this code left it. Only the low 32 bits: `xmin` is a
# 32-bit xid (txid_current() adds the xid epoch). No write of the head row runs in a
# savepoint (its xmin would be the subtransaction's). VACUUM (FREEZE, FULL) and CLUSTER
# keep a row's xmin; pg_upgrade keeps both oids (PostgreSQL 15 and later) and every xmin,
# a base backup or a failover too (README: renew by hand). Anything else that updates the
# row (an UPDATE by hand) renews the epoch at its next read: the safe direction.
_PG_PLACE = (
    "(SELECT CAST(oid AS text) FROM pg_database WHERE datname = current_database())"
    " || ':' || CAST(CAST(CAST('feed_head' AS regclass) AS oid) AS text)"
)
_PG_ANCHOR = f"{_PG_PLACE} || ':' || CAST(feed_head.xmin AS text)"
_PG_WRITTEN = f"{_PG_PLACE} || ':' || CAST(txid_current() % 4294967296 AS text)"
# In an UPDATE's SET, `feed_head.xmin` and `anchor` are the row's before the update: an
# anchor that held goes on holding; one that did not (a restored head not yet read, and
# so not yet renewed) is left as it is, and still does not hold after this write.
_PG_RESTAMP = (
    f"CASE WHEN feed_head.anchor = {_PG_ANCHOR} THEN {_PG_WRITTEN} ELSE feed_head.anchor END"
)


@dataclass(frozen=True)
class FeedHead:
    """The feed head as a follower judges a cursor by it."""

    epoch: int
    last: int  # the last position given
    pruned: int  # positions up to this one are pruned
    bare_through: int | None  # bare cursors (no epoch) up to this position; None: to last

    @property
    def bare_limit(self) -> int:
        """The last position a bare cursor may name: a cursor given before feeds had
        epochs names a change of this feed only up to the position its database was
        restored at (and never beyond the last)."""
        return self.last if self.bare_through is None else min(self.bare_through, self.last)


def live_anchor(connection: Connection) -> Any:
    """Where the feed head is read from, as a SQL expression (`FeedHead` anchors)."""
    if connection.dialect.name == "postgresql":
        return literal_column(_PG_ANCHOR)
    return literal(SQLITE_ANCHOR)


def written_anchor(connection: Connection) -> dict[str, Any]:
    """What every UPDATE of the feed head row sets besides its own columns: on PostgreSQL
    the anchor naming the writing transaction (`_PG_ANCHOR`) when it held before the
    write (`_PG_RESTAMP`: a write must not make a restored head look unrestored), so a
    row left as this code wrote it is told from one a restore inserted; nothing on
    SQLite."""
    if connection.dialect.name == "postgresql":
        return {"anchor": literal_column(_PG_RESTAMP)}
    return {}


def _head_row(connection: Connection, *, lock: bool = False) -> Any:
    h = feed_head.c
    query = select(
        h.epoch,
        h.last_position,
        h.pruned_through,
        h.bare_through,
        h.anchor,
        live_anchor(connection).label("live"),
    ).where(h.id == 1)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise RuntimeError("feed_head row missing: run the migrations")
    return row


def feed_head_of(connection: Connection, *, renew: bool = False) -> FeedHead:
    """The feed head in `connection`'s transaction. Its epoch is made anew first when it
    has none, when its anchor is not where it is read (a restored dump or a `backup`
    copy: see `_PG_ANCHOR`), or when `renew`: then bare cursors are taken only up to the
    last position it holds (the restored feed and the one it replaces share the changes
    up to there, and no further). The caller commits."""
    row = _head_row(connection)
    if renew or _needs_epoch(row):
        row = _head_row(connection, lock=True)  # one renewal, whoever reads it first
        if renew or _needs_epoch(row):
            last = int(row.last_position)
            bare = last if row.bare_through is None else min(int(row.bare_through), last)
            epoch = new_epoch(row.epoch)
            here: Any = row.live  # SQLite's; PostgreSQL's names this transaction
            if connection.dialect.name == "postgresql":
                here = literal_column(_PG_WRITTEN)
            connection.execute(
                update(feed_head)
                .where(feed_head.c.id == 1)
                .values(epoch=epoch, bare_through=bare, anchor=here)
            )
            _log.warning(
                "change feed epoch renewed: cursors given before are refused",
                epoch=epoch,
                before=row.epoch,
                last_position=last,
                why="asked" if renew else "restored",
            )
            row = _head_row(connection)
    return _head_of(row)


def _needs_epoch(row: Any) -> bool:
    """Whether a feed head row (`_head_row`) must get a new epoch before it is used: it
    has none, or it was not written where it is read (restored)."""
    return bool(row.epoch is None or row.anchor != row.live)


def _head_of(row: Any) -> FeedHead:
    return FeedHead(
        int(row.epoch),
        int(row.last_position),
        int(row.pruned_through),
        None if row.bare_through is None else int(row.bare_through),
    )


def mark_backup(connection: Connection) -> bool:
    """In a copy `backup` makes: whoever uses it first renews its feed's epoch. False: a
    database of before the feed had epochs (nothing to mark: it gets one when migrated)."""
    if not any(c["name"] == "anchor" for c in inspect(connection).get_columns("feed_head")):
        return False
    connection.execute(update(feed_head).where(feed_head.c.id == 1).values(anchor=BACKUP_ANCHOR))
    return True


def _from_row(row: Any) -> Change:
    return Change(
        change_id=row.change_id,
        kind=ChangeKind(row.kind),
        enterprise_id=row.enterprise_id,
        region=row.region,
        recorded_at=as_utc(row.recorded_at),  # SQLite keeps no offset: it was stored in UTC
        detail=dict(row.detail or {}),
        position=row.position,
    )


def unpublished(connection: Connection, limit: int) -> list[Change]:
    """Positioned changes not yet published, in position order (the publisher's queue),
    with the feed's epoch (their cursors go in the messages). The head is not renewed
    here (that would hold its row through a publish): `FeedWorker` reads it first."""
    query = (
        select(changes)
        .where(changes.c.position.is_not(None) & changes.c.published_at.is_(None))
        .order_by(changes.c.position)
        .limit(limit)
    )
    found = [_from_row(row) for row in connection.execute(query)]
    if not found:
        return found
    epoch = connection.execute(select(feed_head.c.epoch).where(feed_head.c.id == 1)).scalar()
    return [replace(c, epoch=epoch) for c in found]


def mark_all_delivered(connection: Connection) -> int:
    """No publisher configured: every positioned change counts as delivered."""
    result = connection.execute(
        update(changes)
        .where(changes.c.position.is_not(None) & changes.c.published_at.is_(None))
        .values(published_at=now())
    )
    return int(result.rowcount or 0)


def mark_published(connection: Connection, positions: Iterable[int]) -> None:
    wanted = list(positions)
    if wanted:
        connection.execute(
            update(changes).where(changes.c.position.in_(wanted)).values(published_at=now())
        )


def unpositioned_query() -> Select[tuple[int]]:
    """The first change without a position, by the partial index `ix_changes_unpositioned`
    (`FeedStore.has_unpositioned`)."""
    return select(changes.c.id).where(changes.c.position.is_(None)).order_by(changes.c.id).limit(1)
