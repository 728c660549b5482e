"""a proof photo remembers the idempotency key of the form it was sent with

Revision ID: b0018
Revises: b0017
Create Date: 2026-11-29

Without JavaScript a double tap on the ticket page's 提交整改 (or a resubmit after a lost
answer) stored two proofs of fix, each counting against the round's cap (review 62).
`photos.idempotency_key` is the key the proof form was drawn with: the same key for the
same ticket again stores nothing and answers the ticket as it is. NULL for the photos
stored before this revision, for finding photos, and for proofs sent without a key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0018"
down_revision = "b0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("idempotency_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.drop_column("idempotency_key")
