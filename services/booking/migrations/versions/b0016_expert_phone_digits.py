"""experts' mobiles stored with spaces or dashes are stored as their 11 digits

Revision ID: b0016
Revises: b0015
Create Date: 2026-11-29

Since stop 33 an expert's mobile is stored as its digits (domain/experts.py `_phone`), so
that its mask shows the number's ends (138****5678). One stored before that with spaces or
dashes ("138-1234 5678") was masked to "***" for every reader but booking.admin until it
was saved again (review 66 point 4). The upgrade drops the spaces and dashes of every
stored mobile whose digits are then a mobile number; any other value is left as it is
(there is no number to recover from it). The downgrade leaves the digits: they are the
same number.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "b0016"
down_revision = "b0015"
branch_labels = None
depends_on = None

# domain/orders.PHONE and clean_phone as of this revision (a migration keeps its own
# copy: the domain's may change after it)
_PHONE = re.compile(r"1[3-9]\d{9}")
_SEPARATORS = re.compile(r"[\s\-]")


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, phone FROM experts")).all()
    for expert_id, phone in rows:
        digits = _SEPARATORS.sub("", phone or "")
        if digits != phone and _PHONE.fullmatch(digits):
            conn.execute(
                sa.text("UPDATE experts SET phone = :p WHERE id = :i"),
                {"p": digits, "i": expert_id},
            )


def downgrade() -> None:
    pass  # the digits are the same number
