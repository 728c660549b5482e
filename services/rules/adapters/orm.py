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
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import registry

from services.common.audit import Audited, AuditTrail, audit_tables
from services.common.db import new_metadata, once
from services.rules.domain.register import (
    DecisionRecord,
    EventRecord,
    Firm,
    InspectionRecord,
    ReevaluationRun,
    WhitelistEntry,
)

metadata = new_metadata()
mapper_registry = registry(metadata=metadata)

firms = Table(
    "firms",
    metadata,
    Column("enterprise_id", String(18), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("region", String(100), nullable=False, index=True),
    Column("profile", JSON, nullable=False),
    Column("status", String(16), nullable=False, server_default=""),
    Column("risk_level", String(16), nullable=False, server_default=""),
    Column("decision_id", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("enterprise_id", String(18), ForeignKey("firms.enterprise_id"), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("ruleset_version", String(40), nullable=False),
    Column("cause", Text, nullable=False),
    Column("whitelist_change", String(16), nullable=False, server_default=""),
    Column("payload", JSON, nullable=False),
    Index("ix_decisions_firm_time", "enterprise_id", "decided_at"),
)

whitelist_entries = Table(
    "whitelist_entries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("enterprise_id", String(18), ForeignKey("firms.enterprise_id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("region", String(100), nullable=False),
    Column("granted_on", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("decision_id", String(32), nullable=False),
    Column("revoked_on", Date, nullable=True),
    Column("revoked_reason", Text, nullable=False, server_default=""),
    Column("granted_decision_id", String(32), nullable=True),
    Column("closed_decision_id", String(32), nullable=True),
    # at most one open entry per firm, enforced by the database
    Index(
        "uq_whitelist_open_entry",
        "enterprise_id",
        unique=True,
        sqlite_where=text("revoked_on IS NULL"),
        postgresql_where=text("revoked_on IS NULL"),
    ),
    Index("ix_whitelist_region_firm", "region", "enterprise_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("enterprise_id", String(18), ForeignKey("firms.enterprise_id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False, server_default=""),
    Column("decision_id", String(32), nullable=True),
    Column("result", JSON, nullable=True),
    Column("fingerprint", String(64), nullable=True),
    UniqueConstraint("source", "event_id", name="uq_events_source_event_id"),
    Index("ix_events_firm", "enterprise_id", "received_at"),
)

inspections = Table(
    "inspections",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("enterprise_id", String(18), ForeignKey("firms.enterprise_id"), nullable=False),
    Column("authority", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("planned_on", Date, nullable=False),
    Column("year", Integer, nullable=False),
    Column("counted", Boolean, nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("joint", Boolean, nullable=False),
    Column("joint_id", String(32), nullable=False, server_default=""),
    Column("reason_code", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("grounds", Text, nullable=False, server_default=""),
    Column("requested_by", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
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
    Column("id", String(32), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("processed", Integer, nullable=False),
    Column("last_enterprise_id", String(18), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("skipped", JSON, nullable=False, server_default="[]"),
    Column("attention", JSON, nullable=False, server_default="[]"),
    Column("parent_id", String(32), nullable=True, index=True),
    Column("upto", String(18), nullable=True),
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
    Column("enterprise_id", String(18), nullable=False),
    Column("region", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Index("ix_changes_region_position", "region", "position"),
    Index(
        "ix_changes_unpositioned",
        "id",
        postgresql_where=text("position IS NULL"),
        sqlite_where=text("position IS NULL"),
    ),
    Index(
        "ix_changes_unpublished",
        "position",
        postgresql_where=text("published_at IS NULL"),
        sqlite_where=text("published_at IS NULL"),
    ),
)
feed_head = Table(
    "feed_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_position", BigInteger, nullable=False),
    Column("pruned_through", BigInteger, nullable=False),
)

audit_log, audit_head = audit_tables(metadata, chains=True)  # a chain per firm

BY_FIRM = "enterprise_id"  # every record of a firm goes on that firm's audit chain
AUDITED = {
    Firm: Audited(
        "firm",
        "enterprise_id",
        ("name", "region", "status", "risk_level", "decision_id"),
        chain_field=BY_FIRM,
    ),
    DecisionRecord: Audited(
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
    WhitelistEntry: Audited(
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
    EventRecord: Audited(
        "event",
        "event_id",
        ("source", "enterprise_id", "kind", "occurred_on", "summary", "decision_id"),
        chain_field=BY_FIRM,
    ),
    InspectionRecord: Audited(
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
    mapper_registry.map_imperatively(Firm, firms)
    mapper_registry.map_imperatively(DecisionRecord, decisions)
    mapper_registry.map_imperatively(WhitelistEntry, whitelist_entries)
    mapper_registry.map_imperatively(EventRecord, events)
    mapper_registry.map_imperatively(InspectionRecord, inspections)
    mapper_registry.map_imperatively(ReevaluationRun, reevaluation_runs)


start_mappers = once(_map)  # once per process, before serving (services/common/db.py)
