"""audit chains per firm and per expert: booking's writers no longer wait on one head row

Revision ID: b0008
Revises: b0007
Create Date: 2026-11-27

Every booking commit used to lock the single `audit_head` row to append its entries. Now
a firm's records (its card, orders, tickets) go on the chain "firm:<enterprise id>" and an
expert's (the expert, their assignments and visits) on "expert:<expert id>", each with its
head in `audit_chains` (adapters/orm.py); photos and staff accounts stay on the global
chain. Entries written before stay on the global chain (chain "", head `audit_head`),
still verified as they were hashed. Upgrade also writes an empty head (no entry yet: the
genesis hash, last id 0) for every firm and expert stored, so that two first writers of
one chain never race to create its head.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.audit_migrations import add_audit_chains, drop_audit_chains

revision = "b0008"
down_revision = "b0007"
branch_labels = None
depends_on = None

CHAIN_LENGTH = 80  # adapters/orm.py CHAIN_LENGTH
GENESIS = "0" * 64


def upgrade() -> None:
    heads = add_audit_chains(CHAIN_LENGTH)
    bind = op.get_bind()
    keys = [f"firm:{r[0]}" for r in bind.execute(sa.text("SELECT enterprise_id FROM firm_cards"))]
    keys += [f"expert:{r[0]}" for r in bind.execute(sa.text("SELECT id FROM experts"))]
    if keys:
        op.bulk_insert(heads, [{"chain": k, "last_id": 0, "last_hash": GENESIS} for k in keys])


def downgrade() -> None:
    drop_audit_chains("per-key")
