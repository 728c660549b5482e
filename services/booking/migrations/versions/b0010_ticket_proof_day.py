"""a ticket keeps the day its latest proof was sent (when a late closure is judged)

Revision ID: b0010
Revises: b0009
Create Date: 2026-12-01

`tickets.proof_submitted_on`: the day (Asia/Shanghai) the firm sent the ticket's latest
proof. A passed recheck is late when that proof came after the deadline in force, or the
ticket was reported overdue (domain/tickets.py `closes_late`), no longer when the recheck
came after the deadline. A ticket waiting for its recheck gets the day of its latest
move into SUBMITTED from its history; the others need none (an OPEN one sends a proof
first, a VERIFIED one was judged). Review 54 made the day the round's first proof, not
its latest: b0011 sets it so for the tickets in flight.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

from services.common.instants import in_shanghai

revision = "b0010"
down_revision = "b0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("proof_submitted_on", sa.Date(), nullable=True))
    tickets = sa.table(
        "tickets",
        sa.column("id", sa.String),
        sa.column("status", sa.String),
        sa.column("proof_submitted_on", sa.Date),
    )
    moves = sa.table(
        "ticket_transitions",
        sa.column("ticket_id", sa.String),
        sa.column("to_status", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    latest = (
        sa.select(moves.c.ticket_id, sa.func.max(moves.c.at))
        .join(tickets, tickets.c.id == moves.c.ticket_id)
        .where(tickets.c.status == "submitted", moves.c.to_status == "submitted")
        .group_by(moves.c.ticket_id)
    )
    bind = op.get_bind()
    for ticket_id, at in bind.execute(latest).all():
        # SQLite answers the aggregate as text; in_shanghai takes a naive instant as UTC
        stored = datetime.fromisoformat(at) if isinstance(at, str) else at
        day = in_shanghai(stored).date()
        bind.execute(
            tickets.update().where(tickets.c.id == ticket_id).values(proof_submitted_on=day)
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("proof_submitted_on")
