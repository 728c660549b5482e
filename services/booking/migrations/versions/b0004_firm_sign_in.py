"""the firm's own page: sign-in mobile, one-time codes, sessions, an order's clause refs

Revision ID: b0004
Revises: b0003
Create Date: 2026-11-27

Codes and sessions are kept only as digests (docs/booking.md "The firm's own page").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0004"
down_revision = "b0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("firm_cards") as batch:
        batch.add_column(
            sa.Column("sign_in_phone", sa.String(20), nullable=False, server_default="")
        )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("clause_refs", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "firm_sign_in_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("enterprise_id", sa.String(18), nullable=False),
        sa.Column("phone_digest", sa.String(64), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index(
        "ix_firm_sign_in_codes_firm", "firm_sign_in_codes", ["enterprise_id", "created_at"]
    )
    op.create_index("ix_firm_sign_in_codes_client", "firm_sign_in_codes", ["client", "created_at"])
    op.create_table(
        "firm_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("enterprise_id", sa.String(18), nullable=False),
        sa.Column("phone_digest", sa.String(64), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_firm_sessions_enterprise_id", "firm_sessions", ["enterprise_id"])


def downgrade() -> None:
    op.drop_table("firm_sessions")
    op.drop_table("firm_sign_in_codes")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("clause_refs")
    with op.batch_alter_table("firm_cards") as batch:
        batch.drop_column("sign_in_phone")
