"""the change feed has an epoch, in every cursor it gives

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29

A feed cursor was a bare position: after a restore from an older backup the feed gives
its positions again to other changes, and a follower whose saved cursor the restored feed
has since passed silently missed the changes in between; another deployment's cursor
(every feed counts from 1) was taken too (review 58 F1). The feed head now holds an
`epoch`, put in every cursor and made anew by a restore, and an `anchor` naming where the
head lives (PostgreSQL: the database's and the table's oids, which `pg_restore` changes),
so a restored head is recognised when it is first read (adapters/feed.py).

`bare_through`: the last position a bare cursor (given before this revision) may name.
NULL for a feed that gave cursors before (every one it gave is its own, up to its last
position), 0 for a feed that gave none (a new database: a bare cursor is another's).
A restore sets it to the restored feed's last position.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_COLUMNS = ("epoch", "bare_through", "anchor")
# adapters/feed.py's anchor of a head read where it was written
_PG_ANCHOR = (
    "(SELECT CAST(oid AS text) FROM pg_database WHERE datname = current_database())"
    " || ':' || CAST(CAST(CAST('feed_head' AS regclass) AS oid) AS text)"
)


def _has(name: str) -> bool:
    return any(c["name"] == name for c in sa.inspect(op.get_bind()).get_columns("feed_head"))


def upgrade() -> None:
    if not _has("epoch"):  # idempotent, as the migrations before it
        op.add_column("feed_head", sa.Column("epoch", sa.Integer(), nullable=True))
        op.add_column("feed_head", sa.Column("bare_through", sa.BigInteger(), nullable=True))
        op.add_column("feed_head", sa.Column("anchor", sa.String(64), nullable=True))
    bind = op.get_bind()
    row = bind.execute(sa.text("SELECT epoch, last_position FROM feed_head WHERE id = 1")).first()
    if row is None or row.epoch is not None:
        return
    gave = row.last_position > 0 or bind.execute(sa.text("SELECT 1 FROM changes LIMIT 1")).first()
    anchor = "sqlite"
    if bind.dialect.name == "postgresql":
        anchor = bind.execute(sa.text(f"SELECT {_PG_ANCHOR}")).scalar_one()
    bind.execute(
        sa.text(
            "UPDATE feed_head SET epoch = :epoch, bare_through = :bare, anchor = :anchor "
            "WHERE id = 1"
        ),
        {
            "epoch": 100_000 + secrets.randbelow(800_000),  # domain/changes.py new_epoch
            "bare": None if gave else 0,
            "anchor": anchor,
        },
    )


def downgrade() -> None:
    if _has("epoch"):
        with op.batch_alter_table("feed_head") as batch:
            for name in _COLUMNS:
                batch.drop_column(name)
