"""The rules register's unit of work."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.common.unit_of_work import BaseUnitOfWork
from services.rules.adapters.bulk_reevaluation import BatchRegister
from services.rules.adapters.feed import RECORDER
from services.rules.adapters.orm import AUDIT, start_mappers
from services.rules.adapters.repository import Register


class UnitOfWork(BaseUnitOfWork[Register]):
    def __init__(self, engine: Engine) -> None:
        start_mappers()
        super().__init__(engine, AUDIT, RECORDER)  # the audit trail and the change feed

    def make_register(self, session: Session) -> Register:
        return Register(session, lock_rows=self.lock_rows)

    def __enter__(self) -> UnitOfWork:
        super().__enter__()
        # the re-evaluation's batch reads and multi-row writes, in the same transaction
        self.batch = BatchRegister(self.session, lock_rows=self.lock_rows)
        return self
