"""The unit of work as the use cases see them (a port; no SQLAlchemy here).

`with uow:` opens a transaction; `uow.commit()` makes it durable; leaving the block
without committing rolls it back. A use case commits once per transaction it opens (some
open several, each with one commit: cancelling an order, then dispatching the orders that
waited for its slot). A unique key that
a concurrent transaction committed first leaves the block as `Conflict`
(services/common/errors.py). `register` is the repository (adapters/repository.py): its
methods say what the use cases may read and write, and it owns every SQLAlchemy detail.
adapters/unit_of_work.py implements this port on SQLAlchemy; the unit tests use an
in-memory fake with the same methods (tests/unit/booking/fakes.py).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from services.booking.adapters.repository import BookingRegister


class UnitOfWork(Protocol):
    @property
    def register(self) -> BookingRegister: ...

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def flush(self) -> None: ...
    def unavailable(self, exc: BaseException) -> bool:
        """Whether `exc` says the database cannot take work now (trying the same work
        again at once would only wait again)."""
        ...

    def lost_race(self, exc: BaseException) -> bool:
        """Whether `exc` is a deadlock or serialization failure: the transaction lost to
        a concurrent one and was rolled back."""
        ...
