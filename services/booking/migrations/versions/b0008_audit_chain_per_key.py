"""audit chains per firm and per expert: booking's writers no longer wait on one head row

Revision ID: b0008
Revises: b0007
Create Date: 2026-11-27

Every booking commit used to lock the single `audit_head` row to append its entries. Now
a firm's records (its card, orders, tickets) go on the chain "firm:<enterprise id>" and an
expert's (the expert, their assignments and visits) on "expert:<expert id>", each with its
head in `audit_chains` (adapters/orm.py); photos and staff accounts stay on the global
chain. Entries written before stay on the global chain (chain "", head `audit_head`),
still verified as they were hashed. Upgrade also writes an empty head (no entry yet: the
genesis hash, last id 0) for every firm and expert stored, so that two first writers of
one chain never race to create its head.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0008"
down_revision = "b0007"
branch_labels = None
depends_on = None

CHAIN_LENGTH = 80  # adapters/orm.py CHAIN_LENGTH
GENESIS = "0" * 64


def upgrade() -> None:
    heads = op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(length=CHAIN_LENGTH), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chains")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chain", sa.String(length=CHAIN_LENGTH), server_default="", nullable=False)
        )
        batch_op.create_index("ix_audit_log_chain_id", ["chain", "id"], unique=False)
    bind = op.get_bind()
    keys = [f"firm:{r[0]}" for r in bind.execute(sa.text("SELECT enterprise_id FROM firm_cards"))]
    keys += [f"expert:{r[0]}" for r in bind.execute(sa.text("SELECT id FROM experts"))]
    if keys:
        op.bulk_insert(heads, [{"chain": k, "last_id": 0, "last_hash": GENESIS} for k in keys])


def downgrade() -> None:
    """Back to one chain: only possible while no entry is on a per-key chain (the old
    code would find their links broken)."""
    bind = op.get_bind()
    chained = bind.execute(sa.text("SELECT count(*) FROM audit_log WHERE chain <> ''")).scalar()
    if chained:
        raise RuntimeError(
            f"{chained} audit entries are on per-key chains; a downgrade would break the trail"
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_chain_id")
        batch_op.drop_column("chain")
    op.drop_table("audit_chains")
