"""Migration 0019: on PostgreSQL the change feed's region and publisher indexes on
`position` hold positioned rows only (a writer's rows, not yet positioned, cost neither),
and every read by position still finds an index; SQLite keeps its indexes. The ORM and
the migrations agree on both."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import IntegrityError

from services.common.clock import new_id, now
from services.common.migrations import alembic_config
from services.rules.adapters import feed, migrate
from services.rules.adapters.orm import changes, metadata

POSITIONED = {"ix_changes_region_position", "ix_changes_unpublished"}


def _run(engine: Engine, fn: Any, revision: str) -> None:
    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        fn(config, revision)


def _definitions(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'changes'")
        ).all()
    return {name: definition for name, definition in rows}


def _same_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def _change(position: int | None, region: str = "稠城街道") -> dict[str, Any]:
    return {
        "change_id": new_id(),
        "position": position,
        "enterprise_id": "91330782MA2000001K",
        "region": region,
        "kind": "decision_changed",
        "detail": {},
        "recorded_at": now(),
    }


def test_the_position_indexes_are_partial_on_postgresql_and_0019_goes_down_and_up(
    db_engine: Engine,
) -> None:
    _same_schema(db_engine)
    if db_engine.dialect.name != "postgresql":
        return
    partial = '("position" IS NOT NULL)'
    found = _definitions(db_engine)
    assert all(partial in found[name] for name in POSITIONED), found
    _run(db_engine, command.downgrade, "0018")
    found = _definitions(db_engine)
    assert set(found) >= POSITIONED and not any(partial in found[n] for n in POSITIONED)
    _run(db_engine, command.upgrade, "head")
    found = _definitions(db_engine)
    assert all(partial in found[name] for name in POSITIONED), found
    _same_schema(db_engine)


def test_positions_stay_unique_and_unpositioned_rows_many(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(insert(changes), [_change(None), _change(None), _change(7)])
    with pytest.raises(IntegrityError), db_engine.begin() as conn:
        conn.execute(insert(changes), [_change(7)])


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("region IN ('稠城街道') AND \"position\" > 3", "ix_changes_region_position"),
        (
            '"position" IS NOT NULL AND published_at IS NULL ORDER BY "position"',
            "ix_changes_unpublished",
        ),
    ],
    ids=["read-regions", "unpublished"],
)
def test_each_read_by_position_can_use_its_partial_index(
    db_engine: Engine, query: str, index: str
) -> None:
    """The planner proves the read's condition implies the partial index's predicate
    (`position IS NOT NULL`, and `published_at IS NULL` for the publisher's queue): were
    it not usable, the reads of a large feed would scan the whole table or its primary
    key. Asked with the other indexes on `position` dropped (in a transaction rolled
    back) and sequential scans priced out."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("the partial indexes are PostgreSQL's")
    with db_engine.begin() as conn:
        conn.execute(insert(changes), [_change(n if n % 2 else None) for n in range(40)])
    with db_engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text("ALTER TABLE changes DROP CONSTRAINT uq_changes_position"))
        for other in POSITIONED - {index}:
            conn.execute(text(f"DROP INDEX {other}"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0] for row in conn.execute(text(f"EXPLAIN SELECT id FROM changes WHERE {query}"))
        )
        transaction.rollback()
    assert f"Index Scan using {index}" in plan or f"Bitmap Index Scan on {index}" in plan, plan


def test_the_feed_reads_positioned_changes_through_the_partial_indexes(
    db_engine: Engine,
) -> None:
    """The feed's own reads (its store, the publisher's queue) over rows both positioned
    and not: the positioned ones, in order, as before."""
    with db_engine.begin() as conn:
        regions = ["稠城街道" if n % 3 else "北苑街道" for n in range(1, 13)]
        rows = [_change(n if n % 2 else None, regions[n - 1]) for n in range(1, 13)]
        conn.execute(insert(changes), rows)
    store = feed.FeedStore(db_engine)
    assert [c.position for c in store.read(0)] == [1, 3, 5, 7, 9, 11]
    assert [c.position for c in store.read(4, ["北苑街道"])] == [9]
    with db_engine.begin() as conn:
        assert [c.position for c in feed.unpublished(conn, 10)] == [1, 3, 5, 7, 9, 11]
        feed.mark_published(conn, [1, 3])
        assert [c.position for c in feed.unpublished(conn, 10)] == [5, 7, 9, 11]
