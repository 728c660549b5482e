"""Queries over the register; the unit of work owns the session and the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.rules.domain.register import (
    DecisionRecord,
    EventRecord,
    Firm,
    InspectionRecord,
    ReevaluationRun,
    WhitelistEntry,
)


class Register:
    """Every query the rules handlers need, over one session."""

    def __init__(self, session: Session, *, lock_rows: bool) -> None:
        self.session = session
        self._lock_rows = lock_rows  # PostgreSQL: SELECT … FOR UPDATE; SQLite locks the file

    def add(self, record: object) -> None:
        self.session.add(record)

    def firm(self, enterprise_id: str, *, for_update: bool = False) -> Firm | None:
        query = select(Firm).where(Firm.enterprise_id == enterprise_id)  # type: ignore[arg-type]
        if for_update and self._lock_rows:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def decision(self, decision_id: str | None) -> DecisionRecord | None:
        return self.session.get(DecisionRecord, decision_id) if decision_id else None

    def history(self, enterprise_id: str, limit: int) -> Sequence[DecisionRecord]:
        query = (
            select(DecisionRecord)
            .where(DecisionRecord.enterprise_id == enterprise_id)  # type: ignore[arg-type]
            .order_by(DecisionRecord.decided_at.desc())  # type: ignore[attr-defined]
            .limit(limit)
        )
        return self.session.scalars(query).all()

    def open_entry(self, enterprise_id: str) -> WhitelistEntry | None:
        query = select(WhitelistEntry).where(
            WhitelistEntry.enterprise_id == enterprise_id,  # type: ignore[arg-type]
            WhitelistEntry.revoked_on.is_(None),
        )  # type: ignore[union-attr]
        return self.session.scalars(query).first()

    def whitelist_page(
        self, region: str, today: date, after: str, limit: int
    ) -> Sequence[WhitelistEntry]:
        """Active entries ordered by (region, enterprise_id), strictly after the cursor."""
        conditions = [
            WhitelistEntry.revoked_on.is_(None),  # type: ignore[union-attr]
            WhitelistEntry.valid_until >= today,  # type: ignore[operator]
            WhitelistEntry.granted_on <= today,
        ]  # type: ignore[operator]
        if region:
            conditions.append(WhitelistEntry.region == region)  # type: ignore[arg-type]
        if after:
            last_region, _, last_id = after.partition("\x1f")
            conditions.append(
                or_(
                    WhitelistEntry.region > last_region,  # type: ignore[operator]
                    and_(
                        WhitelistEntry.region == last_region,  # type: ignore[arg-type]
                        WhitelistEntry.enterprise_id > last_id,
                    ),
                )
            )  # type: ignore[operator]
        query = (
            select(WhitelistEntry)
            .where(*conditions)
            .order_by(WhitelistEntry.region, WhitelistEntry.enterprise_id)  # type: ignore[arg-type]
            .limit(limit)
        )
        return self.session.scalars(query).all()

    def event(self, source: str, event_id: str) -> EventRecord | None:
        query = select(EventRecord).where(
            EventRecord.source == source,  # type: ignore[arg-type]
            EventRecord.event_id == event_id,
        )  # type: ignore[arg-type]
        return self.session.scalars(query).first()

    def counted_inspections(
        self, enterprise_id: str, years: Sequence[int]
    ) -> Sequence[InspectionRecord]:
        query = select(InspectionRecord).where(
            InspectionRecord.enterprise_id == enterprise_id,  # type: ignore[arg-type]
            InspectionRecord.year.in_(list(years)),  # type: ignore[attr-defined]
            InspectionRecord.allowed.is_(True),  # type: ignore[attr-defined]
            InspectionRecord.counted.is_(True),
        )  # type: ignore[attr-defined]
        return self.session.scalars(query).all()

    def inspection_by_code(self, code: str) -> InspectionRecord | None:
        query = select(InspectionRecord).where(InspectionRecord.inspection_code == code)  # type: ignore[arg-type]
        return self.session.scalars(query).first()

    def joint_authorities(self, enterprise_id: str, joint_id: str) -> list[str]:
        query = (
            select(InspectionRecord.authority)
            .where(
                InspectionRecord.enterprise_id == enterprise_id,  # type: ignore[arg-type]
                InspectionRecord.joint_id == joint_id,  # type: ignore[arg-type]
                InspectionRecord.allowed.is_(True),
            )  # type: ignore[attr-defined]
            .order_by(InspectionRecord.created_at)
        )  # type: ignore[arg-type]
        return list(dict.fromkeys(self.session.scalars(query).all()))

    def firm_ids_after(self, after: str, limit: int) -> list[str]:
        query = (
            select(Firm.enterprise_id)
            .where(Firm.enterprise_id > after)  # type: ignore[operator]
            .order_by(Firm.enterprise_id)
            .limit(limit)
        )  # type: ignore[arg-type]
        return list(self.session.scalars(query).all())

    def unfinished_run(self, as_of: date) -> ReevaluationRun | None:
        query = select(ReevaluationRun).where(
            ReevaluationRun.as_of == as_of,  # type: ignore[arg-type]
            ReevaluationRun.finished_at.is_(None),
        )  # type: ignore[union-attr]
        return self.session.scalars(query).first()

    def run(self, run_id: str) -> ReevaluationRun | None:
        return self.session.get(ReevaluationRun, run_id)
