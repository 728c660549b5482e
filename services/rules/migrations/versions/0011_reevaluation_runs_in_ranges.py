"""re-evaluation runs in ranges: `reevaluate --all --processes N`

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27

A run split into ranges of firm ids (one process each) is a parent record and one
record per range, naming its parent (`parent_id`) and the last id of its range (`upto`,
NULL: no end). Runs recorded before have neither: a single range over every firm.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reevaluation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("upto", sa.String(length=18), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_reevaluation_runs_parent_id"), ["parent_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reevaluation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reevaluation_runs_parent_id"))
        batch_op.drop_column("upto")
        batch_op.drop_column("parent_id")
