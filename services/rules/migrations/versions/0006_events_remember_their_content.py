"""events remember their content: a reused event_id with other content is refused

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

Events recorded before this revision have no fingerprint; a repeat of one is compared by
firm, kind and date only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
