"""a visit remembers the idempotency key its RecordVisit was sent with

Revision ID: b0017
Revises: b0016
Create Date: 2026-11-29

A connection reset while RecordVisit committed answered UNAVAILABLE although the visit
was stored; the retry then met an order no longer DISPATCHED (FAILED_PRECONDITION) and the
expert, or the staff page after a double submit or a reload, never learned the visit id
(reviews 67 and 68). `visits.idempotency_key` is the key the client chose for the visit
form (RecordVisitRequest.idempotency_key): the same key for the same order again answers
the visit recorded. NULL for the visits recorded before this revision; "" for those sent
without a key since (the domain's Visit keeps a str).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0017"
down_revision = "b0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("visits", sa.Column("idempotency_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_column("idempotency_key")
