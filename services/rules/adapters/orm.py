"""SQLAlchemy 2.x tables and the imperative mapping of the register's dataclasses.

The schema is created and upgraded only by Alembic (services/rules/migrations); a
test checks that these tables and the migrated database agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import registry
from sqlalchemy.schema import SchemaItem

from services.common import columns
from services.common.audit import Audited, AuditTrail, audit_tables
from services.common.db import new_metadata, once
from services.rules.domain import register

metadata = new_metadata()
mapper_registry = registry(metadata=metadata)


def _firm_records(name: str, *items: SchemaItem) -> Table:
    """A table of a firm's records: each its own id and its firm's (a firm of `firms`)
    first, then `items`."""
    return Table(
        name,
        metadata,
        columns.record_id(),
        columns.firm_id(references="firms.enterprise_id"),
        *items,
    )


firms = Table(
    "firms",
    metadata,
    columns.firm_id(primary_key=True),
    columns.firm_name(),
    columns.region(index=True),
    Column("profile", JSON, nullable=False),
    Column("status", String(16), nullable=False, server_default=""),
    Column("risk_level", String(16), nullable=False, server_default=""),
    columns.record_ref("decision_id", nullable=True),
    columns.instant("created_at"),
    columns.instant("updated_at"),
)

decisions = _firm_records(
    "decisions",
    columns.instant("decided_at"),
    columns.day("as_of"),
    Column("status", String(16), nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("ruleset_version", String(40), nullable=False),
    Column("cause", Text, nullable=False),
    Column("whitelist_change", String(16), nullable=False, server_default=""),
    Column("payload", JSON, nullable=False),
    Index("ix_decisions_firm_time", "enterprise_id", "decided_at"),
)

whitelist_entries = _firm_records(
    "whitelist_entries",
    columns.firm_name(),
    columns.region(),
    columns.day("granted_on"),
    columns.day("valid_until"),
    columns.record_ref("decision_id"),
    columns.day("revoked_on", nullable=True),
    columns.note("revoked_reason"),
    columns.record_ref("granted_decision_id", nullable=True),
    columns.record_ref("closed_decision_id", nullable=True),
    # at most one open entry per firm, enforced by the database
    Index(
        "uq_whitelist_open_entry",
        "enterprise_id",
        unique=True,
        sqlite_where=text("revoked_on IS NULL"),
        postgresql_where=text("revoked_on IS NULL"),
    ),
    Index("ix_whitelist_region_firm", "region", "enterprise_id"),
    # a history's entries, by the decision that granted or closed them (migration 0012)
    Index("ix_whitelist_granted_by", "granted_decision_id"),
    Index("ix_whitelist_closed_by", "closed_decision_id"),
)

events = Table(
    "events",
    metadata,
    columns.serial_id(),
    Column("source", String(100), nullable=False),
    Column("event_id", String(128), nullable=False),
    columns.firm_id(references="firms.enterprise_id"),
    Column("kind", String(32), nullable=False),
    columns.day("occurred_on"),
    Column("detail", JSON, nullable=False),
    columns.instant("received_at"),
    columns.note("summary"),
    columns.record_ref("decision_id", nullable=True),
    Column("result", JSON, nullable=True),
    columns.digest("fingerprint", nullable=True),
    UniqueConstraint("source", "event_id", name="uq_events_source_event_id"),
    Index("ix_events_firm", "enterprise_id", "received_at"),
    Index("ix_events_decision", "decision_id"),  # a history's causing events (0012)
    Index("ix_events_firm_kind", "enterprise_id", "kind", "received_at"),  # quiet ones (0013)
)

inspections = _firm_records(
    "inspections",
    Column("authority", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    columns.day("planned_on"),
    Column("year", Integer, nullable=False),
    columns.flag("counted"),
    columns.flag("allowed"),
    columns.flag("joint"),
    Column("joint_id", String(32), nullable=False, server_default=""),
    Column("reason_code", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    columns.note("grounds"),
    Column("requested_by", String(100), nullable=False),
    columns.instant("created_at"),
    Column("inspection_code", String(64), nullable=True, unique=True),
    Column("idempotency_key", String(128), nullable=True),
    Column("yearly_count", Integer, nullable=True),
    Column("yearly_cap", Integer, nullable=True),
    Index("ix_inspections_firm_year", "enterprise_id", "year", "allowed", "counted"),
    UniqueConstraint(
        "requested_by", "idempotency_key", name="uq_inspections_requested_by_idempotency_key"
    ),
)

reevaluation_runs = Table(
    "reevaluation_runs",
    metadata,
    columns.record_id(),
    columns.day("as_of"),
    columns.instant("started_at"),
    Column("processed", Integer, nullable=False),
    columns.firm_id("last_enterprise_id"),
    columns.instant("finished_at", nullable=True),
    Column("skipped", JSON, nullable=False, server_default="[]"),
    Column("attention", JSON, nullable=False, server_default="[]"),
    Column("parent_id", String(32), nullable=True, index=True),
    Column("upto", String(18), nullable=True),
    Column("raised", Boolean, nullable=True),  # NULL: recorded before 0016
    Column("ahead", Integer, nullable=False, server_default="0"),
)

# The change feed (adapters/feed.py): rows written in the writer's transaction; `position`
# (the cursor) is given once a committed row is picked up, under feed_head's lock.
changes = Table(
    "changes",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("change_id", String(32), nullable=False, unique=True),
    Column("position", BigInteger, nullable=True, unique=True),
    columns.firm_id(),
    columns.region(),
    Column("kind", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    columns.instant("recorded_at"),
    columns.instant("published_at", nullable=True),
    # the indexes on `position` hold positioned rows only on PostgreSQL (0019): a writer
    # does not index its rows' NULL positions; SQLite's unique constraint is the table's
    Index(
        "ix_changes_region_position",
        "region",
        "position",
        postgresql_where=text("position IS NOT NULL"),
    ),
    Index(
        "ix_changes_unpositioned",
        "id",
        postgresql_where=text("position IS NULL"),
        sqlite_where=text("position IS NULL"),
    ),
    Index(
        "ix_changes_unpublished",
        "position",
        postgresql_where=text("position IS NOT NULL AND published_at IS NULL"),
        sqlite_where=text("published_at IS NULL"),
    ),
)
feed_head = Table(
    "feed_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_position", BigInteger, nullable=False),
    Column("pruned_through", BigInteger, nullable=False),
    # the bus the changes are published to, once a replica has published (0015)
    Column("publisher", String(200), nullable=True),
    # the feed's epoch, in every cursor it gives; made anew by a restore (0017)
    Column("epoch", Integer, nullable=True),
    # bare cursors (given before 0017) are taken up to this position; NULL: up to the last
    Column("bare_through", BigInteger, nullable=True),
    # where this head lives (PostgreSQL: the database's and the table's oids): a head read
    # elsewhere was restored from a dump, and its epoch is made anew (adapters/feed.py)
    Column("anchor", String(64), nullable=True),
)

# a chain per firm; no index by entity id (0014): no read asks for one, and each entry
# written (two or three for every decision) paid an insert into it at a random place
audit_log, audit_head = audit_tables(metadata, chains=True, entity_index=False)

BY_FIRM = "enterprise_id"  # every record of a firm goes on that firm's audit chain
AUDITED = {
    register.Firm: Audited(
        "firm",
        "enterprise_id",
        ("name", "region", "status", "risk_level", "decision_id"),
        chain_field=BY_FIRM,
    ),
    register.DecisionRecord: Audited(
        "decision",
        "id",
        (
            "enterprise_id",
            "status",
            "risk_level",
            "ruleset_version",
            "as_of",
            "cause",
            "whitelist_change",
        ),
        chain_field=BY_FIRM,
    ),
    register.WhitelistEntry: Audited(
        "whitelist_entry",
        "id",
        (
            "enterprise_id",
            "granted_on",
            "valid_until",
            "revoked_on",
            "revoked_reason",
            "decision_id",
        ),
        chain_field=BY_FIRM,
    ),
    register.EventRecord: Audited(
        "event",
        "event_id",
        ("source", "enterprise_id", "kind", "occurred_on", "summary", "decision_id"),
        chain_field=BY_FIRM,
    ),
    register.InspectionRecord: Audited(
        "inspection",
        "id",
        (
            "enterprise_id",
            "authority",
            "kind",
            "planned_on",
            "allowed",
            "joint",
            "joint_id",
            "reason_code",
            "requested_by",
        ),
        chain_field=BY_FIRM,
    ),
}
AUDIT = AuditTrail(audit_log, audit_head, AUDITED)


def _map() -> None:
    """Map the domain dataclasses onto the tables."""
    mapper_registry.map_imperatively(register.Firm, firms)
    mapper_registry.map_imperatively(register.DecisionRecord, decisions)
    mapper_registry.map_imperatively(register.WhitelistEntry, whitelist_entries)
    mapper_registry.map_imperatively(register.EventRecord, events)
    mapper_registry.map_imperatively(register.InspectionRecord, inspections)
    mapper_registry.map_imperatively(register.ReevaluationRun, reevaluation_runs)


start_mappers = once(_map)  # once per process, before serving (services/common/db.py)
