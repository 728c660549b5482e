"""histories read by index: the white-list entries and the event behind a decision

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28

A firm's history (GetEnterpriseStatus, every ReportEvent's answer) joins each decision
shown to the white-list entries it granted or closed and to the event that caused it.
Without these indexes the first read every entry of the register (the only index on a
firm's entries was the partial one of its open entry) and the second every event of
the firm, once per decision shown; with them each decision's own rows are looked up.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: an operator may have built them beforehand with CREATE INDEX
    # CONCURRENTLY, so that a large register's writes are not held while they build (README)
    for name, table, column in (
        ("ix_whitelist_granted_by", "whitelist_entries", "granted_decision_id"),
        ("ix_whitelist_closed_by", "whitelist_entries", "closed_decision_id"),
        ("ix_events_decision", "events", "decision_id"),
    ):
        op.create_index(name, table, [column], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_events_decision", table_name="events")
    op.drop_index("ix_whitelist_closed_by", table_name="whitelist_entries")
    op.drop_index("ix_whitelist_granted_by", table_name="whitelist_entries")
