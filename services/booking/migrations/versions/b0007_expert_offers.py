"""dispatch's rows of each expert: offered half-days, domains, regions, conflicts

Revision ID: b0007
Revises: b0006
Create Date: 2026-11-27

Dispatch used to read every expert with their whole offer and every assignment for each
order. These tables hold the same facts as rows (copied from the experts' JSON columns,
which stay the record; adapters/expert_offers.py keeps them equal on every write), so one
query finds the experts free in an order's half-days; two indexes on assignments answer
its per-expert counts. Upgrade fills the rows from the experts stored; downgrade drops
them (the JSON columns never stopped being written).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0007"
down_revision = "b0006"
branch_labels = None
depends_on = None

_TABLES = (
    ("expert_slots", "slot", sa.String(length=16), "slots"),
    ("expert_domains", "domain", sa.String(length=64), "domains"),
    ("expert_regions", "region", sa.String(length=100), "regions"),
    ("expert_conflicts", "enterprise_id", sa.String(length=18), "conflicts"),
)


def upgrade() -> None:
    for name, column, kind, _ in _TABLES:
        extra = [sa.Column("day", sa.Date(), nullable=False)] if name == "expert_slots" else []
        op.create_table(
            name,
            sa.Column("expert_id", sa.String(length=64), nullable=False),
            sa.Column(column, kind, nullable=False),
            *extra,
            sa.ForeignKeyConstraint(
                ["expert_id"], ["experts.id"], name=op.f(f"fk_{name}_expert_id_experts")
            ),
            sa.PrimaryKeyConstraint("expert_id", column, name=op.f(f"pk_{name}")),
        )
    op.create_index("ix_assignments_expert_day", "assignments", ["expert_id", "day"])
    op.create_index("ix_assignments_expert_created", "assignments", ["expert_id", "created_at"])
    _fill()


def _fill() -> None:
    """Copy the stored experts' offers into the new rows."""
    from services.booking.adapters.expert_offers import offer_rows

    bind = op.get_bind()
    meta = sa.MetaData()
    experts = sa.Table(
        "experts",
        meta,
        sa.Column("id", sa.String(64)),
        *(sa.Column(field, sa.JSON) for *_, field in _TABLES),
    )
    tables = {name: sa.Table(name, meta, autoload_with=bind) for name, *_ in _TABLES}
    fields = [(name, field) for name, _, _, field in _TABLES]
    for expert in bind.execute(sa.select(experts)).mappings():
        for name, field in fields:
            rows = offer_rows(field, expert["id"], expert[field] or [])
            if rows:
                bind.execute(sa.insert(tables[name]), rows)


def downgrade() -> None:
    op.drop_index("ix_assignments_expert_created", table_name="assignments")
    op.drop_index("ix_assignments_expert_day", table_name="assignments")
    for name, *_ in reversed(_TABLES):
        op.drop_table(name)
