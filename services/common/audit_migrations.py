"""The schema steps of per-key audit chains (services/common/audit.py), shared by the
migrations that introduced them: rules `0010` (a chain per firm) and booking `b0008`
(per firm and per expert)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


def add_audit_chains(chain_length: int) -> Any:
    """The `audit_chains` heads and the log's `chain` column (entries from before stay on
    the global chain, ""); returns the heads' table, for rows to be written into it."""
    heads = op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(length=chain_length), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chains")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chain", sa.String(length=chain_length), server_default="", nullable=False)
        )
        batch_op.create_index("ix_audit_log_chain_id", ["chain", "id"], unique=False)
    return heads


def drop_audit_chains(kind: str) -> None:
    """Back to one chain: only possible while no entry is on a `kind` chain (the old code
    would find their links broken)."""
    bind = op.get_bind()
    chained = bind.execute(sa.text("SELECT count(*) FROM audit_log WHERE chain <> ''")).scalar()
    if chained:
        raise RuntimeError(
            f"{chained} audit entries are on {kind} chains; a downgrade would break the trail"
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_chain_id")
        batch_op.drop_column("chain")
    op.drop_table("audit_chains")
