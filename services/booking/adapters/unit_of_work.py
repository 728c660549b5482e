"""The booking register's unit of work on SQLAlchemy (the service layer's UnitOfWork).

It owns the session and the transaction; the service layer sees the repository
(`register`), `commit`, `rollback` and `flush`, and Conflict for a lost race. The commit
writes the orders the repository took (`add_order`) first: a flush does not (they are
complete only by the commit), so this transaction's reads do not see them; a rollback
forgets them.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.booking.adapters.expert_offers import EXPERT_OFFERS
from services.booking.adapters.orm import AUDIT, start_mappers
from services.booking.adapters.repository import BookingRegister
from services.common.unit_of_work import BaseUnitOfWork


class SqlUnitOfWork(BaseUnitOfWork[BookingRegister]):
    def __init__(self, engine: Engine) -> None:
        start_mappers()
        # every committed change leaves a chained entry; every expert written rewrites
        # the rows dispatch queries (adapters/expert_offers.py)
        super().__init__(engine, AUDIT, EXPERT_OFFERS)

    def make_register(self, session: Session) -> BookingRegister:
        return BookingRegister(session, lock_rows=self.lock_rows)

    def __enter__(self) -> SqlUnitOfWork:
        super().__enter__()
        return self

    def commit(self) -> None:
        self.register.write_orders()  # new orders as they stand now, before the trail is sealed
        super().commit()

    def _wrote_nothing(self) -> bool:
        return not self.register.holds_orders() and super()._wrote_nothing()

    def rollback(self) -> None:
        """Discard the transaction, the orders `add_order` took included."""
        self.register.forget_orders()
        super().rollback()
