"""audit log without its index by entity id

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28

No read of the rules register looks audit entries up by entity id: verifying reads a
chain (a firm's entries, `ix_audit_log_chain_id`) or the whole log in id order, and a
firm's history is its chain. Every decision writes two or three entries, whose entity
ids (decision and entry ids are random) land at random places of that index: measured
alone on SQLite, 4–8 µs of the writer's time an entry with a random id.
A person who needs one entity's entries finds them by its firm's chain.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_entity_id", table_name="audit_log", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_audit_log_entity_id", "audit_log", ["entity_id"], if_not_exists=True)
