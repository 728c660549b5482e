"""an outbox delivery claims its message for a while instead of holding a transaction open
while it waits on the rules service

Revision ID: b0014
Revises: b0013
Create Date: 2026-12-05

The outbox worker used to call the rules service inside its write transaction; on SQLite
that held the process's write lock for the whole call, so a stalled rules service made
booking's own writes run out of their deadlines (review 57 D4). A delivery now claims the
firm's earliest open message in one short transaction, calls rules with none open, and
records the answer in a second one (service_layer/outbox.py):

- `outbox.claimed_until`: the claim's end; until then no other delivery (another replica,
  a `sweep`) sends the message, or anything of its firm after it. A claim left by a
  process that died ends by itself;
- `outbox.claimed_by`: whose claim it is (host, process, a token of the delivery), so a
  delivery that outlived its claim does not record over another's.

No row is changed: no message is claimed at the upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0014"
down_revision = "b0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "outbox", sa.Column("claimed_by", sa.String(128), server_default="", nullable=False)
    )


def downgrade() -> None:
    """A claim still running is forgotten: the code before this revision sends the
    message again (rules applies an event id once)."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("claimed_until")
