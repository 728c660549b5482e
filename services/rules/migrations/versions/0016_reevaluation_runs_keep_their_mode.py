"""re-evaluation runs keep how they decide: `raised`, and how many firms a day ahead

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29

A run of `reevaluate --all` was found again by its day alone, so a run begun with
`--as-of` could be finished under the no-`--as-of` rule or the reverse (review 53 N11).
`raised` is the run's mode, fixed when it starts: true, its day was today or later then,
and a firm with a record dated the day after is decided as of that day; false, a past
day kept as given (domain/decision.py `register_day`). A run resumes only under its own
mode; runs recorded before have NULL (mode unknown) and are never resumed. `ahead`
counts the firms a run decided for the day after its own, which its summary reports.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("reevaluation_runs")}


def upgrade() -> None:
    present = _columns()
    with op.batch_alter_table("reevaluation_runs", schema=None) as batch_op:
        if "raised" not in present:
            batch_op.add_column(sa.Column("raised", sa.Boolean(), nullable=True))
        if "ahead" not in present:
            batch_op.add_column(
                sa.Column("ahead", sa.Integer(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    present = _columns()
    with op.batch_alter_table("reevaluation_runs", schema=None) as batch_op:
        if "ahead" in present:
            batch_op.drop_column("ahead")
        if "raised" in present:
            batch_op.drop_column("raised")
