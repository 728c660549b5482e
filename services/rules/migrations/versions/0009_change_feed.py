"""change feed: changes recorded with their writer's transaction, positioned on pickup

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("change_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("enterprise_id", sa.String(length=18), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sa.UniqueConstraint("change_id", name=op.f("uq_changes_change_id")),
        sa.UniqueConstraint("position", name=op.f("uq_changes_position")),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index("ix_changes_region_position", ["region", "position"], unique=False)
        batch_op.create_index(
            "ix_changes_unpositioned",
            ["id"],
            unique=False,
            postgresql_where=sa.text("position IS NULL"),
            sqlite_where=sa.text("position IS NULL"),
        )
        batch_op.create_index(
            "ix_changes_unpublished",
            ["position"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
    feed_head = op.create_table(
        "feed_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_head")),
    )
    op.bulk_insert(feed_head, [{"id": 1, "last_position": 0, "pruned_through": 0}])


def downgrade() -> None:
    op.drop_table("feed_head")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index("ix_changes_unpublished")
        batch_op.drop_index("ix_changes_unpositioned")
        batch_op.drop_index("ix_changes_region_position")
    op.drop_table("changes")
