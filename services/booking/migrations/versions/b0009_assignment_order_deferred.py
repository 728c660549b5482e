"""a booking's foreign key to its order is checked at the commit

Revision ID: b0009
Revises: b0008
Create Date: 2026-11-27

CreateOrder dispatches a new order before it writes the order's row (once, in the state
dispatch leaves it: adapters/repository.py `add_order`), so the booking it inserts under
the expert's lock names an order whose row comes later in the same transaction.
`fk_assignments_order_id_orders` becomes DEFERRABLE INITIALLY DEFERRED: checked at the
commit, still on every row. PostgreSQL alters the constraint in place; SQLite, which
cannot, copies the table (Alembic's batch mode; its indexes go with it).
"""

from __future__ import annotations

from alembic import op

revision = "b0009"
down_revision = "b0008"
branch_labels = None
depends_on = None

CONSTRAINT = "fk_assignments_order_id_orders"


def _deferred(deferred: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        when = "DEFERRABLE INITIALLY DEFERRED" if deferred else "NOT DEFERRABLE"
        op.execute(f"ALTER TABLE assignments ALTER CONSTRAINT {CONSTRAINT} {when}")
        return
    with op.batch_alter_table("assignments", recreate="always") as batch:
        batch.drop_constraint(CONSTRAINT, type_="foreignkey")
        batch.create_foreign_key(
            CONSTRAINT,
            "orders",
            ["order_id"],
            ["id"],
            deferrable=True if deferred else None,
            initially="DEFERRED" if deferred else None,
        )


def upgrade() -> None:
    _deferred(True)


def downgrade() -> None:
    _deferred(False)
