"""inspections take an idempotency key and keep their verdict's counts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

A CheckInspection retried with the same idempotency_key answers the recorded verdict;
yearly_count and yearly_cap are kept for that answer (NULL for older rows, which have
no key and are never replayed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("yearly_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("yearly_cap", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            "uq_inspections_requested_by_idempotency_key", ["requested_by", "idempotency_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_constraint("uq_inspections_requested_by_idempotency_key", type_="unique")
        batch_op.drop_column("yearly_cap")
        batch_op.drop_column("yearly_count")
        batch_op.drop_column("idempotency_key")
