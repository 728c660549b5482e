"""failed staff sign-ins by client address (the per-address throttle)

Revision ID: b0006
Revises: b0005
Create Date: 2026-11-27

One row a failed sign-in: a digest of the client's address and when. Too many from one
address within the window (domain/staff.py ADDRESS_THROTTLE) and that address is refused
for a while without any account being counted, so one address cannot lock many accounts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0006"
down_revision = "b0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_sign_in_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address_digest", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_staff_sign_in_failures_address_at",
        "staff_sign_in_failures",
        ["address_digest", "at"],
    )


def downgrade() -> None:
    op.drop_index("ix_staff_sign_in_failures_address_at", table_name="staff_sign_in_failures")
    op.drop_table("staff_sign_in_failures")
