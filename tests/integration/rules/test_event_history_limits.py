"""A ReportEvent group's bounded history reads (review 26): each firm's newest
decisions and quiet events, read for the whole group in one query each, equal what the
one-firm reads give past the limit and with equal instants (ties broken by id); a
group's answers equal one-by-one answers over long histories; the answers kept for
replays are what each event answered; a group's reads in one pipeline
(BatchRegister.group_reads) equal the reads one query at a time; migrations 0012 and
0013 (indexes) go up, down and up again on a populated register."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.common.instants import as_utc
from services.rules.entrypoints import grpc_server
from services.rules.service_layer import register_handlers as rh
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import Clock, upsert
from tests.integration.rules.test_events import accident, complaint, profile_updated
from tests.integration.rules.test_reads_after_locks import _item
from tests.support import profile, uscc


def _long_history(stub: Any, engine: Engine) -> list[str]:
    """Firm 1: 31 decisions, each granting or revoking (entries granted beyond the
    window of 20 and closed inside it), complaints interleaved; firm 2: one decision and
    a complaint; firm 3: stored without any decision, entry or event."""
    from tests.integration.rules.test_events import report

    for n in (1, 2, 3):
        upsert(stub, profile(n))
    for k in range(15):
        report(stub, profile_updated(1, f"off-{k}", profile(1, blacklisted=True)))
        report(stub, complaint(1, f"c-{k}"))
        report(stub, profile_updated(1, f"on-{k}", profile(1, blacklisted=False)))
    report(stub, complaint(2, "c-only"))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE firms SET decision_id = NULL WHERE enterprise_id = :i"), {"i": uscc(3)}
        )
        for table in ("whitelist_entries", "decisions"):
            conn.execute(text(f"DELETE FROM {table} WHERE enterprise_id = :i"), {"i": uscc(3)})
    return [uscc(n) for n in (1, 2, 3)]


def _compare_reads(engine: Engine, ids: list[str]) -> None:
    causing, quiet = rh.CAUSING_EVENTS, rh.QUIET_EVENTS
    limit = rh.DEFAULT_HISTORY
    with UnitOfWork(engine) as uow:
        register = uow.register
        histories = register.recent_histories(ids, limit, causing)
        items = register.recent_event_items_of(ids, quiet, limit)
        for i in ids:
            one = register.recent_history(i, limit, causing)
            group_ids = [d.decision_id for d in histories[i][0]]
            one_ids = [d.decision_id for d in one[0]]
            assert set(group_ids) == set(one_ids), ("which", i)
            assert group_ids == one_ids, ("order", i)
            assert histories[i] == one, i
            assert items[i] == register.recent_event_items(i, quiet, limit), i
            grouped = rh._Recent(limit, *histories[i], items[i]).items()
            assert grouped == rh._Recent.read(uow, i, limit).items(), i
    _compare_group_reads(engine, ids)


def _compare_group_reads(engine: Engine, ids: list[str]) -> None:
    """BatchRegister.group_reads (one pipeline on PostgreSQL, with the firms' lock)
    answers what the reads one query at a time answer: the firms and their open entries,
    the recorded event keys, the histories and quiet events."""
    causing, quiet = rh.CAUSING_EVENTS, rh.QUIET_EVENTS
    limit = rh.DEFAULT_HISTORY
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(text("SELECT source, event_id FROM events"))]
    source = stored[0][0]
    # (source, the last event_id) is recorded but not asked for: one array of the
    # sources and one of the event_ids (PostgreSQL) find it, and it must be left out
    keys = [stored[0], ("someone-else", stored[-1][1]), (source, "never-sent")]
    with UnitOfWork(engine) as uow:
        recorded = uow.register.recorded_events(keys)
        assert recorded == {stored[0]}
        histories = uow.register.recent_histories(ids, limit, causing)
        items = uow.register.recent_event_items_of(ids, quiet, limit)
        entries = {i: uow.register.open_entry(i) for i in ids}
        firms = {i: uow.register.firm(i) for i in ids}
    with UnitOfWork(engine) as uow:
        read = uow.batch.group_reads([*ids, "no-such-firm", ids[0]], keys, limit, causing, quiet)
    assert [f.enterprise_id for f, _ in read.firms] == sorted(ids)
    for f, entry in read.firms:
        i = f.enterprise_id
        stored = firms[i]
        assert (f.name, f.region, f.status, f.risk_level, f.decision_id) == (
            stored.name,
            stored.region,
            stored.status,
            stored.risk_level,
            stored.decision_id,
        ), i
        assert f.profile == stored.profile, i
        assert entry == entries[i], i
    assert read.recorded == recorded
    assert read.histories == histories
    assert read.quiet == items


@pytest.mark.parametrize("ties", ["none", "all", "pairs"])
def test_group_reads_equal_one_by_one_reads_past_the_limit(
    register_stub: Any, db_engine: Engine, ties: str
) -> None:
    ids = _long_history(register_stub, db_engine)
    with db_engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT id, decided_at FROM decisions WHERE enterprise_id = :i ORDER BY decided_at"
            ),
            {"i": ids[0]},
        ).all()
        assert len(rows) == 31
        for k, (decision_id, at) in enumerate(rows):
            if ties == "all":
                at = rows[0][1]
            elif ties == "pairs":
                at = rows[k - k % 2][1]
            else:
                continue
            conn.execute(
                text("UPDATE decisions SET decided_at = :at WHERE id = :d"),
                {"at": at, "d": decision_id},
            )
    _compare_reads(db_engine, ids)


def _norm_entry(e: Any, head: str) -> Any:
    if e is None:
        return None
    return (
        e.name,
        e.region,
        e.granted_on,
        e.valid_until,
        e.revoked_on,
        e.revoked_reason.replace(head, "H"),
    )


def _norm(view: Any, head: str) -> Any:
    if isinstance(view, Exception):
        return type(view).__name__
    items = [
        (
            h.kind,
            h.status,
            h.risk_level,
            h.as_of,
            h.ruleset_version,
            h.reason.replace(head, "H"),
            h.event_id.replace(head, "H"),
            h.event_kind,
            _norm_entry(h.entry, head),
        )
        for h in view.history
    ]
    return (items, _norm_entry(view.entry, head), view.duplicate, view.decision.status)


def test_a_groups_answers_equal_one_by_one_with_long_histories(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """Several events of a firm with 31 decisions (grants and revocations across the
    window's edge, complaints interleaved) in one group, beside a firm with one decision
    and one with none: each answer as the same event one by one gives."""
    from tests.integration.rules.test_event_groups import GROUPED, ONE_BY_ONE, _as

    ctx = grpc_server.context_from(rulebook, Clock())
    for head in (ONE_BY_ONE, GROUPED):
        for n in (1, 2, 3):
            upsert(register_stub, profile(n, enterprise_id=uscc(n, head)))
        for k in range(15):
            for ev in (
                profile_updated(1, f"off-{k}", profile(1, blacklisted=True)),
                complaint(1, f"c-{k}"),
                profile_updated(1, f"on-{k}", profile(1, blacklisted=False)),
            ):
                rh.apply_reported(UnitOfWork(db_engine), ctx, _item(ctx, _as(head, ev)))
        rh.apply_reported(UnitOfWork(db_engine), ctx, _item(ctx, _as(head, complaint(2, "c-only"))))
        with db_engine.begin() as conn:
            i = uscc(3, head)
            conn.execute(
                text("UPDATE firms SET decision_id = NULL WHERE enterprise_id = :i"), {"i": i}
            )
            for table in ("whitelist_entries", "decisions"):
                conn.execute(text(f"DELETE FROM {table} WHERE enterprise_id = :i"), {"i": i})
    sent = [
        complaint(1, "g1"),
        profile_updated(1, "g2", profile(1, blacklisted=True)),  # revokes
        complaint(3, "g3"),  # decides the firm stored without a decision
        complaint(2, "g4"),
        *[complaint(1, f"g5-{k}") for k in range(5)],
        profile_updated(1, "g6", profile(1, blacklisted=False)),  # grants
        accident(3, "g7"),
        complaint(1, "g1"),  # replay
        accident(1, "g8"),  # revokes
        *[complaint(1, f"g9-{k}") for k in range(17)],  # pushes the grant out
        complaint(3, "g3"),  # replay
    ]
    plain = [
        _norm(
            rh.apply_reported(UnitOfWork(db_engine), ctx, _item(ctx, _as(ONE_BY_ONE, e))),
            ONE_BY_ONE,
        )
        for e in sent
    ]
    together = rh.apply_group(
        lambda: UnitOfWork(db_engine), ctx, [_item(ctx, _as(GROUPED, e)) for e in sent]
    )
    for n, (a, b) in enumerate(zip(plain, [_norm(v, GROUPED) for v in together], strict=True)):
        assert a == b, (n, sent[n].event_id)
    with UnitOfWork(db_engine) as uow:  # the last answers equal the history read now
        for n in (1, 2, 3):
            mine = [v for v, e in zip(together, sent, strict=True) if e.enterprise_id == uscc(n)]
            last = [v for v in mine if not v.duplicate][-1]
            read = rh.history_of(uow, uscc(n, GROUPED), rh.DEFAULT_HISTORY)
            utc = [(as_utc(h.recorded_at), replace(h, recorded_at=None)) for h in last.history]
            assert utc == [(as_utc(h.recorded_at), replace(h, recorded_at=None)) for h in read], n


def test_the_kept_answers_are_what_each_event_answered(
    register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    """Without asdict's deep copy: each stored result is its own event's snapshot, and a
    replay after the commit answers the first answer unchanged even when the answers
    given were changed afterwards by their holders."""
    from sqlalchemy import select as sel

    from services.rules.adapters.orm import events as events_t

    ctx = grpc_server.context_from(rulebook, Clock())
    upsert(register_stub, profile(1))
    sent = [
        complaint(1, "m1"),
        profile_updated(1, "m2", profile(1, blacklisted=True)),
        complaint(1, "m3"),
        profile_updated(1, "m4", profile(1, blacklisted=False)),
        complaint(1, "m1"),
    ]
    answers = rh.apply_group(lambda: UnitOfWork(db_engine), ctx, [_item(ctx, e) for e in sent])
    snaps = [rh._snapshot(a) for a in answers]
    with db_engine.connect() as conn:
        stored = dict(conn.execute(sel(events_t.c.event_id, events_t.c.result)).all())
    for e, snap in zip(sent[:4], snaps[:4], strict=True):
        assert stored[e.event_id] == snap, e.event_id
    for a in answers:  # holders change what they were given
        a.history.clear()
        a.profile.accidents.append("x") if isinstance(a.profile.accidents, list) else None
    for e, snap in zip(sent[:4], snaps[:4], strict=True):
        again = rh.apply_reported(UnitOfWork(db_engine), ctx, _item(ctx, e))
        assert again.duplicate
        assert rh._snapshot(again) == snap, e.event_id


# migrations that add indexes: revision -> (the one before it, the indexes it adds)
INDEX_MIGRATIONS = {
    "0012": ("0011", {"ix_whitelist_granted_by", "ix_whitelist_closed_by", "ix_events_decision"}),
    "0013": ("0012", {"ix_events_firm_kind"}),
}


@pytest.mark.parametrize("revision", sorted(INDEX_MIGRATIONS))
def test_an_index_migration_goes_up_down_up_on_a_populated_register(
    revision: str, register_stub: Any, db_engine: Engine, rulebook: Any
) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from services.common.migrations import alembic_config
    from services.rules.adapters import migrate
    from services.rules.adapters.orm import metadata

    ids = _long_history(register_stub, db_engine)
    before = {}
    with db_engine.connect() as conn:
        for t in ("decisions", "whitelist_entries", "events"):
            before[t] = conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()

    def run(fn: Any, rev: str) -> None:
        config = alembic_config(migrate.MIGRATIONS)
        with db_engine.begin() as connection:
            config.attributes["connection"] = connection
            fn(config, rev)

    def indexes() -> set[str]:
        insp = inspect(db_engine)
        return {i["name"] for t in ("whitelist_entries", "events") for i in insp.get_indexes(t)}

    previous, new = INDEX_MIGRATIONS[revision]
    assert new <= indexes()
    run(command.downgrade, previous)
    assert migrate.current_revision(db_engine) == previous
    assert not (new & indexes())
    _compare_reads(db_engine, ids)  # the reads work without the indexes too
    run(command.upgrade, revision)
    assert migrate.current_revision(db_engine) == revision
    assert new <= indexes()
    run(command.upgrade, "head")
    with db_engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        for t, n in before.items():
            assert conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() == n
    _compare_reads(db_engine, ids)


# README "Operations": the statements an operator may run before upgrading a large register
PREBUILT = {
    "ix_whitelist_granted_by": "whitelist_entries (granted_decision_id)",
    "ix_whitelist_closed_by": "whitelist_entries (closed_decision_id)",
    "ix_events_decision": "events (decision_id)",
    "ix_events_firm_kind": "events (enterprise_id, kind, received_at)",
}


def test_index_migrations_keep_indexes_an_operator_built_beforehand(
    register_stub: Any, db_engine: Engine
) -> None:
    """0012 and 0013 create their indexes IF NOT EXISTS: built beforehand (CONCURRENTLY on
    PostgreSQL, outside a transaction, as README says), the upgrade keeps them."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from services.common.migrations import alembic_config
    from services.rules.adapters import migrate

    _long_history(register_stub, db_engine)
    config = alembic_config(migrate.MIGRATIONS)
    with db_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")
    readme = Path(__file__).resolve().parents[3].joinpath("README.md").read_text("utf-8")
    pg = db_engine.dialect.name == "postgresql"
    with db_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, target in PREBUILT.items():
            assert name in readme and target in " ".join(readme.split())
            concurrently = "CONCURRENTLY " if pg else ""
            conn.execute(text(f"CREATE INDEX {concurrently}IF NOT EXISTS {name} ON {target}"))
    migrate.upgrade(db_engine)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert migrate.current_revision(db_engine) == head
    insp = inspect(db_engine)
    names = {i["name"] for t in ("whitelist_entries", "events") for i in insp.get_indexes(t)}
    assert set(PREBUILT) <= names
