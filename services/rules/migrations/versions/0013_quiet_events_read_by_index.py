"""quiet events read by index: a firm's events of one kind, newest first

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28

Every ReportEvent's answer shows the firm's newest quiet events (those that leave the
decision standing: complaints). On the index of a firm's events by time alone, that
read walks back past every event that caused a decision (most of a busy firm's events)
until it has found 20 quiet ones, or reached the firm's first event; with the kind in
the index it reads the newest quiet events alone, however many others the firm has.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: it may have been built beforehand with CREATE INDEX CONCURRENTLY (README)
    columns = ["enterprise_id", "kind", "received_at"]
    op.create_index("ix_events_firm_kind", "events", columns, if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_events_firm_kind", table_name="events")
