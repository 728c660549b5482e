"""The unit of work: one session, one transaction; handlers call commit() exactly once."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common.db import is_sqlite, session_factory
from services.rules.adapters.orm import start_mappers
from services.rules.adapters.repository import Register


class UnitOfWork:
    """`with uow:` opens a transaction; leaving without commit() rolls it back."""

    def __init__(self, engine: Engine) -> None:
        start_mappers()
        self.engine = engine
        self._factory: sessionmaker[Session] = session_factory(engine)
        self._lock_rows = not is_sqlite(engine)  # SQLite's BEGIN IMMEDIATE locks the file
        self.session: Session
        self.register: Register

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        self.register = Register(self.session, lock_rows=self._lock_rows)
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
