"""audit chain per firm: writers of different firms no longer wait on one head row

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

Entries written before stay on the global chain (chain "", head `audit_head`), still
verified as they were hashed; every new entry goes on its firm's chain, whose head is a
row of `audit_chains`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chains")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chain", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.create_index("ix_audit_log_chain_id", ["chain", "id"], unique=False)


def downgrade() -> None:
    """Back to one chain: only possible while no entry is on a firm's chain (the old
    code would find their links broken)."""
    bind = op.get_bind()
    chained = bind.execute(sa.text("SELECT count(*) FROM audit_log WHERE chain <> ''")).scalar()
    if chained:
        raise RuntimeError(
            f"{chained} audit entries are on per-firm chains; a downgrade would break the trail"
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_chain_id")
        batch_op.drop_column("chain")
    op.drop_table("audit_chains")
