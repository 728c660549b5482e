"""The unit of work both services use: one session, one transaction, committed once."""

from __future__ import annotations

from types import TracebackType
from typing import Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common.audit import AuditTrail
from services.common.db import is_sqlite, session_factory

R = TypeVar("R")


class BaseUnitOfWork(Generic[R]):
    """`with uow:` opens a transaction; leaving without commit() rolls it back.

    Subclasses say which repository to build (`make_register`) and map their tables.
    """

    def __init__(self, engine: Engine, audit: AuditTrail | None = None) -> None:
        self.engine = engine
        self._factory: sessionmaker[Session] = session_factory(engine)
        if audit is not None:
            audit.install(self._factory)  # every committed change leaves a chained entry
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
        self.session.expunge_all()  # results stay readable after the session ends
        self.session.rollback()  # anything not committed is discarded
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
