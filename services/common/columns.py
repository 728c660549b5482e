"""The kinds of column both registers share, so that one kind of value has one SQL type in
every table of both services (the migrations spell the same types; the rules service's
tests compare its migrated database with its tables).

- `record_id`, `record_ref`: a record's id as `clock.new_id()` makes it (ID_LENGTH, 32
  characters): the record's own primary key, or another record's id it refers to;
- `serial_id`: the primary key of a log's rows, numbered by the database;
- `firm_id`: a firm's unified social credit code (USCC_LENGTH, 18 characters), always required;
- `firm_name`, `region`: a firm's name and its 镇街 (the lengths the rules service's
  profile accepts);
- `instant`: a moment, stored with its time zone and bound in UTC (`Instant`); `day`: a
  calendar day;
- `flag`: yes or no, always required;
- `digest`: a SHA-256 digest (or HMAC) in hex, 64 characters;
- `note`: free text that is empty, not NULL, when there is none.

Each takes the column's name first and SQLAlchemy's own keywords (`index`, `unique`,
`nullable`…) after, as `Column` does; the ORM modules call them as `columns.instant(…)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Date, DateTime, Dialect, ForeignKey, Integer, String, Text
from sqlalchemy.types import TypeDecorator

from services.common.clock import ID_LENGTH as RECORD_ID_LENGTH
from services.common.instants import as_utc
from services.common.vocabulary import FIRM_NAME_LENGTH, REGION_LENGTH
from services.common.vocabulary import USCC_LENGTH as FIRM_ID_LENGTH

DIGEST_LENGTH = 64  # hashlib.sha256(…).hexdigest()


def record_id(name: str = "id") -> Column[Any]:
    """The record's own id, its primary key."""
    return Column(name, String(RECORD_ID_LENGTH), primary_key=True)


def serial_id() -> Column[Any]:
    """A log row's id, numbered by the database (the order rows were written in)."""
    return Column("id", Integer, primary_key=True, autoincrement=True)


def record_ref(
    name: str, *, references: str = "", nullable: bool = False, deferred: bool = False, **kw: Any
) -> Column[Any]:
    """Another record's id, required unless `nullable`; `references` ("table.column")
    adds the foreign key, checked at the commit if `deferred` (DEFERRABLE INITIALLY
    DEFERRED)."""
    options: dict[str, Any] = {"deferrable": True, "initially": "DEFERRED"} if deferred else {}
    keys = [ForeignKey(references, **options)] if references else []
    return Column(name, String(RECORD_ID_LENGTH), *keys, nullable=nullable, **kw)


def firm_id(name: str = "enterprise_id", *, references: str = "", **kw: Any) -> Column[Any]:
    """A firm's credit code, required; `references` adds the foreign key."""
    keys = [ForeignKey(references)] if references else []
    return Column(name, String(FIRM_ID_LENGTH), *keys, nullable=False, **kw)


def firm_name(name: str = "name") -> Column[Any]:
    """A firm's name, required."""
    return Column(name, String(FIRM_NAME_LENGTH), nullable=False)


def region(name: str = "region", **kw: Any) -> Column[Any]:
    """A region (镇街) by its Chinese name, required."""
    return Column(name, String(REGION_LENGTH), nullable=False, **kw)


class Instant(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` whose every bound value is in UTC: what the column stores
    (an order's creation, a transition) and what it is compared with (a period's bounds,
    `clock.start_of_day`, are midnights in Asia/Shanghai). PostgreSQL's timestamptz
    converts an instant of any zone itself, but SQLite keeps no zone: it stores and
    compares the wall time as written, so an instant on the Shanghai clock stood 8 hours
    off every UTC one (review 59 F3). Converting here, once, makes both databases hold
    and compare the same thing whatever zone the caller's instant is on; a naive value
    is taken as UTC (`instants.as_utc`), as SQLite hands them back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime):
            return as_utc(value).astimezone(UTC)
        return value


def instant(name: str, *, nullable: bool = False, **kw: Any) -> Column[Any]:
    """A moment with its time zone (every timestamp of both registers), bound in UTC."""
    return Column(name, Instant(), nullable=nullable, **kw)


def day(name: str, *, nullable: bool = False, **kw: Any) -> Column[Any]:
    """A calendar day (no time, no zone)."""
    return Column(name, Date, nullable=nullable, **kw)


def flag(name: str, **kw: Any) -> Column[Any]:
    """Yes or no, required."""
    return Column(name, Boolean, nullable=False, **kw)


def digest(name: str, *, nullable: bool = False, **kw: Any) -> Column[Any]:
    """A SHA-256 digest or HMAC as hex (a secret's, a photo's, an event's canonical form)."""
    return Column(name, String(DIGEST_LENGTH), nullable=nullable, **kw)


def note(name: str) -> Column[Any]:
    """Free text, "" when there is none."""
    return Column(name, Text, nullable=False, server_default="")
