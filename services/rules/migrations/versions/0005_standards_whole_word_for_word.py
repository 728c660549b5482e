"""standards whole, word for word: stored profiles and hazards follow the renamed keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

The rulesets now encode every item of 部令第10号, CHEM2017 and GB 35181-2017 with one
fact key per alternative (CHANGELOG.md, "Standards in full"). This data migration
rewrites what the register keeps so it goes on working:

* stored profiles: a retired fact key becomes the keys its stored value unambiguously
  stands for (e.g. a stored `false` of an 或者 key becomes every alternative false); an
  ambiguous one is left as it is, so `reevaluate` names the firm for a person to re-enter;
* stored hazards: a clause ref whose clause was renumbered becomes its one successor;
  a ref with several successors (GM2023:12 → 12(1) or 12(2)) is left and named.

Decisions and events stay as they were recorded: they are history. The mapping is
frozen in `services.common.standards_renames` (data of this release, not of the
rulesets of the day). Firms needing a person are logged and listed in the
`reevaluation_runs.attention` of the next run.
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from alembic import op

from services.common.standards_renames import migrate_facts, migrate_ref

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    with op.batch_alter_table("reevaluation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attention", sa.JSON(), server_default="[]", nullable=False))
    bind = op.get_bind()
    firms = sa.table("firms", sa.column("enterprise_id", sa.String), sa.column("profile", sa.JSON))
    rows = bind.execute(sa.select(firms.c.enterprise_id, firms.c.profile)).all()
    for enterprise_id, profile in rows:
        data = json.loads(profile) if isinstance(profile, str) else profile
        changed, unresolved = _migrate_profile(data)
        if unresolved:
            _log.warning("firm %s needs a person: %s", enterprise_id, ", ".join(unresolved))
        if changed:
            bind.execute(
                firms.update().where(firms.c.enterprise_id == enterprise_id).values(profile=data)
            )


def _migrate_profile(data: dict) -> tuple[bool, list[str]]:  # type: ignore[type-arg]
    """Rewrite one stored profile in place; (changed, what a person must settle)."""
    facts = data.get("facts") or {}
    new_facts, ambiguous = migrate_facts(facts)
    changed = new_facts != facts
    data["facts"] = new_facts
    unresolved = [f"fact {k}" for k in ambiguous]
    for hazard in data.get("hazards") or []:
        ref, several = migrate_ref(hazard.get("clause_ref", ""))
        if several:
            unresolved.append(f"hazard {hazard.get('hazard_id')} cites {hazard['clause_ref']}")
        elif ref != hazard.get("clause_ref"):
            hazard["clause_ref"] = ref
            changed = True
    return changed, unresolved


def downgrade() -> None:
    with op.batch_alter_table("reevaluation_runs", schema=None) as batch_op:
        batch_op.drop_column("attention")
