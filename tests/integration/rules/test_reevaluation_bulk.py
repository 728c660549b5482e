"""The batch re-evaluation's multi-row writes against the per-call path, and runs split
into ranges (`reevaluate --all --processes N`), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, Text, cast, insert, select, update

from services.common import processes, workload
from services.common.audit import verify
from services.common.clock import new_id, now
from services.rules.adapters import bulk_reevaluation
from services.rules.adapters.orm import (
    audit_head,
    audit_log,
    changes,
    decisions,
    firms,
    reevaluation_runs,
    whitelist_entries,
)
from services.rules.domain.profile import parse_profile, profile_to_data
from services.rules.domain.register import ReevaluationRun
from services.rules.entrypoints.grpc_server import context_from
from services.rules.service_layer.reevaluation import reevaluate_all, run_range
from services.rules.service_layer.register_handlers import decide_and_store, stored_profile
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import upsert
from tests.support import ROOT, profile, uscc

DAY = date(2026, 7, 1)
BLOCKED = {"gen.no_hazard_ledger": True}  # a breach that keeps a firm off the white list
# (upsert as_of, facts at upsert, facts stored before the run): what re-evaluation meets
CASES = [
    ("2025-06-30", {}, {}),  # entry ended the day before: expired, granted anew
    ("2026-03-01", {}, {}),  # entry still valid: extended
    ("2026-03-01", {}, BLOCKED),  # entry open, now blocked: revoked
    ("2025-06-30", {}, BLOCKED),  # entry ended and blocked: expired only
    ("2026-03-01", BLOCKED, BLOCKED),  # never listed, same decision: no feed change
    ("2026-03-01", BLOCKED, {}),  # never listed, now clean: granted
]
HEADS = ("91330782MA2", "91330782MB2")  # group A (per-call path) sorts before B (batch)
RENAMED = 4  # this case's firm columns name another name and region than its profile


def _firm_id(head: str, n: int) -> str:
    return uscc(n, head)


def _load(stub: Any, engine: Engine) -> None:
    """Both groups: the same firms, histories and stored profiles, under other ids."""
    for head in HEADS:
        for n, (as_of, facts, stored_facts) in enumerate(CASES, start=1):
            data = profile(n, enterprise_id=_firm_id(head, n), facts=facts)
            upsert(stub, data, as_of=as_of)
            if stored_facts != facts or n == 2:  # as if changed under a rule update
                with engine.begin() as conn:
                    stored = conn.execute(
                        select(firms.c.profile).where(
                            firms.c.enterprise_id == data["enterprise_id"]
                        )
                    ).scalar_one()
                    stored = {**stored, "facts": stored_facts}
                    if n == 2:  # stored before a field existed: re-stored in full
                        del stored["penalties"]
                    conn.execute(
                        update(firms)
                        .where(firms.c.enterprise_id == data["enterprise_id"])
                        .values(profile=stored)
                    )
            if n == RENAMED:  # the firm's columns out of step with its stored profile
                with engine.begin() as conn:
                    conn.execute(
                        update(firms)
                        .where(firms.c.enterprise_id == data["enterprise_id"])
                        .values(name="旧名称 old name", region="旧区域 old region")
                    )


def _rows(
    engine: Engine,
    head: str,
    count: int = len(CASES),
    other: str = HEADS[0],
    renamed: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the groups' firms (1..count) have, ids replaced by what they mean (the
    `other` group's firm id, the n-th decision or entry of the firm; `renamed`: more
    texts to replace, such as event ids), instants left out; audit entries per firm
    sorted (the ORM's flush order of updates is not defined), feed rows in feed order."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for n in range(1, count + 1):
            firm = _firm_id(head, n)
            names = {firm: _firm_id(other, n), **(renamed or {})}
            ds = conn.execute(
                select(decisions, *_as_stored(decisions.c.payload))
                .where(decisions.c.enterprise_id == firm)
                .order_by(decisions.c.decided_at)
            ).all()
            names.update({d.id: f"decision{i}" for i, d in enumerate(ds)})
            es = conn.execute(
                select(whitelist_entries)
                .where(whitelist_entries.c.enterprise_id == firm)
                .order_by(whitelist_entries.c.granted_on)
            ).all()
            names.update({e.id: f"entry{i}" for i, e in enumerate(es)})
            f = conn.execute(
                select(firms, *_as_stored(firms.c.profile)).where(firms.c.enterprise_id == firm)
            ).one()
            audit = conn.execute(
                select(audit_log, *_as_stored(audit_log.c.before, audit_log.c.after))
                .where(audit_log.c.chain == firm)
                .order_by(audit_log.c.id)
            ).all()
            feed = conn.execute(
                select(changes, *_as_stored(changes.c.detail))
                .where(changes.c.enterprise_id == firm)
                .order_by(changes.c.id)
            ).all()
            record = {
                "firm": _without(f, "created_at", "updated_at"),
                "decisions": [_without(d, "decided_at") for d in ds],
                "entries": [_without(e) for e in es],
                "audit": [_without(a, "id", "at", "prev_hash", "hash") for a in audit],
                "feed": [
                    _without(c, "id", "change_id", "position", "recorded_at", "published_at")
                    for c in feed
                ],
            }
            text = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
            for old, new in names.items():
                text = text.replace(old, new)
            out[str(n)] = json.loads(text)
            out[str(n)]["audit"].sort(key=lambda a: json.dumps(a, sort_keys=True))
    return out


def _as_stored(*columns: Any) -> list[Any]:
    """JSON columns as the database holds them (SQL NULL and JSON null differ there)."""
    return [cast(c, Text).label(f"{c.name}_stored") for c in columns]


def _without(row: Any, *left_out: str) -> dict[str, Any]:
    return {k: v for k, v in row._mapping.items() if k not in left_out}


@pytest.mark.parametrize("by_copy", [False, True], ids=["by-statements", "by-copy"])
@pytest.mark.parametrize("read_ahead", [True, False], ids=["read-ahead", "in-transaction"])
def test_the_batch_writes_the_rows_the_per_call_path_writes(
    register_stub, db_engine, rulebook, read_ahead, by_copy, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """`by_copy` (PostgreSQL): every insert of the batch by COPY, as a batch of hundreds
    of firms writes them (in COPY's binary format, `bulk_reevaluation._copy`), where this
    test's few rows would otherwise go by executemany: the rows stored are the same."""
    if by_copy:
        if db_engine.dialect.name != "postgresql":
            pytest.skip("COPY is PostgreSQL's")
        monkeypatch.setattr(bulk_reevaluation, "COPY_FROM", 1)
        copied: list[str] = []
        real_copy = bulk_reevaluation._copy

        def copy(connection: Any, table: Any, columns: Any, bound: Any) -> None:
            copied.append(table.name)
            real_copy(connection, table, columns, bound)

        monkeypatch.setattr(bulk_reevaluation, "_copy", copy)
    _load(register_stub, db_engine)
    ctx = context_from(rulebook)
    run_id = new_id()
    cause = f"定期重新评估（批次 {run_id[-8:]}）"
    uow = UnitOfWork(db_engine)
    for n in range(1, len(CASES) + 1):  # group A, the plain way: one firm per transaction
        with uow:
            firm = uow.register.firm(_firm_id(HEADS[0], n), for_update=True)
            assert firm is not None
            decide_and_store(uow, ctx, firm, stored_profile(ctx, firm), DAY, cause)
            uow.commit()
    with uow:  # group B through the batch path: a range starting after group A
        last_a = _firm_id(HEADS[0], len(CASES))
        uow.register.add(ReevaluationRun(run_id, DAY, now(), 0, last_a))
        uow.commit()
    assert run_range(uow, ctx, run_id, batch_size=4, read_ahead=read_ahead) == 2
    plain, batch = _rows(db_engine, HEADS[0]), _rows(db_engine, HEADS[1])
    for n in plain:
        assert batch[n] == plain[n], f"case {n}: {CASES[int(n) - 1]}"
    kinds = {n: [c["kind"] for c in plain[n]["feed"]] for n in plain}
    # the decision stays whitelist/blue with no blockers: only the entry's moves are news
    upserted = ["decision_changed", "whitelist_granted"]
    assert kinds["1"] == [*upserted, "whitelist_expired", "whitelist_granted"]
    assert kinds["3"][-2:] == ["decision_changed", "whitelist_revoked"]
    assert [d["whitelist_change"] for d in plain["2"]["decisions"]] == ["granted", "extended"]
    assert plain["2"]["firm"]["profile"]["penalties"] == []  # the profile was re-stored
    assert kinds["5"] == ["decision_changed"]  # the same decision again is no change
    renamed = plain[str(RENAMED)]
    assert renamed["firm"]["name"] != "旧名称 old name"  # the name set back from the profile
    # and its region: a move, seen leaving the one and joining the other (review 58 F2)
    assert [(c["kind"], c["region"]) for c in renamed["feed"]][-2:] == [
        ("region_left", "旧区域 old region"),
        ("region_joined", "稠城街道"),
    ]
    assert any(a["before_stored"] and "旧名称" in a["before_stored"] for a in renamed["audit"])
    with db_engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok
        stamps = conn.execute(  # instants are left out above: the batch's, as decided
            select(firms.c.updated_at, decisions.c.decided_at)
            .join(decisions, decisions.c.id == firms.c.decision_id)
            .where(firms.c.enterprise_id > last_a)
        ).all()
    assert len(stamps) == len(CASES) and all(u == d for u, d in stamps)
    if by_copy:  # each table the batch inserts into; those with days or instants in binary
        assert {"decisions", "audit_log", "changes", "whitelist_entries"} <= set(copied)
        binary = {name for (name, _), oids in bulk_reevaluation._COPY_TYPES.items() if oids}
        assert binary >= {"decisions", "changes", "whitelist_entries"}
        assert "audit_log" not in binary


def _bulk_load(engine: Engine, count: int, rulebook: Any) -> list[str]:
    """Generated firms stored as UpsertEnterprise stores them, not yet decided."""
    stamp = now()
    rows = []
    for data in workload.profiles(count, seed=7):
        stored = profile_to_data(parse_profile(data, rulebook.fact_types))
        rows.append(
            {
                "enterprise_id": stored["enterprise_id"],
                "name": stored["name"],
                "region": stored["region"],
                "profile": stored,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(firms), rows)
    return sorted(r["enterprise_id"] for r in rows)


def _each_decided_once(engine: Engine, ids: list[str]) -> None:
    with engine.connect() as conn:
        decided = list(conn.execute(select(decisions.c.enterprise_id)).scalars())
        fed = list(
            conn.execute(
                select(changes.c.enterprise_id).where(changes.c.kind == "decision_changed")
            ).scalars()
        )
        assert verify(conn, audit_log, audit_head).ok
    assert sorted(decided) == sorted(fed) == ids  # every firm once, no firm twice


def test_a_run_in_ranges_resumes_each_range_and_decides_every_firm_once(
    db_engine, rulebook
) -> None:  # type: ignore[no-untyped-def]
    ids = _bulk_load(db_engine, 90, rulebook)
    ctx = context_from(rulebook)
    first = reevaluate_all(
        UnitOfWork(db_engine), ctx, DAY, batch_size=10, parts=3, min_range=10, stop_after_batches=4
    )
    assert (first.processed, first.resumed) == (40, False)  # the first range, then a third
    second = reevaluate_all(UnitOfWork(db_engine), ctx, DAY, batch_size=10, parts=1, min_range=10)
    assert (second.run_id, second.processed, second.resumed) == (first.run_id, 90, True)
    _each_decided_once(db_engine, ids)
    with db_engine.connect() as conn:
        runs = conn.execute(select(reevaluation_runs)).all()
    parts = [r for r in runs if r.parent_id == first.run_id]
    assert len(parts) == 3 and all(r.finished_at for r in runs)
    assert sorted(r.processed for r in parts) == [30, 30, 30]
    assert sorted((r.upto or "~") for r in parts)[:2] == [ids[29], ids[59]]


@pytest.mark.parametrize("flags", [("--processes", "2"), ()], ids=["two", "default"])
def test_cli_processes_take_disjoint_ranges(db_engine, rulebook, flags) -> None:  # type: ignore[no-untyped-def]
    """`--processes 2` splits the run into two ranges, one process each; without the
    flag, one process per core, into no more ranges than give each MIN_RANGE (1,000)
    firms: any machine of 2 cores or more splits these 2,100 firms in two."""
    ids = _bulk_load(db_engine, 2100, rulebook)
    url = db_engine.url.render_as_string(hide_password=False)
    command = [sys.executable, "-m", "services.rules", "reevaluate", "--all", "--db", url]
    command += ["--as-of", "2026-07-01", *flags]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2100 of 2100 firm(s) done" in result.stdout
    _each_decided_once(db_engine, ids)
    with db_engine.connect() as conn:
        runs = conn.execute(select(reevaluation_runs)).all()
    parent = [r for r in runs if r.parent_id is None]
    parts = [r for r in runs if r.parent_id is not None]
    assert len(parent) == 1 and all(r.finished_at for r in runs)
    split = flags or processes.cpu_count() >= 2
    assert sorted(r.processed for r in parts) == ([1050, 1050] if split else [])


_NAME_WRITES = {  # a row noted for each firm an UPDATE names `name` or `region` in its SET
    "sqlite": [
        "CREATE TABLE name_writes (enterprise_id TEXT)",
        "CREATE TRIGGER firms_name_written AFTER UPDATE OF name, region ON firms"
        " BEGIN INSERT INTO name_writes VALUES (NEW.enterprise_id); END",
    ],
    "postgresql": [
        "CREATE TABLE name_writes (enterprise_id TEXT)",
        "CREATE FUNCTION note_name_write() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO name_writes VALUES (NEW.enterprise_id); RETURN NULL; END $$",
        "CREATE TRIGGER firms_name_written AFTER UPDATE OF name, region ON firms"
        " FOR EACH ROW EXECUTE FUNCTION note_name_write()",
    ],
}
_NAME_WRITES_GONE = {
    "sqlite": ["DROP TRIGGER IF EXISTS firms_name_written", "DROP TABLE IF EXISTS name_writes"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS firms_name_written ON firms",
        "DROP FUNCTION IF EXISTS note_name_write()",
        "DROP TABLE IF EXISTS name_writes",
    ],
}


def test_the_batch_sets_a_firms_name_and_region_only_when_they_change(db_engine, rulebook) -> None:  # type: ignore[no-untyped-def]
    """An UPDATE that names an indexed column rewrites its index entry even to the same
    value (SQLite): the batch leaves name and region out for the firms that keep them,
    and sets them for one whose columns are out of step with its stored profile."""
    ids = _bulk_load(db_engine, 30, rulebook)
    stale = ids[7]
    with db_engine.begin() as conn:
        conn.execute(
            update(firms).where(firms.c.enterprise_id == stale).values(name="旧名称 old name")
        )
    kind = db_engine.dialect.name
    with db_engine.begin() as conn:
        for sql in _NAME_WRITES[kind]:
            conn.exec_driver_sql(sql)
    try:
        summary = reevaluate_all(UnitOfWork(db_engine), context_from(rulebook), DAY, batch_size=8)
        with db_engine.connect() as conn:
            written = list(conn.exec_driver_sql("SELECT enterprise_id FROM name_writes").scalars())
            name = conn.execute(
                select(firms.c.name).where(firms.c.enterprise_id == stale)
            ).scalar_one()
            profile_name = conn.execute(
                select(cast(firms.c.profile, Text)).where(firms.c.enterprise_id == stale)
            ).scalar_one()
    finally:
        with db_engine.begin() as conn:
            for sql in _NAME_WRITES_GONE[kind]:
                conn.exec_driver_sql(sql)
    assert summary.processed == len(ids)
    assert written == [stale]
    assert name == json.loads(profile_name)["name"] != "旧名称 old name"
    _each_decided_once(db_engine, ids)


def test_the_batch_reads_each_firms_decision_by_its_key_on_stale_statistics(
    db_engine: Engine,
) -> None:
    """Statistics taken while the register had no decision (a new register, a run's
    start on a database without autovacuum) must not make each batch's read of its firms
    hash the whole decisions table, which grows with the run: the day of each firm's
    decision is looked up by the decision's key (stop 28: 15 → 76 ms a batch over a
    300,000-firm run)."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no statistics unless asked")
    from sqlalchemy import text

    from services.rules.adapters.bulk_reevaluation import _stored_firms

    count = 20_000
    ids = [uscc(n) for n in range(1, count + 1)]
    stamp = now()
    with db_engine.begin() as connection:
        connection.execute(
            insert(firms),
            [
                {
                    "enterprise_id": i,
                    "name": "企业",
                    "region": "稠城街道",
                    "profile": {},
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for i in ids
            ],
        )
    with db_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE firms"))
        connection.execute(text("ANALYZE decisions"))  # none yet
    decided = [new_id() for _ in ids]
    with db_engine.begin() as connection:
        connection.execute(
            insert(decisions),
            [
                {
                    "id": d,
                    "enterprise_id": i,
                    "decided_at": stamp,
                    "as_of": date(2026, 6, 30),
                    "status": "routine",
                    "risk_level": "blue",
                    "ruleset_version": "v",
                    "cause": "c",
                    "whitelist_change": "",
                    "payload": {},
                }
                for d, i in zip(decided, ids, strict=True)
            ],
        )
        connection.execute(
            text(
                "UPDATE firms SET decision_id = d.id FROM decisions d "
                "WHERE d.enterprise_id = firms.enterprise_id"
            )
        )
    f = firms.c
    query = _stored_firms().where(f.enterprise_id > ids[5000], f.enterprise_id <= ids[5999])
    compiled = query.order_by(f.enterprise_id).compile(
        db_engine, compile_kwargs={"literal_binds": True}
    )
    with db_engine.connect() as connection:
        plan = "\n".join(connection.execute(text(f"EXPLAIN {compiled}")).scalars())
        rows = connection.execute(query).all()
    assert "Seq Scan on decisions" not in plan, plan
    assert "pk_decisions on decisions" in plan, plan  # each firm's by the key (review 43 N4)
    assert len(rows) == 999 and all(r[-1] == date(2026, 6, 30) for r in rows)
