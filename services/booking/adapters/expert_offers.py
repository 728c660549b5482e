"""Keep dispatch's rows of each expert (expert_slots, expert_domains, expert_regions,
expert_conflicts; adapters/orm.py) equal to the expert's own columns.

A session listener, installed with the unit of work's session factory, so that every way
an expert is written (UpsertExpert, the demo city, a test adding one through the ORM)
rewrites its rows in the same transaction: after a flush that inserted an expert or
changed one of the four columns, that expert's rows are deleted and written again; before
a flush that deletes an expert, its rows go first. Migration b0007 filled them for the
experts stored before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Table, delete, event, insert, inspect
from sqlalchemy.orm import Session, sessionmaker

from services.booking.adapters.orm import (
    expert_conflicts,
    expert_domains,
    expert_regions,
    expert_slots,
)
from services.booking.domain.records import Expert
from services.booking.domain.slots import parse_slot

# the expert's column → its table and the column a value goes to
_COPIES: dict[str, tuple[Table, str]] = {
    "slots": (expert_slots, "slot"),
    "domains": (expert_domains, "domain"),
    "regions": (expert_regions, "region"),
    "conflicts": (expert_conflicts, "enterprise_id"),
}


def offer_rows(field: str, expert_id: str, values: Iterable[str]) -> list[dict[str, Any]]:
    """The rows of one of the expert's columns (a half-day's row carries its day; a
    value that is not a half-day is left out: dispatch could never pick it)."""
    column = _COPIES[field][1]
    rows: list[dict[str, Any]] = []
    for value in dict.fromkeys(values):
        row: dict[str, Any] = {"expert_id": expert_id, column: value}
        if field == "slots":
            try:
                row["day"] = parse_slot(value).day
            except ValueError:
                continue
        rows.append(row)
    return rows


def write_offer(connection: Connection, expert: Expert, fields: Iterable[str]) -> None:
    """Replace the expert's rows of the given columns."""
    for field in fields:
        table, _ = _COPIES[field]
        connection.execute(delete(table).where(table.c.expert_id == expert.id))
        rows = offer_rows(field, expert.id, getattr(expert, field) or [])
        if rows:
            connection.execute(insert(table), rows)


def _changed(expert: Expert) -> list[str]:
    state = inspect(expert)
    return [f for f in _COPIES if state.attrs[f].history.has_changes()]


def _after_flush(session: Session, _context: Any) -> None:
    written = [(e, list(_COPIES)) for e in session.new if isinstance(e, Expert)]
    written += [(e, _changed(e)) for e in session.dirty if isinstance(e, Expert)]
    for expert, fields in written:
        if fields:
            write_offer(session.connection(), expert, fields)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    for expert in session.deleted:
        if isinstance(expert, Expert):
            for table, _ in _COPIES.values():
                session.connection().execute(delete(table).where(table.c.expert_id == expert.id))


class ExpertOffers:
    """The listener pair, as the unit of work installs recorders (a SessionRecorder)."""

    def install(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "after_flush", _after_flush)
        event.listen(factory, "before_flush", _before_flush)

    def holds(self, _session: Session) -> bool:
        """Nothing: it writes at each flush."""
        return False


EXPERT_OFFERS = ExpertOffers()
