"""The booking register's unit of work."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.booking.adapters.orm import AUDIT, start_mappers
from services.booking.adapters.repository import BookingRegister
from services.common.unit_of_work import BaseUnitOfWork


class UnitOfWork(BaseUnitOfWork[BookingRegister]):
    def __init__(self, engine: Engine) -> None:
        start_mappers()
        super().__init__(engine, AUDIT)

    def make_register(self, session: Session) -> BookingRegister:
        return BookingRegister(session, lock_rows=self.lock_rows)

    def __enter__(self) -> UnitOfWork:
        super().__enter__()
        return self
