"""Queries over the register; the unit of work owns the session and the transaction.

Conditions use the Table columns (typed), and results are the mapped domain records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter

from services.rules.adapters.orm import (
    decisions,
    events,
    firms,
    inspections,
    reevaluation_runs,
    whitelist_entries,
)
from services.rules.domain.register import (
    DecisionRecord,
    EventItem,
    EventRecord,
    Firm,
    HistoryEntry,
    InspectionRecord,
    ReevaluationRun,
    WhitelistEntry,
)


class Register:
    """Every query the rules handlers need, over one session."""

    def __init__(self, session: Session, *, lock_rows: bool) -> None:
        self.session = session
        self._lock_rows = lock_rows  # PostgreSQL: SELECT … FOR UPDATE; SQLite locks the file
        # PostgreSQL reads a group's newest rows per firm by LATERAL … LIMIT (SQLite has no
        # LATERAL: a correlated IN … LIMIT instead)
        self._lateral = session.get_bind().dialect.name == "postgresql"
        self._open: dict[str, WhitelistEntry | None] = {}  # by remember_open_entry

    def add(self, record: object) -> None:
        self.session.add(record)

    def firm(self, enterprise_id: str, *, for_update: bool = False) -> Firm | None:
        query = select(Firm).where(firms.c.enterprise_id == enterprise_id)
        if for_update and self._lock_rows:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(query).first()

    def firm_for_event(
        self, enterprise_id: str, source: str, event_id: str
    ) -> tuple[Firm | None, bool]:
        """The firm, locked for update (PostgreSQL), and whether (source, event_id) is
        already recorded, in one query; (None, False) when there is no such firm (whether
        the event is recorded is then not asked)."""
        query = _firm_for_event(self._lock_rows)
        params = {"enterprise_id": enterprise_id, "source": source, "event_id": event_id}
        row = self.session.execute(query, params).first()
        return (None, False) if row is None else (row[0], bool(row[1]))

    def recorded_events(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (source, event_id) are recorded: one query."""
        wanted = set(keys)
        if not wanted:
            return set()
        rows = self.session.execute(recorded_events_query(), {"keys": sorted(wanted)})
        return {(row.source, row.event_id) for row in rows}

    def decision(self, decision_id: str | None) -> DecisionRecord | None:
        return self.session.get(DecisionRecord, decision_id) if decision_id else None

    def decision_day(self, decision_id: str | None) -> date | None:
        """The day a stored decision speaks for (its as_of), without loading it whole."""
        if not decision_id:
            return None
        query = select(decisions.c.as_of).where(decisions.c.id == decision_id)
        day = self.session.execute(query).scalar()
        return day if isinstance(day, date) else None

    def history(self, enterprise_id: str, limit: int) -> Sequence[DecisionRecord]:
        """The newest `limit` decisions, whole (a history reads `recent_history`; this and
        `recent_events` are the plain way its test compares it with)."""
        query = (
            select(DecisionRecord)
            .where(decisions.c.enterprise_id == enterprise_id)
            .order_by(decisions.c.decided_at.desc())
            .limit(limit)
        )
        return self.session.scalars(query).all()

    def recent_history(
        self, enterprise_id: str, limit: int, cause_kinds: Sequence[str]
    ) -> tuple[list[HistoryEntry], list[WhitelistEntry]]:
        """In one query, what `history`, `events_of_decisions` and `entries_of_decisions`
        answer in three, reading only what a history shows: the items of the newest
        `limit` decisions (newest first), each naming the event of `cause_kinds` that
        caused it, and the white-list entries they granted or closed (copies, not the
        session's objects).
        Pending changes are written first, as an ORM query would."""
        self.session.flush()
        params = {"enterprise_id": enterprise_id, "limit": limit, "kinds": list(cause_kinds)}
        found = _HistoryRows()
        for row in self.session.execute(_recent_history(), params):
            found.add(row)
        return found.result()

    def recent_histories(
        self, enterprise_ids: Sequence[str], limit: int, cause_kinds: Sequence[str]
    ) -> dict[str, tuple[list[HistoryEntry], list[WhitelistEntry]]]:
        """`recent_history` of each of these firms, in one query (a ReportEvent group's)."""
        self.session.flush()
        params = {"ids": list(enterprise_ids), "limit": limit, "kinds": list(cause_kinds)}
        rows = self.session.execute(recent_histories_query(self._lateral), params)
        return histories_of_rows(enterprise_ids, rows)

    def recent_event_items(
        self, enterprise_id: str, kinds: Sequence[str], limit: int
    ) -> list[EventItem]:
        """`recent_events`, reading only what a history shows of each."""
        params = {"enterprise_id": enterprise_id, "limit": limit, "kinds": list(kinds)}
        return [EventItem(*row) for row in self.session.execute(_recent_event_items(), params)]

    def recent_event_items_of(
        self, enterprise_ids: Sequence[str], kinds: Sequence[str], limit: int
    ) -> dict[str, list[EventItem]]:
        """`recent_event_items` of each of these firms, in one query."""
        params = {"ids": list(enterprise_ids), "limit": limit, "kinds": list(kinds)}
        rows = self.session.execute(recent_event_items_query(self._lateral), params)
        return event_items_of_rows(enterprise_ids, rows)

    def open_entry(self, enterprise_id: str, *, flush: bool = True) -> WhitelistEntry | None:
        """The firm's open white-list entry: a remembered one (`remember_open_entry`)
        once, else read; `flush=False` reads without writing
        pending changes first (none of them can change the answer)."""
        if enterprise_id in self._open:
            return self._open.pop(enterprise_id)
        query, params = _open_entry(), {"enterprise_id": enterprise_id}
        if flush:
            return self.session.scalars(query, params).first()
        with self.session.no_autoflush:
            return self.session.scalars(query, params).first()

    def remember_open_entry(self, enterprise_id: str, entry: WhitelistEntry | None) -> None:
        """What a decision left open: the next `open_entry` of the firm answers it unread."""
        self._open[enterprise_id] = entry

    def firms_page(self, regions: Sequence[str], after: str, limit: int) -> Sequence[Firm]:
        """Firms of `regions` (empty: all) ordered by enterprise_id, strictly after `after`."""
        f = firms.c
        conditions: list[ColumnElement[bool]] = []
        if regions:
            conditions.append(f.region.in_(list(regions)))
        if after:
            conditions.append(f.enterprise_id > after)
        query = select(Firm).where(*conditions).order_by(f.enterprise_id).limit(limit)
        return self.session.scalars(query).all()

    def whitelist_page(
        self, regions: Sequence[str], today: date, after: str, limit: int
    ) -> Sequence[WhitelistEntry]:
        """Entries of `regions` (empty: all) that list their firm `today`
        (WhitelistEntry.listed_on), ordered by enterprise_id, strictly after the cursor
        (an enterprise_id). An entry's closing day is never after the day the closure
        was made (reevaluation.move_entry), so a closed entry lists no firm today: the
        open ones are read, by the open entries' partial index."""
        w = whitelist_entries.c
        conditions = [w.revoked_on.is_(None), w.valid_until >= today, w.granted_on <= today]
        if regions:
            conditions.append(w.region.in_(list(regions)))
        if after:
            conditions.append(w.enterprise_id > after)
        query = select(WhitelistEntry).where(*conditions).order_by(w.enterprise_id).limit(limit)
        return self.session.scalars(query).all()

    def entries_between(
        self, regions: Sequence[str], first: date, last: date
    ) -> Sequence[WhitelistEntry]:
        """Entries of `regions` (empty: all) granted by `last` and not closed before `first`:
        every entry that may count on some day of [first, last]."""
        w = whitelist_entries.c
        conditions = [
            w.granted_on <= last,
            or_(w.revoked_on.is_(None), w.revoked_on >= first),
            w.valid_until >= first,
        ]
        if regions:
            conditions.append(w.region.in_(list(regions)))
        return self.session.scalars(select(WhitelistEntry).where(*conditions)).all()

    def events_of_decisions(
        self, enterprise_id: str, decision_ids: Sequence[str], kinds: Sequence[str]
    ) -> Sequence[EventRecord]:
        """The events of `kinds` that caused these decisions."""
        e = events.c
        query = select(EventRecord).where(
            e.enterprise_id == enterprise_id,
            e.decision_id.in_(list(decision_ids)),
            e.kind.in_(list(kinds)),
        )
        return self.session.scalars(query).all() if decision_ids else []

    def recent_events(
        self, enterprise_id: str, kinds: Sequence[str], limit: int
    ) -> Sequence[EventRecord]:
        e = events.c
        query = (
            select(EventRecord)
            .where(e.enterprise_id == enterprise_id, e.kind.in_(list(kinds)))
            .order_by(e.received_at.desc(), e.id.desc())
            .limit(limit)
        )
        return self.session.scalars(query).all()

    def entries_of_decisions(
        self, enterprise_id: str, decision_ids: Sequence[str]
    ) -> Sequence[WhitelistEntry]:
        """The white-list entries these decisions granted or closed."""
        w = whitelist_entries.c
        ids = list(decision_ids)
        query = select(WhitelistEntry).where(
            w.enterprise_id == enterprise_id,
            or_(w.granted_decision_id.in_(ids), w.closed_decision_id.in_(ids)),
        )
        return self.session.scalars(query).all() if ids else []

    def event(self, source: str, event_id: str) -> EventRecord | None:
        query = select(EventRecord).where(events.c.source == source, events.c.event_id == event_id)
        return self.session.scalars(query).first()

    def counted_inspections(
        self, enterprise_id: str, years: Sequence[int]
    ) -> Sequence[InspectionRecord]:
        i = inspections.c
        query = select(InspectionRecord).where(
            i.enterprise_id == enterprise_id,
            i.year.in_(list(years)),
            i.allowed.is_(True),
            i.counted.is_(True),
        )
        return self.session.scalars(query).all()

    def inspection_by_key(self, requested_by: str, key: str) -> InspectionRecord | None:
        i = inspections.c
        query = select(InspectionRecord).where(
            i.requested_by == requested_by, i.idempotency_key == key
        )
        return self.session.scalars(query).first()

    def inspection_by_code(self, code: str) -> InspectionRecord | None:
        query = select(InspectionRecord).where(inspections.c.inspection_code == code)
        return self.session.scalars(query).first()

    def joint_authorities(self, enterprise_id: str, joint_id: str) -> list[str]:
        i = inspections.c
        query = (
            select(i.authority)
            .where(i.enterprise_id == enterprise_id, i.joint_id == joint_id, i.allowed.is_(True))
            .order_by(i.created_at)
        )
        return list(dict.fromkeys(self.session.scalars(query).all()))

    def firm_ids_after(self, after: str, limit: int) -> list[str]:
        query = (
            select(firms.c.enterprise_id)
            .where(firms.c.enterprise_id > after)
            .order_by(firms.c.enterprise_id)
            .limit(limit)
        )
        return list(self.session.scalars(query).all())

    def firm_count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(firms)) or 0)

    def unfinished_run(self, as_of: date, raised: bool) -> ReevaluationRun | None:
        """The unfinished run for `as_of` started in mode `raised` (ReevaluationRun.raised;
        never one of its ranges: those name a parent)."""
        r = reevaluation_runs.c
        query = select(ReevaluationRun).where(
            r.as_of == as_of,
            r.raised == raised,  # NULL (mode unknown) never matches
            r.finished_at.is_(None),
            r.parent_id.is_(None),
        )
        return self.session.scalars(query).first()

    def run(self, run_id: str, *, for_update: bool = False) -> ReevaluationRun | None:
        """A re-evaluation run's (or range's) record; `for_update`: locked on PostgreSQL
        (SQLite's writer holds the file), so two transactions working the same range, of
        two processes, take turns and each reads the cursor the other left."""
        return self.session.get(
            ReevaluationRun,
            run_id,
            with_for_update=True if for_update and self._lock_rows else None,
        )


# The hot path's statements (ReportEvent runs all four), built once, on first use (the
# mapping is set up by then): building one and computing its cache key cost more than
# running it (about 0.35 ms for the history's join). Values come as parameters; the SQL
# is what building it per call gave.


@cache
def _firm_for_event(lock: bool) -> Select[Firm, bool]:
    e = events.c
    recorded = select(e.id).where(
        e.source == bindparam("source"), e.event_id == bindparam("event_id")
    )
    query = select(Firm, recorded.exists().label("recorded")).where(
        firms.c.enterprise_id == bindparam("enterprise_id")
    )
    if lock:
        query = query.with_for_update(of=firms).execution_options(populate_existing=True)
    return query


@cache
def _recent_history() -> Select[Any]:
    d = decisions.c
    firm: BindParameter[str] = bindparam("enterprise_id")
    recent = (
        select(d.id)
        .where(d.enterprise_id == firm)
        .order_by(d.decided_at.desc(), d.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .subquery()
    )
    return _history_of(recent, firm).order_by(d.decided_at.desc(), d.id.desc())


class _HistoryRows:
    """`recent_history`'s rows of one firm, gathered: each decision once (the row naming
    its causing event wins), and the entries its decisions granted or closed (copies)."""

    def __init__(self) -> None:
        self.found: dict[str, HistoryEntry] = {}
        self.entries: dict[str, WhitelistEntry] = {}

    def add(self, row: Any) -> None:
        item = HistoryEntry.of_decision(row, row.event_id or "", row.kind or "")
        if item.decision_id not in self.found or item.event_id:
            self.found[item.decision_id] = item
        if row.w_id is not None:
            self.entries[row.w_id] = WhitelistEntry(
                **{c.name: row._mapping[f"w_{c.name}"] for c in whitelist_entries.c}
            )

    def result(self) -> tuple[list[HistoryEntry], list[WhitelistEntry]]:
        return list(self.found.values()), list(self.entries.values())


def among(column: ColumnElement[Any], name: str, array: bool) -> ColumnElement[bool]:
    """`column` is one of the values of the list parameter `name`: `IN` an expanding
    parameter, or with `array` (PostgreSQL) `= ANY` of one array parameter, whose SQL
    text is the same however long the list is (so the driver prepares it once, and
    nothing is rendered per call)."""
    if array:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def _history_of(recent: Any, firm: ColumnElement[str], array: bool = False) -> Select[Any]:
    """The newest decisions listed by `recent` (a subquery of their ids) with their causing
    events and the entries they granted or closed, newest first (`firm`: whose)."""
    d, e, w = decisions.c, events.c, whitelist_entries.c
    entry_columns = [c.label(f"w_{c.name}") for c in whitelist_entries.c]
    return (
        select(
            d.id,
            d.decided_at,
            d.as_of,
            d.status,
            d.risk_level,
            d.ruleset_version,
            d.cause,
            d.whitelist_change,
            e.event_id,
            e.kind,
            *entry_columns,
            d.enterprise_id,
        )
        .join(recent, d.id == recent.c.id)
        .outerjoin(
            events,
            and_(
                e.enterprise_id == firm,
                e.decision_id == d.id,
                among(e.kind, "kinds", array),
            ),
        )
        .outerjoin(
            whitelist_entries,
            and_(
                w.enterprise_id == firm,
                or_(w.granted_decision_id == d.id, w.closed_decision_id == d.id),
            ),
        )
    )


def _newest_of_each(
    table: Table, newest_first: Sequence[str], lateral: bool, where: Callable[[Any], Any]
) -> Any:
    """A subquery of the ids (column `id`) of the newest `limit` rows of `table`
    (ordered by the columns `newest_first`, descending; filtered by `where`, a function
    of the table's columns) of each firm listed in the `ids` parameter (on PostgreSQL,
    with `lateral`, one array parameter: `among`).

    Bounded per firm, so a group's read costs the same however long its firms' records
    grow: PostgreSQL takes each firm's newest rows by LATERAL … LIMIT, SQLite (no
    LATERAL) looks each firm's up by a correlated IN … LIMIT; both walk the firm's
    (enterprise_id, time) index from its newest end and stop once `limit` rows pass
    `where` (rows it filters out are walked past), as the query of one firm does (ranking
    every row of the firms first read them all)."""
    own = table.alias("newest")
    newest = (
        select(own.c.id)
        .where(own.c.enterprise_id == firms.c.enterprise_id, *where(own.c))
        .order_by(*(own.c[name].desc() for name in newest_first))
        .limit(bindparam("limit", type_=Integer))
    )
    if lateral:
        each = newest.lateral()
        found = select(each.c.id).select_from(firms).join(each, true())
    else:
        found = select(table.c.id).select_from(firms).join(table, table.c.id.in_(newest))
    return found.where(among(firms.c.enterprise_id, "ids", lateral)).subquery()


@cache
def recent_histories_query(lateral: bool) -> Select[Any]:
    """`_recent_history` for a list of firms (parameters `ids`, `limit`, `kinds`): each
    firm's newest `limit` decisions; `recent_histories`' statement, which
    BatchRegister.group_reads sends with others. Its rows go to `histories_of_rows`."""
    d = decisions.c
    recent = _newest_of_each(decisions, ["decided_at", "id"], lateral, lambda _: ())
    return _history_of(recent, d.enterprise_id, lateral).order_by(
        d.enterprise_id, d.decided_at.desc(), d.id.desc()
    )


@cache
def recent_event_items_query(lateral: bool) -> Select[Any]:
    """`_recent_event_items` for a list of firms (parameters `ids`, `kinds`, `limit`),
    the firm's id first. Its rows go to `event_items_of_rows`."""
    e = events.c
    recent = _newest_of_each(
        events,
        ["received_at", "id"],
        lateral,
        lambda c: (among(c.kind, "kinds", lateral),),
    )
    return (
        select(e.enterprise_id, e.event_id, e.kind, e.summary, e.received_at, e.id)
        .join(recent, e.id == recent.c.id)
        .order_by(e.enterprise_id, e.received_at.desc(), e.id.desc())
    )


@cache
def recorded_events_query(array: bool = False) -> Select[Any]:
    """`recorded_events`' statement: which of the (source, event_id) pairs in the
    expanding parameter `keys` are recorded. With `array` (PostgreSQL) the parameters
    are `sources` and `event_ids`, an array each, and the rows are the recorded events
    whose source is one of the first and event_id one of the second: a superset of the
    pairs asked for when a group has several callers, to be narrowed down to them."""
    e = events.c
    if array:
        return select(e.source, e.event_id).where(
            among(e.source, "sources", True), among(e.event_id, "event_ids", True)
        )
    return select(e.source, e.event_id).where(
        tuple_(e.source, e.event_id).in_(bindparam("keys", expanding=True))
    )


def histories_of_rows(
    enterprise_ids: Sequence[str], rows: Iterable[Any]
) -> dict[str, tuple[list[HistoryEntry], list[WhitelistEntry]]]:
    """`recent_histories`' answer from its statement's rows (every firm asked, one
    without rows an empty history)."""
    by_firm: dict[str, _HistoryRows] = {i: _HistoryRows() for i in enterprise_ids}
    for row in rows:
        by_firm[row.enterprise_id].add(row)
    return {i: found.result() for i, found in by_firm.items()}


def event_items_of_rows(
    enterprise_ids: Sequence[str], rows: Iterable[Any]
) -> dict[str, list[EventItem]]:
    """`recent_event_items_of`' answer from its statement's rows."""
    out: dict[str, list[EventItem]] = {i: [] for i in enterprise_ids}
    for row in rows:
        out[row[0]].append(EventItem(*row[1:]))
    return out


@cache
def _recent_event_items() -> Select[Any]:
    e = events.c
    return (
        select(e.event_id, e.kind, e.summary, e.received_at, e.id)
        .where(
            e.enterprise_id == bindparam("enterprise_id"),
            e.kind.in_(bindparam("kinds", expanding=True)),
        )
        .order_by(e.received_at.desc(), e.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )


@cache
def _open_entry() -> Select[WhitelistEntry]:
    return select(WhitelistEntry).where(
        whitelist_entries.c.enterprise_id == bindparam("enterprise_id"),
        whitelist_entries.c.revoked_on.is_(None),
    )
