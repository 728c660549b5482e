"""The booking register's repository: queries over its tables (conditions on Table
columns, results as domain records), and every write that needs SQLAlchemy to say how
(claiming and releasing a slot under the unique (expert, slot) index, locking the rows a
use case changes, claiming an outbox message, writing an event in the rules service's
form)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Insert,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    inspect,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import IteratorResult, Result
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import Alias

from services.booking.adapters.orm import (
    AUDIT,
    OUTBOX_DECISIONS,
    assignments,
    expert_conflicts,
    expert_domains,
    expert_regions,
    expert_slots,
    experts,
    firm_cards,
    firm_sessions,
    firm_sign_in_codes,
    order_transitions,
    orders,
    outbox,
    photos,
    tickets,
    visits,
)
from services.booking.adapters.rules_client import event_json
from services.booking.adapters.staff_repository import StaffRegister
from services.booking.domain.events import BookingEvent
from services.booking.domain.orders import Order
from services.booking.domain.records import (
    Assignment,
    Expert,
    FirmCard,
    FirmSession,
    Offer,
    OutboxMessage,
    Photo,
    SignInCode,
    Visit,
)
from services.booking.domain.slots import parse_slot
from services.booking.domain.tickets import Ticket
from services.common.audit import AuditTrail, chains_of, heads_query, rows_select
from services.common.clock import now
from services.common.db import (
    as_dbapi_error,
    compiled_once,
    driver_of,
    driver_values,
    sqlite_driver_run,
)

T = TypeVar("T")


class BookingRegister(StaffRegister):
    def __init__(self, session: Session, *, lock_rows: bool) -> None:
        self.session = session
        self._lock_rows = lock_rows
        self._in_savepoint = False  # inside with_expert_locked's savepoint
        self._taken: list[tuple[Order, dict[str, Any]]] = []  # add_order's, as taken
        self._recorded = 0  # how many of _taken have their trail entries (record_orders)

    def add(self, record: object) -> None:
        self.session.add(record)

    def _run(self, statement: Executable, params: Any = None) -> Result[Any]:
        """A Core statement on this transaction's connection: rows, not records, so
        without the session's ORM execution (which costs more than a short query)."""
        return self.session.connection().execute(statement, params)

    def _one(self, query, for_update: bool = False):  # type: ignore[no-untyped-def]
        if for_update and self._lock_rows:
            # once locked, read the row as it is now, not as this session saw it earlier
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(query).first()

    def _by_key(self, record: type[T], column: str, key: str, for_update: bool) -> T | None:
        """The record whose `column` is `key` (its statement built once: _by_key_query)."""
        entity: Any = record
        query = _by_key_query(entity, column, for_update and self._lock_rows)
        return self.session.scalars(query, {"key": key}).first()

    # firms
    def firm(self, enterprise_id: str, *, for_update: bool = False) -> FirmCard | None:
        return self._by_key(FirmCard, "enterprise_id", enterprise_id, for_update)

    def firm_card(self, enterprise_id: str) -> FirmCard | None:
        """The firm's card to read (a QR token checked against it): a copy the session
        does not track, so a change to it is never written (`firm` for that)."""
        query, params = _firm_card_query(), {"key": enterprise_id}
        if self._lock_rows:  # PostgreSQL: by the driver (CreateOrder's first statement)
            rows = self._pipelined([(query, params)], writes=False)[0]
            return FirmCard(**rows[0]._mapping) if rows else None
        row = self._run(query, params).first()
        return None if row is None else FirmCard(**row._mapping)

    def firm_cards_of(self, ids: Iterable[str]) -> dict[str, FirmCard]:
        """`firm_card` of several firms (one query), by enterprise id; the unknown left out."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        if self._lock_rows:
            found = self._run(_firm_cards_query(), {"keys": wanted})
            return {row.enterprise_id: FirmCard(**row._mapping) for row in found}
        # SQLite: by the driver, one parameter a firm (compiled once), the values turned
        # as SQLAlchemy's result processing turns them (the instant)
        connection = self.session.connection()
        named = {f"k{n}": key for n, key in enumerate(wanted)}
        rows = sqlite_driver_run(connection, _sqlite_firm_cards(len(wanted)), named)
        names, turns = _results_of(firm_cards, connection.dialect)
        cards = (
            FirmCard(
                **{n: v if t is None else t(v) for n, t, v in zip(names, turns, row, strict=True)}
            )
            for row in rows
        )
        return {card.enterprise_id: card for card in cards}

    # the firm's sign-in
    def codes_since(
        self, *, enterprise_id: str = "", phone_digest: str = "", client: str = "", since: datetime
    ) -> int:
        """Codes asked for since `since`: for one firm (and one phone), or by one client."""
        query = select(func.count()).select_from(firm_sign_in_codes)
        query = query.where(firm_sign_in_codes.c.created_at >= since)
        if enterprise_id:
            query = query.where(firm_sign_in_codes.c.enterprise_id == enterprise_id)
        if phone_digest:
            query = query.where(firm_sign_in_codes.c.phone_digest == phone_digest)
        if client:
            query = query.where(firm_sign_in_codes.c.client == client)
        return int(self.session.scalar(query) or 0)

    def wrong_codes_since(
        self, enterprise_id: str, phone_digests: Sequence[str], since: datetime
    ) -> int:
        """Wrong codes typed since `since` for the firm and this phone (its digest under
        each key): the tries of its codes asked for since then."""
        query = select(func.coalesce(func.sum(firm_sign_in_codes.c.tries), 0)).where(
            firm_sign_in_codes.c.enterprise_id == enterprise_id,
            firm_sign_in_codes.c.phone_digest.in_(list(phone_digests)),
            firm_sign_in_codes.c.created_at >= since,
        )
        return int(self.session.scalar(query) or 0)

    def latest_code(self, enterprise_id: str, phone_digests: Sequence[str]) -> SignInCode | None:
        """The firm's newest code for this phone, given its digest under each key
        (locked: tries are counted); a request's row that never was a code (expiring
        as it was made: asked while the register could not be read) is not one."""
        query = (
            select(SignInCode)
            .where(
                firm_sign_in_codes.c.enterprise_id == enterprise_id,
                firm_sign_in_codes.c.phone_digest.in_(list(phone_digests)),
                firm_sign_in_codes.c.expires_at > firm_sign_in_codes.c.created_at,
            )
            .order_by(firm_sign_in_codes.c.created_at.desc())
            .limit(1)
        )
        return self._one(query, for_update=True)

    def sign_in_code(self, code_id: str) -> SignInCode | None:
        """One code request's row by its id (locked: a request's second transaction sets
        its digest, a sign-in's marks it used)."""
        return self._by_key(SignInCode, "id", code_id, True)

    def firm_session(self, session_id: str) -> FirmSession | None:
        return self.session.get(FirmSession, session_id)

    def firm_sessions(self, enterprise_id: str) -> Sequence[FirmSession]:
        query = select(FirmSession).where(
            firm_sessions.c.enterprise_id == enterprise_id, firm_sessions.c.ended_at.is_(None)
        )
        return self.session.scalars(query).all()

    # experts
    def expert(self, expert_id: str, *, for_update: bool = False) -> Expert | None:
        return self._by_key(Expert, "id", expert_id, for_update)

    def experts(self) -> Sequence[Expert]:
        return self.session.scalars(select(Expert).order_by(experts.c.id)).all()

    def expert_names(self, ids: Iterable[str]) -> dict[str, str]:
        """id → name for the experts that exist, in one query."""
        query = select(experts.c.id, experts.c.name).where(experts.c.id.in_(list(ids)))
        return {row.id: row.name for row in self.session.execute(query)}

    def firm_names(self, ids: Iterable[str]) -> dict[str, str]:
        """enterprise id → name for the firms that exist, in one query."""
        query = select(firm_cards.c.enterprise_id, firm_cards.c.name).where(
            firm_cards.c.enterprise_id.in_(list(ids))
        )
        return {row.enterprise_id: row.name for row in self.session.execute(query)}

    def offers(
        self,
        *,
        enterprise_id: str,
        region: str,
        needed: frozenset[str],
        preferred: Sequence[str],
        since: date,
        until: date,
        skip: Iterable[str] = (),
        limit: int = 8,
    ) -> list[Offer]:
        """The best `limit` experts eligible for an order, each with their first free
        half-day in the firm's order of preference, in one query (adapters/orm.py's
        expert_* rows and assignments' indexes).

        Eligible: active, covering every `needed` domain, without the firm on their
        conflict list, not in `skip`, free in one of `preferred` (offered, not booked,
        fewer visits that day than their maximum). Best first by the order
        domain/dispatch.py ranks in (serving `region`, fewest visits between `since` and
        `until`, never or least recently assigned, id by code point), so that the domain,
        ranking what comes back, takes the same experts as over the whole pool.
        """
        if not preferred:
            return []
        skipped = list(skip)
        query = _offers_query(
            self.session.get_bind().dialect.name, len(preferred), len(needed), bool(skipped), limit
        )
        params = _offer_params(enterprise_id, region, needed, preferred, since, until)
        params["skip"] = skipped
        return [
            Offer(row.id, row.slot, bool(row.local), int(row.recent), row.last)
            for row in self._run(query, params)
        ]

    def book_best_offer(
        self,
        *,
        enterprise_id: str,
        region: str,
        needed: frozenset[str],
        preferred: Sequence[str],
        since: date,
        until: date,
        order_id: str,
        at: datetime,
        limit: int = 32,
    ) -> Assignment | None:
        """Dispatch's usual case in one statement (SQLite) or two (PostgreSQL): book for
        the order the expert that `offers` answers first, in their first free preferred
        half-day; the booking, or None when none was made (no one eligible and free,
        each of the best `limit` held by a concurrent dispatch, or the half-day taken
        meanwhile): nothing of the attempt is left then, and the caller takes the
        general way (`offers`, `with_expert_locked`, `free_slots`, `claim_slot`). Its
        trail entry is claim_slot's. `limit` is 32, not the general way's 8: the experts
        that concurrent dispatches hold are the ones this statement's snapshot ranks
        first (their bookings not committed yet), so with 8 in flight the best 8 could
        all be held and the order take the general way (several more statements); the
        statement reads the ranking only as far as the first expert it locks, so the
        larger limit costs nothing when the first is free.

        SQLite lets one writer in at a time (BEGIN IMMEDIATE): the expert's half-day the
        query finds free is still free when the same statement books it (an insert of
        the query's first row). PostgreSQL: the first statement also locks the expert's
        row, skipping those a concurrent dispatch holds (`FOR UPDATE SKIP LOCKED`, as
        `with_expert_locked` without waiting: the first of the best `limit` not held),
        after a savepoint (sent with it: one round trip) that a failed booking rolls
        back to, releasing the lock. The booking is a second statement, so that it reads
        the expert's bookings as they are once the lock is held (a statement reads the
        database as it was when it began): an insert of their first free preferred
        half-day with room left that day, if they may still take the order (active, no
        conflict, the domains: a change committed by the time the lock was had, which
        the first statement's reading did not see). Both inserts are `ON CONFLICT DO
        NOTHING` (the unique (expert, slot) index): a lost race is no error, and no
        savepoint is needed on SQLite."""
        if not preferred:
            return None
        dialect = self.session.get_bind().dialect.name
        params = _offer_params(enterprise_id, region, needed, preferred, since, until)
        if not self._lock_rows:  # one writer at a time: what the query reads stays true meanwhile
            params.update(order_id=order_id, created_at=at)
            rows = self._sqlite_driver_rows(
                _book_best_offer_sqlite(len(preferred), len(needed)), params
            )
            return self._booked(rows[0][0], rows[0][1], order_id, at) if rows else None
        query = _best_offer_query(dialect, len(preferred), len(needed), limit)
        expert_id: str | None = self._after_savepoint(query, params)
        slot: str | None = None
        if expert_id is not None:
            params.update(expert_id=expert_id, order_id=order_id, created_at=at)
            for name in ("region", "since", "until"):  # the booking does not rank
                del params[name]
            booking = _book_first_free(dialect, len(preferred), len(needed))
            booked = self._pipelined([(booking, params)])[0]
            slot = booked[0].slot if booked else None
        if expert_id is None or slot is None:
            self._back_to_savepoint()
            return None
        return self._booked(expert_id, slot, order_id, at)

    def _booked(self, expert_id: str, slot: str, order_id: str, at: datetime) -> Assignment:
        """The booking book_best_offer made, with the trail entry claim_slot records."""
        booked = Assignment(expert_id, slot, parse_slot(slot).day, order_id, at)
        AUDIT.created(self.session, booked, AUDIT.values(booked))
        return booked

    def _pipelined(
        self, statements: Sequence[tuple[Executable, dict[str, Any]]], *, writes: bool = True
    ) -> list[list[Any]]:
        """PostgreSQL: `statements` (each built once: compiled once, `_compiled`) run in
        this order by the driver, several in one psycopg pipeline (one round trip), without
        SQLAlchemy's execution (about a tenth of a millisecond a statement); the rows of
        each (by name, as SQLAlchemy's, with the driver's values: no column these read has
        a result processor on psycopg). Their parameters go through the columns' bind
        processors (JSON), as SQLAlchemy's execution would. `writes`: whether one of them
        may write (out of SQLAlchemy's sight: the transaction counts as written,
        db.driver_of); a plain read keeps it a read. A failure is raised as SQLAlchemy
        would raise it (IntegrityError for a key used before), with the failing statement's
        SQL: the first failure, not the pipeline's abort that follows it (`_first_failure`)."""
        connection = self.session.connection()
        dialect = connection.dialect
        driver: Any = driver_of(connection) if writes else connection.connection.driver_connection
        cursors: list[Any] = []
        sql = ""
        first: list[psycopg.Error] = []
        try:
            with driver.pipeline() if len(statements) > 1 else contextlib.nullcontext():
                for statement, params in statements:
                    compiled = _compiled(statement, dialect)
                    sql = compiled.string
                    values = _driver_values(compiled, params)
                    cursor = driver.cursor()
                    cursors.append(cursor)
                    if not _first_failure(first, cursor.execute, sql, values):
                        break
            if first:
                raise first[0]
            out: list[list[Any]] = []
            for cursor in cursors:
                names = [column.name for column in cursor.description or ()]
                rows = cursor.fetchall() if names else []
                out.append(list(IteratorResult(SimpleResultMetaData(names), iter(rows))))
            return out
        except psycopg.Error as exc:  # a statement timeout is OperationalError, as elsewhere
            failed = first[0] if first else exc
            raise as_dbapi_error(failed, sql, connection) from failed
        finally:
            for cursor in cursors:
                cursor.close()

    def _sqlite_driver_rows(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        """SQLite: `statement` (built once: compiled once, `_compiled`; no expanding
        parameter) run by the driver on this transaction's connection, without
        SQLAlchemy's execution (a third of a millisecond for dispatch's booking, whose
        fifty parameters it would gather on every call); its rows as the driver's tuples
        (no column these read has a result processor on SQLite). As `_pipelined`: the
        parameters go through the columns' bind processors (dates and instants stored as
        SQLAlchemy stores them), the transaction counts as written, and a failure is
        raised as SQLAlchemy would raise it."""
        return sqlite_driver_run(self.session.connection(), statement, params)

    def _after_savepoint(self, query: Select[tuple[Any]], params: dict[str, Any]) -> Any:
        """PostgreSQL: _SAVEPOINT, then `query` (built once, its SQL compiled once: no
        expanding parameter), sent together in one psycopg pipeline (`_pipelined`: one
        round trip instead of two); the first column of its first row, or None.

        The query is planned for each order's parameters (PostgreSQL's `plan_cache_mode`
        left at `auto`), about as long as it runs at 200 experts. Forcing its generic plan
        (stop 30, reverted) saved that, but the generic plan checks every expert who
        offers one of the order's half-days, where the custom one walks the few who
        cover its domains: such an order at 5,000 experts took 74-82 ms instead of 2
        (review 46 F1)."""
        rows = self._pipelined([(_SAVEPOINT, {}), (query, params)])[1]
        return rows[0][0] if rows else None

    def free_slots(
        self,
        expert_id: str,
        preferred: Sequence[str],
        *,
        enterprise_id: str,
        needed: frozenset[str],
    ) -> set[str]:
        """Which of `preferred` the expert offers, has not booked, and still has room for
        on that day, if they may take an order of the firm `enterprise_id` needing the
        `needed` domains at all (active, covering them, no conflict of interest): read
        now, under the expert's lock, a fresh answer (`_free_for_order`)."""
        if not preferred:
            return set()
        params = {
            "expert_id": expert_id,
            "enterprise_id": enterprise_id,
            **{f"d{n}": domain for n, domain in enumerate(sorted(needed))},
            **{f"p{n}": slot for n, slot in enumerate(preferred)},
        }
        query = _free_slots_query(len(preferred), len(needed))
        return set(self._run(query, params).scalars())

    def with_expert_locked(
        self, expert_id: str, *, wait: bool, attempt: Callable[[], T | None]
    ) -> tuple[bool, T | None]:
        """`attempt()` with the expert's row locked, so two dispatches cannot both take their
        last visit of a day: (True, its answer). It runs after a savepoint; when it answers
        None the transaction is rolled back to it, which releases the lock, so a dispatch
        that goes on to another expert holds none it did not book (two dispatches could
        otherwise each hold the expert the other waits for: a deadlock PostgreSQL breaks by
        aborting one). Without `wait`, (False, None) when a concurrent transaction holds
        the row (PostgreSQL `FOR UPDATE SKIP LOCKED`). SQLite's BEGIN IMMEDIATE already
        lets one writer in at a time: no lock, no savepoint."""
        if not self._lock_rows:
            return True, attempt()
        self._run(_SAVEPOINT)
        self._in_savepoint = True  # claim_slot books after this savepoint, not one of its own
        try:
            found = self._run(_lock_expert(wait), {"expert_id": expert_id}).first()
            answer = attempt() if found is not None else None
        except BaseException:
            self._back_to_savepoint(quiet=True)
            raise
        finally:
            self._in_savepoint = False
        if answer is None:
            self._back_to_savepoint()  # also after a failed insert (claim_slot's)
        return found is not None, answer

    def claim_slot(self, assignment: Assignment) -> bool:
        """Book the expert's half-day for the order, unless a concurrent dispatch booked
        it first (the unique (expert, slot) index): then False, and the rest of this
        transaction stands (rolled back to a savepoint: with_expert_locked's, or one of its
        own). One insert built once, no flush of the session; its audit entry is the one a
        flush would have collected. A savepoint that served is left open, not released
        (one round trip less): the commit ends it with the transaction."""
        own = not self._in_savepoint
        if own:
            self._run(_SAVEPOINT)
        try:
            self._run(_insert_into(assignments), _row(assignments, assignment))
        except IntegrityError:
            if own:  # else with_expert_locked rolls back to its savepoint
                self._back_to_savepoint()
            return False
        AUDIT.created(self.session, assignment, AUDIT.values(assignment))
        return True

    def _back_to_savepoint(self, *, quiet: bool = False) -> None:
        """Undo what followed the latest _SAVEPOINT (and release the locks it took, the
        audit heads' too: the seal must read them again, review 35 L1); `quiet`: on the
        way out with an error, which a failure here must not hide."""
        AuditTrail.forget_locked(self.session)
        try:
            if self._lock_rows:
                self._rollback_to_savepoint()
            else:
                self._run(_ROLLBACK_TO_SAVEPOINT)
        except Exception:
            if not quiet:
                raise

    def _rollback_to_savepoint(self) -> None:
        """PostgreSQL: _ROLLBACK_TO_SAVEPOINT sent by libpq itself. Through psycopg's
        cursor, its command status ("ROLLBACK") made psycopg drop every statement the
        connection had prepared (it does so on any rollback: a rolled-back DDL may have
        changed what they refer to); the next five runs of each, dispatch's candidate
        query among them, were parsed and planned again, after every dispatch that lost
        a race. Undoing this transaction's last inserts leaves those statements valid."""
        connection = self.session.connection()
        driver = driver_of(connection)
        sql = _ROLLBACK_TO_SAVEPOINT.text
        try:
            result = driver.pgconn.exec_(sql.encode())
        except psycopg.Error as exc:  # the connection already closed
            raise as_dbapi_error(exc, sql, connection) from exc
        if result.status == psycopg.pq.ExecStatus.COMMAND_OK:
            return
        error: psycopg.Error
        if (
            result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) is None
            or driver.pgconn.status == psycopg.pq.ConnStatus.BAD
        ):  # the connection was lost (cut by the watchdog, the server gone): no SQLSTATE,
            # which psycopg's cursor reports as OperationalError; libpq's own result would
            # make a bare DatabaseError, read as a bug, not as the database unavailable
            message = psycopg.pq.error_message(result, encoding=driver.info.encoding)
            error = psycopg.OperationalError(message or "the connection to the database was lost")
        else:
            error = psycopg.errors.error_from_result(result, encoding=driver.info.encoding)
        raise as_dbapi_error(error, sql, connection) from error

    def release_slot(self, order_id: str) -> None:
        """Free the half-day booked for the order, if any."""
        found = self._one(select(Assignment).where(assignments.c.order_id == order_id))
        if found is not None:
            self.session.delete(found)

    # the outbox
    def add_event(self, event: BookingEvent) -> None:
        """Queue an event for the rules service, in this transaction (the rules client's
        form: the worker delivers it as stored)."""
        payload = event_json(event)
        self.session.add(
            OutboxMessage(
                event_id=event.event_id,
                kind=str(payload["kind"]),
                enterprise_id=event.enterprise_id,
                payload=payload,
                created_at=now(),
            )
        )

    # orders
    def add_order(self, order: Order) -> None:
        """A new order, as taken: its row is written when the unit of work commits
        (`write_orders`), in the state it has then, with its transitions, in statements
        built once (one order: PostgreSQL one, sent with the lock of its trail's chains'
        heads in one round trip; SQLite two; several: one multi-row insert of the orders
        and one of their transitions) and no flush of the session; its trail
        entries are the ones the session's flushes would have collected, its creation as
        taken and then what changed, recorded at the commit or, for a group of orders
        taken together, by `record_orders` in each one's caller's context. Dispatch may
        book for it before its row is written: the booking's foreign key to it is
        checked at the commit (deferred: migration b0009)."""
        self._taken.append((order, AUDIT.values(order)))

    def record_orders(self) -> None:
        """Record now, in the current caller's context (the trail names who called), the
        trail entries of the orders taken since the last call, as they stand now; their
        rows are still written at the commit (`write_orders`)."""
        for order, values in self._taken[self._recorded :]:
            AUDIT.created(self.session, order, values)
            AUDIT.changed(self.session, order, values)
        self._recorded = len(self._taken)

    def holds_orders(self) -> bool:
        """Whether orders `add_order` took wait for the commit."""
        return bool(self._taken)

    def forget_orders(self) -> None:
        """Drop the orders `add_order` took (the unit of work rolled back)."""
        self._taken, self._recorded = [], 0

    def write_orders(self) -> None:
        """Write the orders `add_order` took (the unit of work calls this before its
        commit). A firm's idempotency key used before fails here (IntegrityError)."""
        self.record_orders()
        taken, self._taken, self._recorded = self._taken, [], 0
        if len(taken) > 1:  # a group: one multi-row insert each
            self._insert_rows(orders, [_row(orders, order) for order, _ in taken])
            moves = [_row(order_transitions, m) for order, _ in taken for m in order.history]
            if moves:
                self._insert_rows(order_transitions, moves)
            return
        for order, _values in taken:
            moves = [_row(order_transitions, move) for move in order.history]
            if self._lock_rows and moves:  # PostgreSQL (not SQLite): one statement
                params = {f"o_{name}": value for name, value in _row(orders, order).items()}
                for n, move in enumerate(moves):
                    params.update({f"t{name}_{n}": value for name, value in move.items()})
                self._insert_with_heads(_insert_with_history(len(moves)), params)
            else:
                self._run(_insert_into(orders), _row(orders, order))
                if moves:
                    self._run(_insert_into(order_transitions), moves)

    def _insert_rows(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """`rows` inserted into `table` (one executemany); on SQLite by the driver, its
        statement compiled once (`sqlite_driver_run`: SQLAlchemy's execution gathered
        and processed every row's parameters, about a tenth of a millisecond a group's
        statement, for no answer to read)."""
        if self._lock_rows:  # PostgreSQL: SQLAlchemy's insertmanyvalues
            self._run(_insert_into(table), rows)
        else:
            sqlite_driver_run(self.session.connection(), _insert_columns(table), rows)

    def _insert_with_heads(self, statement: Insert, params: dict[str, Any]) -> None:
        """PostgreSQL: an order's insert (`statement`), and the lock and read of the heads
        of the trail's chains its commit appends to, which the seal would make next, in
        one round trip (audit.AuditTrail.heads_locked)."""
        keys = AUDIT.pending_chains(self.session)
        if not keys:
            self._run(statement, params)
            return
        heads = heads_query(chains_of(AUDIT.log))
        _, rows = self._pipelined([(statement, params), (heads, {"keys": keys})])
        AUDIT.heads_locked(self.session, keys, rows)

    def orders_by_keys(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The ids of the orders already stored under these (enterprise_id,
        idempotency_key) pairs, by pair (one query)."""
        wanted = set(keys)
        if not wanted:
            return {}
        firms, used = sorted({e for e, _ in wanted}), sorted({k for _, k in wanted})
        rows: list[Any]
        if self._lock_rows:
            rows = list(self._run(_orders_by_keys_query(), {"firms": firms, "keys": used}))
        else:  # SQLite: by the driver, one parameter a value (compiled once)
            named = {f"f{n}": firm for n, firm in enumerate(firms)}
            named.update({f"k{n}": key for n, key in enumerate(used)})
            query = _sqlite_orders_by_keys(len(firms), len(used))
            rows = sqlite_driver_run(self.session.connection(), query, named)
        found = {(firm, key): order_id for firm, key, order_id in rows}
        return {pair: order_id for pair, order_id in found.items() if pair in wanted}

    def order(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return self._by_key(Order, "id", order_id, for_update)

    def order_by_key(self, enterprise_id: str, key: str) -> Order | None:
        return self._one(
            select(Order).where(
                orders.c.enterprise_id == enterprise_id, orders.c.idempotency_key == key
            )
        )

    def orders(
        self,
        *,
        enterprise_id: str = "",
        status: str = "",
        after: str = "",
        limit: int = 50,
        expert_id: str = "",
        regions: Sequence[str] = (),
    ) -> Sequence[Order]:
        """Newest first; `expert_id`: only orders dispatched to that expert, `regions`:
        only orders of firms of these 镇街 (empty: any)."""
        query = _equal(
            select(Order), orders, enterprise_id=enterprise_id, status=status, expert_id=expert_id
        )
        if regions:
            query = query.where(orders.c.region.in_(list(regions)))
        if after:
            query = query.where(orders.c.id < after)
        return self.session.scalars(query.order_by(orders.c.id.desc()).limit(limit)).all()

    def orders_of_expert(self, expert_id: str, limit: int = 200) -> Sequence[Order]:
        """The expert's orders, newest first."""
        query = select(Order).where(orders.c.expert_id == expert_id)
        return self.session.scalars(query.order_by(orders.c.id.desc()).limit(limit)).all()

    def visit_of(self, order_id: str) -> Visit | None:
        """The order's recorded visit (an order has at most one), or None."""
        return self._by_key(Visit, "order_id", order_id, False)

    def visit_days(self, order_ids: Iterable[str]) -> dict[str, date]:
        """order id → the day of its recorded visit, for those of `order_ids` visited."""
        wanted = list(set(order_ids))
        if not wanted:
            return {}
        query = select(visits.c.order_id, visits.c.visited_on).where(visits.c.order_id.in_(wanted))
        return {row.order_id: row.visited_on for row in self.session.execute(query)}

    def dispatched_orders_of(self, expert_id: str, after: date) -> Sequence[Order]:
        """The orders dispatched to the expert (not yet visited) for a half-day of a day
        after `after`, oldest first, locked (their bookings by the (expert, day) index):
        the expert's change may take them from the expert (dispatch.reassign_from)."""
        a = assignments.c
        query = (
            select(Order)
            .join(assignments, a.order_id == orders.c.id)
            .where(a.expert_id == expert_id, a.day > after, orders.c.status == "dispatched")
            .order_by(orders.c.id)
        )
        if self._lock_rows:
            query = query.with_for_update(of=orders).execution_options(populate_existing=True)
        return self.session.scalars(query).all()

    def photos_of(self, ticket_id: str, purpose: str) -> list[str]:
        """The ids of a ticket's photos of one purpose (finding | proof), oldest first."""
        query = (
            select(photos.c.id)
            .where(photos.c.ticket_id == ticket_id, photos.c.purpose == purpose)
            .order_by(photos.c.created_at, photos.c.id)
        )
        return list(self.session.scalars(query).all())

    def proof_sent_with(self, ticket_id: str, key: str) -> tuple[str, str] | None:
        """The id and SHA-256 of the ticket's proof stored from a form with this
        idempotency key, if any."""
        query = select(photos.c.id, photos.c.sha256).where(
            photos.c.ticket_id == ticket_id,
            photos.c.purpose == "proof",
            photos.c.idempotency_key == key,
        )
        row = self.session.execute(query.limit(1)).first()
        return None if row is None else (str(row.id), str(row.sha256))

    def submitted_order_ids(self) -> list[str]:
        query = select(orders.c.id).where(orders.c.status == "submitted").order_by(orders.c.id)
        return list(self.session.scalars(query).all())

    # visits and tickets
    def ticket(self, ticket_id: str, *, for_update: bool = False) -> Ticket | None:
        return self._by_key(Ticket, "id", ticket_id, for_update)

    def tickets(
        self,
        *,
        enterprise_id: str = "",
        status: str = "",
        order_id: str = "",
        visit_id: str = "",
        overdue_on: date | None = None,
        due_by: date | None = None,
        after: str = "",
        limit: int = 200,
        regions: Sequence[str] = (),
        by_deadline: bool = False,
        expert_id: str = "",
        for_update: bool = False,
    ) -> Sequence[Ticket]:
        """`regions`: only tickets of orders placed by firms of these 镇街 (empty: any);
        `expert_id`: only tickets that expert found; `visit_id`: only the tickets of that
        visit (by id: in the order of its findings); `due_by`: due on or before that day;
        `by_deadline`: earliest deadline first (so the overdue ones lead), else by id;
        `for_update`: the tickets' rows locked (PostgreSQL `FOR UPDATE`: a row a
        concurrent transaction changes is waited for, then read as it committed it, and
        left out if it no longer matches)."""
        query = _equal(
            select(Ticket),
            tickets,
            enterprise_id=enterprise_id,
            order_id=order_id,
            visit_id=visit_id,
            status=status,
            expert_id=expert_id,
        )
        if regions:
            query = query.join(orders, orders.c.id == tickets.c.order_id).where(
                orders.c.region.in_(list(regions))
            )
        if overdue_on is not None:
            query = query.where(tickets.c.status != "verified", tickets.c.due_on < overdue_on)
        if due_by is not None:
            query = query.where(tickets.c.due_on <= due_by)
        if after:
            query = query.where(tickets.c.id > after)
        order = (tickets.c.due_on, tickets.c.id) if by_deadline else (tickets.c.id,)
        query = query.order_by(*order).limit(limit)
        if for_update and self._lock_rows:
            query = query.with_for_update(of=tickets)
        return self.session.scalars(query.execution_options(populate_existing=True)).all()

    def photo(self, photo_id: str) -> Photo | None:
        return self.session.get(Photo, photo_id)

    def photo_ids_after(self, after: str, limit: int) -> list[str]:
        """Up to `limit` photo ids past `after` ("" for the first), in id order: the
        `scrub-photos` command's batches (keyset paging, no photo's bytes read)."""
        query = select(photos.c.id).where(photos.c.id > after).order_by(photos.c.id).limit(limit)
        return list(self.session.scalars(query).all())

    def add_photo(self, photo: Photo) -> None:
        """Write `photo` now, on this transaction's connection, without the session
        keeping it (nor its bytes) until the commit: a visit writes its photos one at a
        time and lets each go (review 48 N1). Its ticket must be written first (flushed).
        Its audit entry is the one a flush would have collected."""
        self._run(_insert_into(photos), _row(photos, photo))
        AUDIT.created(self.session, photo, AUDIT.values(photo))

    # outbox: each firm's messages in the order written (service_layer/outbox.py)
    def pending_messages(self, limit: int) -> Sequence[OutboxMessage]:
        """Open, unparked messages in the order they were written (due or not)."""
        query = (
            select(OutboxMessage)
            .where(_open_message(), outbox.c.failed_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return self.session.scalars(query).all()

    def due_heads(self, instant: datetime, limit: int) -> list[tuple[str, int]]:
        """(firm, id) of the earliest open message of each firm whose earliest one may be
        sent at `instant` (neither parked, nor waiting out a backoff, nor claimed by a
        delivery in flight), at most `limit`, in the order written. A firm held by such a
        message is not among them, so however many messages such firms hold, the others'
        come through."""
        params = {"now": instant, "limit": limit}
        return [(str(r[0]), int(r[1])) for r in self.session.execute(_due_heads_query(), params)]

    def held_heads(self, failing_since: datetime) -> Sequence[OutboxMessage]:
        """The firms' earliest open messages that hold their firm: parked, or failing
        (refused for now) since `failing_since` or before; in the order written. Read
        like `due_heads`, never through a held firm's later messages."""
        ids = [
            int(r[1]) for r in self.session.execute(_held_heads_query(), {"since": failing_since})
        ]
        if not ids:
            return []
        query = select(OutboxMessage).where(outbox.c.id.in_(ids)).order_by(outbox.c.id)
        return self.session.scalars(query.execution_options(populate_existing=True)).all()

    def firm_head(self, enterprise_id: str) -> int | None:
        """The id of the firm's earliest open message (parked or not); None: none open."""
        found = self.session.scalar(_firm_head_query(), {"firm": enterprise_id})
        return None if found is None else int(found)

    def claim_message(self, message_id: int) -> OutboxMessage | None:
        """The message, locked while this transaction claims it for a delivery; None when
        another transaction holds it (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite's BEGIN
        IMMEDIATE lets one writer in). Read again from the database (another replica may
        have just delivered or claimed it)."""
        query = select(OutboxMessage).where(outbox.c.id == message_id)
        if self._lock_rows:
            query = query.with_for_update(skip_locked=True)
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def locked_message(self, message_id: int) -> OutboxMessage | None:
        """The message, read again and locked (waiting for a transaction holding it: every
        one that does is short), to record what its delivery came to."""
        query = select(OutboxMessage).where(outbox.c.id == message_id)
        if self._lock_rows:
            query = query.with_for_update()
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def outbox_message(self, event_id: str, *, for_update: bool = False) -> OutboxMessage | None:
        """The message of `event_id` (locked, waiting for a delivery holding it, when
        `for_update`)."""
        query = select(OutboxMessage).where(outbox.c.event_id == event_id)
        if for_update and self._lock_rows:
            query = query.with_for_update()
        return self.session.scalars(query.execution_options(populate_existing=True)).first()

    def failed_messages(self) -> Sequence[OutboxMessage]:
        """The parked messages (refused for good, neither requeued nor discarded)."""
        query = (
            select(OutboxMessage)
            .where(_open_message(), outbox.c.failed_at.is_not(None))
            .order_by(outbox.c.id)
        )
        return self.session.scalars(query).all()

    def claimed_messages(self) -> Sequence[OutboxMessage]:
        """The open messages claimed by a delivery (`claimed_until` set: in flight, or
        its claim run out), in the order written."""
        query = (
            select(OutboxMessage)
            .where(_open_message(), outbox.c.claimed_until.is_not(None))
            .order_by(outbox.c.id)
        )
        return self.session.scalars(query).all()

    def open_counts(self, firms: Iterable[str]) -> dict[str, int]:
        """How many open messages (parked or not) each of `firms` has."""
        wanted = sorted(set(firms))
        if not wanted:
            return {}
        query = (
            select(outbox.c.enterprise_id, func.count())
            .where(_open_message(), outbox.c.enterprise_id.in_(wanted))
            .group_by(outbox.c.enterprise_id)
        )
        return {str(r[0]): int(r[1]) for r in self.session.execute(query)}

    def delivered_since(self, instant: datetime) -> Sequence[OutboxMessage]:
        query = select(OutboxMessage).where(outbox.c.delivered_at >= instant).order_by(outbox.c.id)
        return self.session.scalars(query).all()

    def undelivered_count(self) -> int:
        """Open messages not parked: those the worker still sends (some maybe held
        behind a parked one of their firm)."""
        query = (
            select(func.count())
            .select_from(outbox)
            .where(_open_message(), outbox.c.failed_at.is_(None))
        )
        return int(self.session.scalar(query) or 0)

    def record_outbox_decision(self, message: OutboxMessage, before: dict[str, Any]) -> None:
        """Put an operator's change of `message` (requeued, discarded) in the audit
        trail, on its firm's chain: its decision fields `before` (`outbox_decision_values`
        taken then) and now."""
        AUDIT.changed(self.session, message, before, spec=OUTBOX_DECISIONS)

    @staticmethod
    def outbox_decision_values(message: OutboxMessage) -> dict[str, Any]:
        return AUDIT.values(message, spec=OUTBOX_DECISIONS)

    # statistics
    def orders_between(
        self, start: datetime, end: datetime, regions: Sequence[str] = ()
    ) -> Sequence[Order]:
        """Orders created in [start, end) of firms in `regions` (empty: every region)."""
        query = select(Order).where(orders.c.created_at >= start, orders.c.created_at < end)
        if regions:
            query = query.where(orders.c.region.in_(list(regions)))
        return self.session.scalars(query).all()

    def overdue_by_region(self, today: date, regions: Sequence[str] = ()) -> dict[str, int]:
        """Tickets past their deadline and not verified on `today`, counted by the region of
        their order (`regions`: only those; empty: every region)."""
        query = (
            select(orders.c.region, func.count())
            .select_from(tickets.join(orders, tickets.c.order_id == orders.c.id))
            .where(tickets.c.status != "verified", tickets.c.due_on < today)
            .group_by(orders.c.region)
        )
        if regions:
            query = query.where(orders.c.region.in_(list(regions)))
        return {row[0]: int(row[1]) for row in self.session.execute(query)}

    def overdue_tickets(
        self, today: date, regions: Sequence[str] = (), limit: int = 500
    ) -> Sequence[Ticket]:
        """Tickets past their deadline and not verified on `today`, of orders in `regions`
        (empty: every region), longest overdue first."""
        query = (
            select(Ticket)
            .join(orders, tickets.c.order_id == orders.c.id)
            .where(tickets.c.status != "verified", tickets.c.due_on < today)
        )
        if regions:
            query = query.where(orders.c.region.in_(list(regions)))
        return self.session.scalars(
            query.order_by(tickets.c.due_on, tickets.c.id).limit(limit)
        ).all()

    def tickets_of_orders(self, order_ids: Sequence[str]) -> Sequence[Ticket]:
        if not order_ids:
            return []
        return self.session.scalars(
            select(Ticket).where(tickets.c.order_id.in_(list(order_ids)))
        ).all()


def _covers_without_conflict(
    expert_id: ColumnElement[str], needed: int
) -> list[ColumnElement[bool]]:
    """The expert covers every needed domain (:d0…) and has no conflict of interest with
    the firm (:enterprise_id): one probe each (it stops at the row; a count read them
    all)."""
    d, c = expert_domains.c, expert_conflicts.c
    conditions: list[ColumnElement[bool]] = [
        exists().where(
            d.expert_id == expert_id, d.domain == bindparam(f"d{n}", type_=d.domain.type)
        )
        for n in range(needed)
    ]
    conditions.append(
        ~exists().where(c.expert_id == expert_id, c.enterprise_id == bindparam("enterprise_id"))
    )
    return conditions


def _free_for_order(preferred: int, needed: int) -> Select[tuple[str]]:
    """Which of the `preferred` half-days :p0… the expert :expert_id is free in for the
    order, as the database holds them now: `_free_slots`, and the expert may take the
    order at all (active, every needed domain :d0…, no conflict with :enterprise_id).
    Run under the expert's lock, in a statement of its own (it reads what was committed
    before it began): an expert deactivated, or a conflict declared, after the offers
    were read (by a change that held the expert's row meanwhile: experts.upsert_expert)
    is seen, and not booked (review 52)."""
    e = experts.c
    mine = bindparam("expert_id", type_=e.id.type)
    room = select(e.max_visits_per_day).where(e.id == mine, e.active.is_(True))
    free = _free_slots(mine, room.scalar_subquery(), preferred)
    return free.where(*_covers_without_conflict(mine, needed))


def _free_slots(
    expert_id: ColumnElement[str], room: ColumnElement[int], preferred: int
) -> Select[tuple[str]]:
    """Which of the `preferred` half-days :p0… the expert offers, has not booked, and has
    fewer than `room` visits on (one parameter each: a list parameter would be expanded
    into the SQL on every execution)."""
    s, a = expert_slots.c, assignments.c
    visits_that_day = (
        select(func.count()).where(a.expert_id == s.expert_id, a.day == s.day).scalar_subquery()
    )
    return select(s.slot).where(
        s.expert_id == expert_id,
        s.slot.in_([bindparam(f"p{n}", type_=expert_slots.c.slot.type) for n in range(preferred)]),
        ~exists().where(a.expert_id == s.expert_id, a.slot == s.slot),
        visits_that_day < room,
    )


# Built once per shape, run with parameters: building the statement cost more than the
# database's answer.
# dispatch's savepoints (with_expert_locked, claim_slot): plain SQL, not the session's
# nested transactions, so that one that served is not released (a round trip) but ends
# with the transaction; the trail's entries of a claim are collected only once it held
_SAVEPOINT = text("SAVEPOINT dispatch_claim")
_ROLLBACK_TO_SAVEPOINT = text("ROLLBACK TO SAVEPOINT dispatch_claim")


@functools.cache
def _insert_into(table: Table) -> Insert:
    """An insert of every column of `table` but a serial id (the rows come as parameters)."""
    return insert(table)


@functools.lru_cache(maxsize=32)
def _insert_with_history(moves: int) -> Insert:
    """PostgreSQL: an order's row (:o_<column>) and its `moves` transitions (:t<column>_<n>)
    in one statement, the order's insert a data-modifying WITH (the transitions' foreign
    key sees it at the statement's end)."""
    columns = {name: bindparam(f"o_{name}", type_=orders.c[name].type) for name in _columns(orders)}
    order = insert(orders).values(columns).cte("taken")
    names = _columns(order_transitions)
    rows = rows_select(order_transitions, names, moves, prefix="t")
    return insert(order_transitions).from_select(list(names), rows).add_cte(order)


@functools.cache
@functools.cache
def _insert_columns(table: Table) -> Insert:
    """`_insert_into`'s insert with its columns named (`_columns`: all but a serial id),
    so that it can be compiled once for the driver (`sqlite_driver_run`)."""
    return insert(table).values(
        {name: bindparam(name, type_=table.c[name].type) for name in _columns(table)}
    )


def _columns(table: Table) -> tuple[str, ...]:
    """The columns a record's row gives values for: all but a serial id."""
    return tuple(c.name for c in table.c if not (c.primary_key and c.autoincrement is True))


def _row(table: Table, record: object) -> dict[str, Any]:
    """The row of `record` (a mapped dataclass) for `table`'s insert."""
    return {name: getattr(record, name) for name in _columns(table)}


@functools.cache
def _by_key_query(record: type, column: str, for_update: bool) -> Select[Any]:
    """BookingRegister._by_key's statement (:key); `for_update`: locked, and read as the
    row is now, not as this session saw it earlier."""
    table: Any = inspect(record).local_table
    query: Select[Any] = select(record).where(table.c[column] == bindparam("key"))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return query


@functools.cache
def _firm_card_query() -> Select[Any]:
    """BookingRegister.firm_card's statement (:key)."""
    return select(firm_cards).where(firm_cards.c.enterprise_id == bindparam("key"))


@functools.cache
def _firm_cards_query() -> Select[Any]:
    """BookingRegister.firm_cards_of's statement (:keys, a list): built once, not per
    call (building and keying a statement cost more than SQLite's answer)."""
    return select(firm_cards).where(
        firm_cards.c.enterprise_id.in_(bindparam("keys", expanding=True))
    )


@functools.cache
def _orders_by_keys_query() -> Select[Any]:
    """BookingRegister.orders_by_keys' statement (:firms, :keys, lists), built once."""
    o = orders.c
    return select(o.enterprise_id, o.idempotency_key, o.id).where(
        o.enterprise_id.in_(bindparam("firms", expanding=True)),
        o.idempotency_key.in_(bindparam("keys", expanding=True)),
    )


@functools.lru_cache(maxsize=64)
def _sqlite_firm_cards(count: int) -> Select[Any]:
    """`_firm_cards_query` for `count` firms (:k0…), one parameter each, so that the
    driver gets it compiled once (`sqlite_driver_run`)."""
    wanted = [bindparam(f"k{n}", type_=firm_cards.c.enterprise_id.type) for n in range(count)]
    return select(firm_cards).where(firm_cards.c.enterprise_id.in_(wanted))


@functools.cache
def _results_of(table: Table, dialect: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The names of `table`'s columns and, for each, how SQLAlchemy turns what the driver
    reads into its value (its type's result processor for `dialect`; None: as read)."""
    columns = tuple(table.c)
    turns = tuple(c.type._cached_result_processor(dialect, None) for c in columns)
    return tuple(c.name for c in columns), turns


@functools.lru_cache(maxsize=256)
def _sqlite_orders_by_keys(firms: int, keys: int) -> Select[Any]:
    """`_orders_by_keys_query` for `firms` firms (:f0…) and `keys` keys (:k0…), one
    parameter each, so that the driver gets it compiled once (`sqlite_driver_run`: a
    list parameter is expanded into the SQL on every execution)."""
    o = orders.c
    return select(o.enterprise_id, o.idempotency_key, o.id).where(
        o.enterprise_id.in_([bindparam(f"f{n}", type_=o.enterprise_id.type) for n in range(firms)]),
        o.idempotency_key.in_(
            [bindparam(f"k{n}", type_=o.idempotency_key.type) for n in range(keys)]
        ),
    )


@functools.cache
def _lock_expert(wait: bool) -> Select[tuple[str]]:
    """BookingRegister.with_expert_locked's lock of the expert's row (:expert_id); without
    `wait`, SKIP LOCKED."""
    query = select(experts.c.id).where(experts.c.id == bindparam("expert_id"))
    return query.with_for_update(skip_locked=not wait)


@functools.lru_cache(maxsize=64)
def _free_slots_query(preferred: int, needed: int) -> Select[tuple[str]]:
    """BookingRegister.free_slots' statement for `preferred` half-days and `needed`
    domains (`_free_for_order`)."""
    return _free_for_order(preferred, needed)


@functools.lru_cache(maxsize=256)
def _offers_query(dialect: str, preferred: int, needed: int, skip: bool, limit: int) -> Select[Any]:
    """BookingRegister.offers' statement for orders of this shape (:p0… the preferred
    half-days in order, :d0… the needed domains, :skip, :region, :enterprise_id, :since,
    :until).

    Two steps, so that the costly check (is the expert free in one of the half-days: a
    probe of their offered half-days, their bookings and their visits that day, for each
    half-day) runs on as few experts as it takes: the inner query ranks every expert who
    could take the order at all (active, covering the domains, no conflict: one probe
    each) by the order's ranking; the outer one walks that ranking and keeps the first
    `limit` who are free, and only for those picks the half-day. The inner query's OFFSET
    (PostgreSQL: its parameter; SQLite: the LIMIT -1 it brings) keeps the database from
    merging the two (PostgreSQL would push the free check under the sort, SQLite
    flatten the subquery), which would check every expert again."""
    e, a = experts.c, assignments.c
    recent = (
        select(func.count())
        .where(a.expert_id == e.id, a.day >= bindparam("since"), a.day <= bindparam("until"))
        .scalar_subquery()
        .label("recent")
    )
    # the newest booking's instant: one step down the (expert_id, created_at) index
    # (SQLite's max() would read all of the expert's bookings)
    last = (
        select(a.created_at)
        .where(a.expert_id == e.id)
        .order_by(a.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    local = (
        exists()
        .where(expert_regions.c.expert_id == e.id, expert_regions.c.region == bindparam("region"))
        .label("local")
    )
    conditions: list[ColumnElement[bool]] = [e.active.is_(True)]
    if skip:
        conditions.append(e.id.not_in(bindparam("skip", expanding=True)))
    conditions.extend(_covers_without_conflict(e.id, needed))
    # Python compares ids by code point: SQLite's default collation does; PostgreSQL's
    # database collation may not, "C" does
    by_id = e.id if dialect == "sqlite" else e.id.collate("C")
    last_at = last.label("last")
    ranked = (
        select(e.id, e.max_visits_per_day, local, recent, last_at)
        .where(*conditions)
        # by the labels: each ranking subquery is computed once per expert
        .order_by(local.desc(), recent, last_at.asc().nulls_first(), by_id)
        .offset(0)
        .subquery("ranked")
    )
    r = ranked.c
    free = _free_slots(r.id, r.max_visits_per_day, preferred)
    preference = case(
        *((expert_slots.c.slot == bindparam(f"p{n}"), n) for n in range(preferred)),
        else_=preferred,
    )
    first_free = free.order_by(preference).limit(1).scalar_subquery().label("slot")
    query = select(r.id, first_free, r.local, r.recent, r.last).where(free.exists())
    if dialect != "sqlite":
        # the inner query's order, which PostgreSQL keeps without sorting again; SQLite
        # would sort again (checking every expert first): it reads its co-routine, the
        # inner query, in that query's order
        query = query.order_by(
            r.local.desc(), r.recent, r.last.asc().nulls_first(), r.id.collate("C")
        )
    return query.limit(limit)


def _offer_params(
    enterprise_id: str,
    region: str,
    needed: frozenset[str],
    preferred: Sequence[str],
    since: date,
    until: date,
) -> dict[str, Any]:
    """The parameters of the offers query (`_offers_query`, `_best_offer_query` and
    SQLite's booking of its first row): needed domains as d0…, preferred half-days p0…"""
    return {
        "enterprise_id": enterprise_id,
        "region": region,
        "since": since,
        "until": until,
        **{f"d{n}": domain for n, domain in enumerate(sorted(needed))},
        **{f"p{n}": slot for n, slot in enumerate(preferred)},
    }


# statements sent by the driver: compiled once, their parameters as SQLAlchemy's
# execution would process them (services/common/db.py)
_compiled = compiled_once
_driver_values = driver_values


@functools.lru_cache(maxsize=256)
def _book_best_offer_sqlite(preferred: int, needed: int) -> Insert:
    """BookingRegister.book_best_offer on SQLite: the first row of `offers` (its
    parameters, nobody skipped) booked for :order_id at :created_at, its half-day's day
    from the expert's offered half-days; returns the expert and half-day booked. The
    LIMIT inside keeps SQLite from flattening the offers into the join."""
    best = _offers_query("sqlite", preferred, needed, False, 1).subquery("best")
    s, a = expert_slots.c, assignments.c
    first = select(
        best.c.id,
        best.c.slot,
        s.day,
        bindparam("order_id", type_=a.order_id.type),
        bindparam("created_at", type_=a.created_at.type),
    ).select_from(best.join(expert_slots, (s.expert_id == best.c.id) & (s.slot == best.c.slot)))
    return (
        sqlite_insert(assignments)
        .from_select(["expert_id", "slot", "day", "order_id", "created_at"], first)
        .on_conflict_do_nothing()
        .returning(a.expert_id, a.slot)
    )


@functools.lru_cache(maxsize=256)
def _best_offer_query(dialect: str, preferred: int, needed: int, limit: int) -> Select[tuple[str]]:
    """BookingRegister.book_best_offer's first statement on PostgreSQL: the first of the
    best `limit` experts `offers` answers (its parameters, nobody skipped) whose row no
    concurrent transaction holds, locked (FOR UPDATE OF that row SKIP LOCKED, walking
    the offers in their order: PostgreSQL locks as it reads the sorted rows and stops
    at the first it could lock); its id."""
    offers = _offers_query(dialect, preferred, needed, False, limit).subquery("offers")
    held = experts.alias("held")
    by_id = offers.c.id.collate("C")
    return (
        select(held.c.id)
        .select_from(offers.join(held, held.c.id == offers.c.id))
        .order_by(offers.c.local.desc(), offers.c.recent, offers.c.last.asc().nulls_first(), by_id)
        .limit(1)
        .with_for_update(of=held, skip_locked=True)
    )


@functools.lru_cache(maxsize=64)
def _book_first_free(dialect: str, preferred: int, needed: int) -> Insert:
    """BookingRegister.book_best_offer's booking: the expert's (:expert_id) first free
    half-day of :p0… (in that order, with room left that day, the expert still free to
    take the order: `_free_for_order`, with :d0… and :enterprise_id) booked for :order_id
    at :created_at, unless the unique (expert, slot) index already holds it (no error);
    returns the half-day booked (no row: none)."""
    s = expert_slots.c
    free = _free_for_order(preferred, needed)
    a = assignments.c
    preference = case(
        *((s.slot == bindparam(f"p{n}"), n) for n in range(preferred)), else_=preferred
    )
    first = (
        free.with_only_columns(
            s.expert_id,
            s.slot,
            s.day,
            bindparam("order_id", type_=a.order_id.type),
            bindparam("created_at", type_=a.created_at.type),
        )
        .order_by(preference)
        .limit(1)
    )
    insert_into = sqlite_insert if dialect == "sqlite" else postgresql_insert
    return (
        insert_into(assignments)
        .from_select(["expert_id", "slot", "day", "order_id", "created_at"], first)
        .on_conflict_do_nothing()
        .returning(a.slot)
    )


def _equal(query: Select[Any], table: Table, **values: str) -> Select[Any]:
    """`query` narrowed to rows whose columns equal the given values ("" = any)."""
    for name, value in values.items():
        if value:
            query = query.where(table.c[name] == value)
    return query


def _first_failure(first: list[psycopg.Error], execute: Any, *args: Any) -> bool:
    """`execute(*args)` inside a psycopg pipeline; False when it failed, its error kept in
    `first` (then the caller sends nothing more). An error raised while the pipeline
    closes with one propagating made psycopg log a warning that names the connection
    (review 35 F1), and the pipeline's abort hid the statement's own error (a key used
    before would read as a connection failure)."""
    try:
        execute(*args)
    except psycopg.Error as exc:
        first.append(exc)
        return False
    return True


# ---------------------------------------------------------------- the outbox's reads


def _open_message(table: Any = outbox) -> ColumnElement[bool]:
    """Neither delivered nor discarded: `ix_outbox_open`'s condition (orm.OUTBOX_OPEN),
    term for term, so that both databases may read that partial index."""
    return and_(table.c.delivered_at.is_(None), table.c.discarded_at.is_(None))


@functools.cache
def _firm_head_query() -> Select[int]:
    """The id of firm :firm's earliest open message: one seek in ix_outbox_open."""
    return select(func.min(outbox.c.id)).where(
        _open_message(), outbox.c.enterprise_id == bindparam("firm", type_=String)
    )


class _ReadThroughOpenIndex(Alias):
    """`outbox` under another name, read through ix_outbox_open: on SQLite `INDEXED BY`
    says so (without statistics, no ANALYZE having been run, the usual case, its planner
    takes `delivered_at IS NULL` on ix_outbox_pending for the better seek and reads every
    open message for each firm: review 60 F7's cost, squared); other databases as they
    choose (PostgreSQL seeks ix_outbox_open for `ORDER BY … LIMIT 1`). Should the index
    be gone, SQLite refuses the statement rather than scan."""

    __visit_name__ = "read_through_open_index"
    inherit_cache = True

    @classmethod
    def of_outbox(cls, name: str) -> Any:
        return cls._construct(outbox, name=name)


@compiles(_ReadThroughOpenIndex)
def _as_alias(element: Any, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_alias(element, **kw))


@compiles(_ReadThroughOpenIndex, "sqlite")
def _indexed_by(element: Any, compiler: Any, **kw: Any) -> str:
    rendered = str(compiler.visit_alias(element, **kw))
    if kw.get("asfrom") and not kw.get("ashint"):
        rendered += " INDEXED BY ix_outbox_open"
    return rendered


def _heads() -> Any:
    """Each firm with an open message, and its head (its earliest open one), found by
    skipping through ix_outbox_open from firm to firm: one seek for the next firm, one
    for its head, whatever waits behind it (review 60 F7: grouping every open message
    read a held firm's whole backlog, once a second). Portable to SQLite and PostgreSQL
    (a recursive common table expression of scalar subqueries; no LATERAL)."""
    walk = _ReadThroughOpenIndex.of_outbox("walk")
    head_row = _ReadThroughOpenIndex.of_outbox("head_row")
    one = literal_column("1", Integer)  # LIMIT 1 as such, for the planners (not a bind)

    def next_firm(after: Any) -> Any:
        """The first firm after `after` (None: the first one, `>= ''` so that it is a
        seek too, and every credit code, even an empty one, is at or after it)."""
        past = walk.c.enterprise_id >= "" if after is None else walk.c.enterprise_id > after
        return (
            select(walk.c.enterprise_id)
            .where(_open_message(walk), past)
            .order_by(walk.c.enterprise_id)
            .limit(one)
            .scalar_subquery()
        )

    firms = select(next_firm(None).label("firm"))
    cte = firms.cte("firms", recursive=True)
    cte = cte.union_all(select(next_firm(cte.c.firm)).where(cte.c.firm.is_not(None)))
    head = (
        select(head_row.c.id)
        .where(_open_message(head_row), head_row.c.enterprise_id == cte.c.firm)
        .order_by(head_row.c.id)
        .limit(one)
        .scalar_subquery()
    )
    return (
        select(cte.c.firm.label("enterprise_id"), head.label("head"))
        .where(cte.c.firm.is_not(None))
        .subquery("heads")
    )


def _heads_where(*conditions: ColumnElement[bool]) -> Select[str, int]:
    """(firm, head) of the firms whose head meets `conditions` (on the head's own row,
    `outbox`), in the order written. The head's row is looked up by its id in a scalar
    subquery, once per firm, never joined: a join let SQLite build a Bloom filter over
    the whole table first, every pass."""
    heads = _heads()
    kept = select(outbox.c.id).where(outbox.c.id == heads.c.head, *conditions).scalar_subquery()
    return (
        select(heads.c.enterprise_id, heads.c.head).where(kept.is_not(None)).order_by(heads.c.head)
    )


@functools.cache
def _due_heads_query() -> Select[str, int]:
    """Each firm's head (`_heads`), kept when it is neither parked nor due after :now nor
    claimed past it; at most :limit, in the order written."""
    at = bindparam("now", type_=DateTime(timezone=True))
    return _heads_where(
        outbox.c.failed_at.is_(None),
        outbox.c.next_attempt_at.is_(None) | (outbox.c.next_attempt_at <= at),
        outbox.c.claimed_until.is_(None) | (outbox.c.claimed_until <= at),
    ).limit(bindparam("limit", type_=Integer))


@functools.cache
def _held_heads_query() -> Select[str, int]:
    """The heads (`_heads`) that hold their firm: parked, or failing since :since or
    before; in the order written."""
    since = bindparam("since", type_=DateTime(timezone=True))
    return _heads_where(
        outbox.c.failed_at.is_not(None)
        | ((outbox.c.last_error != "") & (outbox.c.failing_since <= since))
    )


def due_heads_query() -> Select[str, int]:
    """`BookingRegister.due_heads`'s statement (parameters :now, :limit), for tests that
    read its plan."""
    return _due_heads_query()


def firm_head_query() -> Select[int]:
    """`BookingRegister.firm_head`'s statement (parameter :firm), for tests of its plan."""
    return _firm_head_query()
