"""The unit of work both services use: one session, one transaction, committed once."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.common.db import (
    database_unavailable,
    is_sqlite,
    lost_a_race,
    session_factory,
    wrote,
)
from services.common.errors import Conflict, DomainError

R = TypeVar("R")


class SessionRecorder(Protocol):
    """Listens to a session factory's flushes and commits (the audit trail, the feed)."""

    def install(self, factory: sessionmaker[Session]) -> None: ...

    def holds(self, session: Session) -> bool:
        """Whether it keeps something of `session`'s to write at the commit."""
        ...


# One session factory per engine and set of recorders, their listeners installed once, kept on
# the engine (it lives as long as the engine does). A factory per unit of work left three
# listeners a call in SQLAlchemy's global event registry: the soak saw RSS grow by about
# 1 MB per thousand calls.
_FACTORIES = "_unit_of_work_factories"
_FACTORIES_LOCK = threading.Lock()
_FLUSHES = "unit_of_work_flushes"


def _count_flush(session: Session, _context: object) -> None:
    session.info[_FLUSHES] = session.info.get(_FLUSHES, 0) + 1


def _factory_for(engine: Engine, recorders: tuple[SessionRecorder, ...]) -> sessionmaker[Session]:
    key = tuple(id(r) for r in recorders)
    with _FACTORIES_LOCK:
        known: dict[tuple[int, ...], sessionmaker[Session]] | None = getattr(
            engine, _FACTORIES, None
        )
        if known is None:
            known = {}
            setattr(engine, _FACTORIES, known)
        factory = known.get(key)
        if factory is None:
            factory = session_factory(engine)
            event.listen(factory, "after_flush", _count_flush)  # for `writes`
            for recorder in recorders:  # e.g. every committed change leaves a chained entry
                recorder.install(factory)
            known[key] = factory
        return factory


class BaseUnitOfWork(Generic[R]):
    """`with uow:` opens a transaction; leaving without commit() rolls it back.

    The unit of work owns the session: the service layer sees `register` (the
    repository), `commit`, `rollback` and `flush`, never SQLAlchemy. A unique key that a
    concurrent transaction committed first leaves the block as `Conflict` (a domain
    error; `retry_on_conflict` runs the work again). Subclasses say which repository to
    build (`make_register`) and map their tables.
    """

    def __init__(self, engine: Engine, *recorders: SessionRecorder) -> None:
        self.engine = engine
        self._factory = _factory_for(engine, recorders)
        self._recorders = recorders
        self.lock_rows = not is_sqlite(engine)  # SQLite's BEGIN IMMEDIATE locks the file
        self.session: Session
        self.register: R

    def make_register(self, session: Session) -> R:
        raise NotImplementedError

    def __enter__(self) -> BaseUnitOfWork[R]:
        self.session = self._factory()
        self.register = self.make_register(self.session)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if (error is None or isinstance(error, DomainError)) and self._wrote_nothing():
                # Nothing to discard: COMMIT ends the transaction alike, and psycopg keeps
                # its prepared statements, which it drops at every ROLLBACK (one more round
                # trip and new PREPAREs for the next calls on this connection).
                self.session.commit()
        finally:
            self.session.expunge_all()  # results stay readable after the session ends
            self.session.rollback()  # anything not committed is discarded
            self.session.close()
        if isinstance(error, IntegrityError):
            raise Conflict("a concurrent change got there first; try again") from error

    def commit(self) -> None:
        self.session.commit()

    def _wrote_nothing(self) -> bool:
        """PostgreSQL only: this transaction ran only SELECTs (db.wrote), holds no ORM
        change to flush and no recorder keeps anything of it (a trail entry of a Core
        write to come); any doubt (SQLite, a raw driver connection taken, a transaction a
        failed flush or a lost connection left to roll back) says no."""
        session = self.session
        if self.engine.dialect.name != "postgresql" or not session.in_transaction():
            return False
        if not session.is_active:
            return False
        if self.writes() or any(r.holds(session) for r in self._recorders):
            return False
        return not wrote(session.connection())

    def writes(self) -> int:
        """A count that grows whenever this transaction writes or holds something to write
        (flushes that wrote, changes not yet flushed): unchanged across some work, that
        work wrote nothing."""
        session = self.session
        pending = len(session.new) + len(session.dirty) + len(session.deleted)
        return int(session.info.get(_FLUSHES, 0)) + pending

    @staticmethod
    def unavailable(exc: BaseException) -> bool:
        """Whether `exc` says the database cannot take work now (db.database_unavailable):
        trying the same work again at once would only wait again."""
        return database_unavailable(exc)

    @staticmethod
    def lost_race(exc: BaseException) -> bool:
        """Whether `exc` is a deadlock or serialization failure (db.lost_a_race): the
        transaction lost to a concurrent one and was rolled back."""
        return lost_a_race(exc)

    def flush(self) -> None:
        """Write what was added so far (inside the transaction): rows that later reads or
        inserts of this unit of work depend on."""
        self.session.flush()

    def rollback(self) -> None:
        self.session.rollback()
