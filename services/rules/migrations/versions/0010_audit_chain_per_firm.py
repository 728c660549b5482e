"""audit chain per firm: writers of different firms no longer wait on one head row

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

Entries written before stay on the global chain (chain "", head `audit_head`), still
verified as they were hashed; every new entry goes on its firm's chain, whose head is a
row of `audit_chains`.
"""

from __future__ import annotations

from services.common.audit_migrations import add_audit_chains, drop_audit_chains

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_audit_chains(64)


def downgrade() -> None:
    drop_audit_chains("per-firm")
