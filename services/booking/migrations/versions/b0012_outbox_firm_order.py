"""the outbox keeps each firm's order past a refused message: discarded messages, and
each firm's open messages indexed in the order written

Revision ID: b0012
Revises: b0011
Create Date: 2026-12-03

A message the rules service refuses for good is parked and now holds its firm's later
messages until an operator requeues (`booking outbox --retry-failed`) or discards it
(`booking outbox --discard EVENT_ID --reason TEXT`): service_layer/outbox.py.

- `outbox.discarded_at`, `outbox.discard_reason`: a message an operator dropped, never
  sent (its refusal, `failed_at` and `last_error`, is kept beside it);
- `ix_outbox_open` on (`enterprise_id`, `id`), partial on the messages neither delivered
  nor discarded: a firm's earliest open message is one seek, and the heads of every firm
  with something to send are read from that index alone, however many messages were
  delivered before (the worker asks for them on every pass).

Nothing else is written: a message parked before this revision now holds its firm's
later messages, which `booking outbox` lists.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0012"
down_revision = "b0011"
branch_labels = None
depends_on = None

OPEN = "delivered_at IS NULL AND discarded_at IS NULL"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "outbox",
        sa.Column("discard_reason", sa.Text(), server_default="", nullable=False),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_open",
            ["enterprise_id", "id"],
            unique=False,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )


def downgrade() -> None:
    """A discarded message stays unsent: parked (the code before this revision skips a
    parked message), its reason kept in `last_error`."""
    outbox = sa.table(
        "outbox",
        sa.column("failed_at", sa.DateTime(timezone=True)),
        sa.column("last_error", sa.Text),
        sa.column("discarded_at", sa.DateTime(timezone=True)),
        sa.column("discard_reason", sa.Text),
    )
    op.execute(
        outbox.update()
        .where(outbox.c.discarded_at.is_not(None))
        .values(
            failed_at=sa.func.coalesce(outbox.c.failed_at, outbox.c.discarded_at),
            last_error=sa.literal("discarded: ") + outbox.c.discard_reason,
        )
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_open")
        batch_op.drop_column("discard_reason")
        batch_op.drop_column("discarded_at")
