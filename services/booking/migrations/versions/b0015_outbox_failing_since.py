"""an outbox message remembers when its deliveries began to fail, so that a firm held
behind one rules keeps refusing for now is listed with since when

Revision ID: b0015
Revises: b0014
Create Date: 2026-12-08

A firm whose earliest open message rules keeps refusing for now (RESOURCE_EXHAUSTED,
INTERNAL, a timeout, for that one event) waited for ever and was listed nowhere: `booking
outbox`, `sweep` and the worker's reminder named only the firms held behind a parked
message (review 60 F6). `outbox.failing_since` is the moment the message's first failed
delivery was recorded (cleared once delivered or requeued); a firm whose head has been
failing that long is listed as held (service_layer/outbox.py, HELD_AFTER_SECONDS).

At the upgrade an open message that has failed is given one: the moment it was parked, or,
for one refused for now, the moment it was written (its first failure came after it; we
know no better).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0015"
down_revision = "b0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE outbox SET failing_since = COALESCE(failed_at, created_at) "
        "WHERE delivered_at IS NULL AND discarded_at IS NULL AND last_error <> ''"
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("failing_since")
