"""renumbered clauses: tickets and undelivered outbox events follow the standards release

Revision ID: b0003
Revises: b0002
Create Date: 2026-11-27

The rules service renumbered some clauses when it encoded the standards in full
(CHANGELOG.md). A ticket's clause ref, and the hazard ref inside an outbox event not yet
delivered to rules, becomes its one successor (`services.common.standards_renames`,
frozen for this release). A ref with several successors (GM2023:12 → 12(1) or 12(2))
cannot be chosen for a record: it is left as it is and logged (the ticket runs its course
under the old ref; rules no longer serves that clause's text, so the page shows the
ref); delivered events are history and stay as they were sent.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from alembic import op

from services.common.standards_renames import migrate_ref

revision = "b0003"
down_revision = "b0002"
branch_labels = None
depends_on = None

_log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    tickets = sa.table("tickets", sa.column("id", sa.String), sa.column("clause_ref", sa.String))
    for ticket_id, ref in bind.execute(sa.select(tickets.c.id, tickets.c.clause_ref)).all():
        new, several = migrate_ref(ref)
        if several:
            _log.warning("ticket %s cites %s, renumbered into several items", ticket_id, ref)
        elif new != ref:
            bind.execute(tickets.update().where(tickets.c.id == ticket_id).values(clause_ref=new))
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.Integer),
        sa.column("payload", sa.JSON),
        sa.column("delivered_at", sa.DateTime),
    )
    waiting = bind.execute(
        sa.select(outbox.c.id, outbox.c.payload).where(outbox.c.delivered_at.is_(None))
    ).all()
    for message_id, payload in waiting:
        data = json.loads(payload) if isinstance(payload, str) else dict(payload)
        hazard = data.get("hazard") or {}
        ref = hazard.get("clause_ref", "")
        new, several = migrate_ref(ref)
        if several:
            _log.warning("outbox message %s cites %s, renumbered into several", message_id, ref)
        elif new != ref:
            data["hazard"] = {**hazard, "clause_ref": new}
            bind.execute(outbox.update().where(outbox.c.id == message_id).values(payload=data))


def downgrade() -> None:
    """Nothing to undo: the renamed refs are the new numbering."""
