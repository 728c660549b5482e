"""The staff part of the booking register's repository: accounts and sessions
(BookingRegister inherits it, so use cases reach it as `uow.register`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from services.booking.adapters.orm import staff_accounts, staff_sessions, staff_sign_in_failures
from services.booking.domain.staff import StaffAccount, StaffSession


class StaffRegister:
    session: Session
    _lock_rows: bool

    def staff_account(self, username: str, *, for_update: bool = False) -> StaffAccount | None:
        query = select(StaffAccount).where(staff_accounts.c.username == username)
        if for_update and self._lock_rows:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.scalars(query).first()

    def staff_accounts(self) -> Sequence[StaffAccount]:
        query = select(StaffAccount).order_by(staff_accounts.c.role, staff_accounts.c.username)
        return self.session.scalars(query).all()

    def staff_session(self, id_digest: str) -> StaffSession | None:
        return self.session.get(StaffSession, id_digest)

    def end_staff_session(self, id_digest: str) -> None:
        self.session.execute(delete(staff_sessions).where(staff_sessions.c.id_digest == id_digest))

    def end_sessions_of(self, username: str) -> None:
        """Sign the person out everywhere (disabled, new password)."""
        self.session.execute(delete(staff_sessions).where(staff_sessions.c.username == username))

    def end_stale_sessions(self, idle_before: datetime, created_before: datetime) -> None:
        self.session.execute(
            delete(staff_sessions).where(
                or_(
                    staff_sessions.c.last_seen_at < idle_before,
                    staff_sessions.c.created_at < created_before,
                )
            )
        )

    def sign_in_failures(self, address_digest: str, since: datetime) -> int:
        """Failed sign-ins from one client address since `since`."""
        t = staff_sign_in_failures
        query = select(func.count()).where(t.c.address_digest == address_digest, t.c.at >= since)
        return int(self.session.execute(query).scalar_one())

    def add_sign_in_failure(
        self, address_digest: str, at: datetime, forget_before: datetime
    ) -> None:
        """Count a failed sign-in from an address; rows older than `forget_before` go."""
        t = staff_sign_in_failures
        self.session.execute(delete(t).where(t.c.at < forget_before))
        self.session.execute(insert(t).values(address_digest=address_digest, at=at))
