"""white-list entries name the decisions that granted and closed them (history items)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

Existing entries are matched to their decisions where the record is unambiguous: the
first decision of the firm that says `granted` on the entry's granted_on, and the last
that says `revoked` on its revoked_on. An entry closed as expired, or one no decision
matches, keeps NULL and shows no white-list item in the history (the entry itself is
unchanged).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whitelist_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("granted_decision_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("closed_decision_id", sa.String(length=32), nullable=True))
    op.execute(
        """
        UPDATE whitelist_entries SET granted_decision_id = (
            SELECT d.id FROM decisions d
            WHERE d.enterprise_id = whitelist_entries.enterprise_id
              AND d.whitelist_change = 'granted' AND d.as_of = whitelist_entries.granted_on
            ORDER BY d.decided_at LIMIT 1)
        """
    )
    op.execute(
        """
        UPDATE whitelist_entries SET closed_decision_id = (
            SELECT d.id FROM decisions d
            WHERE d.enterprise_id = whitelist_entries.enterprise_id
              AND d.whitelist_change = 'revoked' AND d.as_of = whitelist_entries.revoked_on
            ORDER BY d.decided_at DESC LIMIT 1)
        WHERE revoked_on IS NOT NULL
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("whitelist_entries", schema=None) as batch_op:
        batch_op.drop_column("closed_decision_id")
        batch_op.drop_column("granted_decision_id")
