"""staff accounts and sessions (the staff pages)

Revision ID: b0005
Revises: b0004
Create Date: 2026-11-27

Accounts of inspectors, experts, supervisors and admins (argon2id password hashes, the
lockout counters), and browser sessions: only SHA-256 digests of the cookie's secret and
of its CSRF token are stored. Sessions, CSRF state and lockouts live here so that they
hold across processes and replicas.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0005"
down_revision = "b0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("username", sa.String(length=40), nullable=False),
        sa.Column("display_name", sa.String(length=50), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=100), server_default="", nullable=False),
        sa.Column("expert_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("csrf_digest", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=40), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_digest"),
    )
    op.create_index("ix_staff_sessions_username", "staff_sessions", ["username"])
    op.create_index("ix_staff_sessions_last_seen_at", "staff_sessions", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_staff_sessions_last_seen_at", table_name="staff_sessions")
    op.drop_index("ix_staff_sessions_username", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_table("staff_accounts")
