"""the change feed's two plain indexes on `position` hold positioned rows only (PostgreSQL)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29

A change is written without a position (its writer's transaction) and positioned once
committed, under the feed head's lock (adapters/feed.py). Every read by position asks
for positioned rows (`position > cursor`, `position IS NOT NULL AND published_at IS
NULL`, `position IN (…)`), yet the indexes on `position` took an entry for every row
written, with a NULL position, and another once it was positioned. On PostgreSQL the
region's and the publisher's queue's are now partial (`WHERE position IS NOT NULL`): a
writer no longer inserts into them, and the positioning update puts the row there as
before. The unique constraint on `position` stays whole (a partial unique index is no
constraint, which the ORM's schema, shared with SQLite, declares). `reevaluate --all`,
which writes one or two changes a firm, pays two index inserts fewer for each
(docs/benchmarks.md, "Stop 35"). SQLite keeps its indexes (about 1 % of its run, stop
30).
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_changes_region_position")
    op.execute(
        'CREATE INDEX ix_changes_region_position ON changes (region, "position")'
        ' WHERE "position" IS NOT NULL'
    )
    op.execute("DROP INDEX ix_changes_unpublished")
    op.execute(
        'CREATE INDEX ix_changes_unpublished ON changes ("position")'
        ' WHERE "position" IS NOT NULL AND published_at IS NULL'
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_changes_unpublished")
    op.execute(
        'CREATE INDEX ix_changes_unpublished ON changes ("position") WHERE published_at IS NULL'
    )
    op.execute("DROP INDEX ix_changes_region_position")
    op.execute('CREATE INDEX ix_changes_region_position ON changes (region, "position")')
