"""the feed head's anchor names the transaction that wrote it (PostgreSQL)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01

A data-only restore into the same database (TRUNCATE, then `pg_restore --data-only`)
kept the head's anchor (the database's and the table's oids) true, so the restored feed
kept its epoch and a follower whose cursor it had since passed silently missed changes
(review 61 R61-1). The anchor now also names the transaction that last wrote the head
row, which the row's `xmin` must match (adapters/feed.py `_PG_ANCHOR`). A head whose
anchor is 0017's (the oids alone, matching) gets the new form here; any other keeps
what it has and is renewed when first read, as before. Nothing on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# adapters/feed.py's, as of this revision
_PG_PLACE = (
    "(SELECT CAST(oid AS text) FROM pg_database WHERE datname = current_database())"
    " || ':' || CAST(CAST(CAST('feed_head' AS regclass) AS oid) AS text)"
)
_PG_ANCHOR = f"{_PG_PLACE} || ':' || CAST(feed_head.xmin AS text)"
_PG_WRITTEN = f"{_PG_PLACE} || ':' || CAST(txid_current() % 4294967296 AS text)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(f"UPDATE feed_head SET anchor = {_PG_WRITTEN} WHERE anchor = {_PG_PLACE}")
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(f"UPDATE feed_head SET anchor = {_PG_PLACE} WHERE anchor = {_PG_ANCHOR}")
        )
