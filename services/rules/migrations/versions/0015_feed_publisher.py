"""the feed head names the bus its changes are published to

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29

A replica started without `--nats` on a database whose changes another replica publishes
to NATS marked every positioned change delivered, the ones that replica had not yet
published included: they never reached the bus (review 49 F1). The first replica to
publish now writes the bus's name into `feed_head.publisher`; a replica without a
publisher then leaves the changes to it (`rules forget-feed-publisher` clears the name
when the bus is given up).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _has_publisher() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("feed_head")
    return any(c["name"] == "publisher" for c in columns)


def upgrade() -> None:
    if not _has_publisher():  # idempotent, as the migrations before it
        op.add_column("feed_head", sa.Column("publisher", sa.String(200), nullable=True))


def downgrade() -> None:
    if _has_publisher():
        with op.batch_alter_table("feed_head") as batch:
            batch.drop_column("publisher")
