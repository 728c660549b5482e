"""The batch re-evaluation's two phases (service_layer/reevaluation.py `_batch`): a batch
worked out from a read snapshot, then written in the write transaction after reading its
firms and open entries again. Real writes land between the phases (the `between_phases`
hook): the batch must write what the register holds then, not what the snapshot showed.
SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, update

from services.common.audit import verify
from services.common.clock import new_id, now
from services.common.db import log_bytes
from services.rules.adapters.orm import (
    audit_head,
    audit_log,
    decisions,
    firms,
    reevaluation_runs,
    whitelist_entries,
)
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain import labels
from services.rules.domain.profile import parse_profile, profile_to_data
from services.rules.domain.register import ReevaluationRun
from services.rules.entrypoints.grpc_server import context_from
from services.rules.service_layer import reevaluation
from services.rules.service_layer.reevaluation import LOG_LIMIT, run_range
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.integration.conftest import upsert
from tests.support import profile, uscc

DAY = date(2026, 7, 1)
BLOCKED = {"gen.no_hazard_ledger": True}  # keeps a firm off the white list
BEFORE = "2026-06-30"  # the day of the writes between the phases (not after the run's)


def _start(engine: Engine) -> str:
    """A run of the whole register (not split); its id."""
    run_id = new_id()
    with UnitOfWork(engine) as uow:
        uow.register.add(ReevaluationRun(run_id, DAY, now(), 0, ""))
        uow.commit()
    return run_id


def _once(action: Callable[[], object]) -> Callable[[], None]:
    """A `between_phases` hook that does `action` before the first batch's write only."""
    calls = []

    def hook() -> None:
        if not calls:
            calls.append(1)
            action()

    return hook


def _run_decision(engine: Engine, run_id: str, enterprise_id: str) -> Any:
    """The decision this run made for the firm (exactly one)."""
    with engine.connect() as conn:
        found = conn.execute(
            select(decisions).where(
                decisions.c.enterprise_id == enterprise_id,
                decisions.c.cause == labels.reevaluation_cause(run_id[-8:]),
            )
        ).all()
    assert len(found) == 1, found
    return found[0]


def _open_entries(engine: Engine, enterprise_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(whitelist_entries).where(
                    whitelist_entries.c.enterprise_id == enterprise_id,
                    whitelist_entries.c.revoked_on.is_(None),
                )
            )
        )


def _chains_verify(engine: Engine) -> None:
    with engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok


def test_a_firm_changed_between_the_phases_is_decided_from_its_new_state(
    register_stub, db_engine, rulebook
) -> None:  # type: ignore[no-untyped-def]
    listed, blocked, revoked, untouched = (uscc(n) for n in (1, 2, 3, 4))
    upsert(register_stub, profile(1), as_of="2026-03-01")  # listed, entry open
    upsert(register_stub, profile(2, facts=BLOCKED), as_of="2026-03-01")  # never listed
    upsert(register_stub, profile(3), as_of="2026-03-01")  # listed, entry open
    upsert(register_stub, profile(4), as_of="2026-03-01")
    run_id = _start(db_engine)

    def concurrent_writes() -> None:
        # UpsertEnterprise (the per-call path, its own transactions): one firm now blocked
        # (its entry revoked), one now clean (an entry granted)
        upsert(register_stub, profile(1, facts=BLOCKED), as_of=BEFORE)
        upsert(register_stub, profile(2), as_of=BEFORE)
        with db_engine.begin() as conn:  # an entry closed by a direct write of its row
            conn.execute(
                update(whitelist_entries)
                .where(
                    whitelist_entries.c.enterprise_id == revoked,
                    whitelist_entries.c.revoked_on.is_(None),
                )
                .values(revoked_on=date(2026, 6, 30), revoked_reason="撤销 test")
            )

    ctx = context_from(rulebook)
    hook = _once(concurrent_writes)
    run_range(
        UnitOfWork(db_engine), ctx, run_id, batch_size=10, read_ahead=True, between_phases=hook
    )

    now_blocked = _run_decision(db_engine, run_id, listed)
    assert now_blocked.status != "whitelist" and now_blocked.whitelist_change == ""
    assert _open_entries(db_engine, listed) == []
    with db_engine.connect() as conn:
        stored = conn.execute(select(firms.c.profile).where(firms.c.enterprise_id == listed))
        assert stored.scalar_one()["facts"] == BLOCKED  # the profile the upsert stored
    now_clean = _run_decision(db_engine, run_id, blocked)
    assert (now_clean.status, now_clean.whitelist_change) == ("whitelist", "extended")
    [entry] = _open_entries(db_engine, blocked)  # the upsert's entry, extended: one open
    assert entry.decision_id == now_clean.id
    granted = _run_decision(db_engine, run_id, revoked)
    assert granted.whitelist_change == "granted"  # its entry was closed: a new one
    [entry] = _open_entries(db_engine, revoked)
    assert entry.granted_decision_id == granted.id
    assert _run_decision(db_engine, run_id, untouched).whitelist_change == "extended"
    ids = (listed, blocked, revoked, untouched)
    with db_engine.connect() as conn:
        current = dict(
            conn.execute(
                select(firms.c.enterprise_id, firms.c.decision_id).where(
                    firms.c.enterprise_id.in_(ids)
                )
            ).all()
        )
    assert current == {i: _run_decision(db_engine, run_id, i).id for i in ids}
    _chains_verify(db_engine)


def test_a_firm_inserted_into_the_batch_between_the_phases_is_decided(
    register_stub, db_engine, rulebook
) -> None:  # type: ignore[no-untyped-def]
    for n in (1, 3, 5):
        upsert(register_stub, profile(n), as_of="2026-03-01")
    run_id = _start(db_engine)
    ctx = context_from(rulebook)
    hook = _once(lambda: upsert(register_stub, profile(2), as_of=BEFORE))  # between 1 and 3
    run_range(
        UnitOfWork(db_engine), ctx, run_id, batch_size=3, read_ahead=True, between_phases=hook
    )
    for n in (1, 2, 3, 5):  # 5: the next batch's, once the first took 1, 2 and 3
        _run_decision(db_engine, run_id, uscc(n))
    with db_engine.connect() as conn:
        run = conn.execute(select(reevaluation_runs).where(reevaluation_runs.c.id == run_id)).one()
    assert run.processed == 4 and run.finished_at is not None
    _chains_verify(db_engine)


def test_a_cursor_moved_between_the_phases_decides_no_firm_twice(db_engine, rulebook) -> None:  # type: ignore[no-untyped-def]
    stamp = now()
    ids = [uscc(n) for n in range(1, 7)]
    with db_engine.begin() as conn:
        conn.execute(
            insert(firms),
            [
                {
                    "enterprise_id": p["enterprise_id"],
                    "name": p["name"],
                    "region": p["region"],
                    "profile": p,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for p in (_stored(n, rulebook) for n in range(1, 7))
            ],
        )
    run_id = _start(db_engine)
    ctx = context_from(rulebook)
    # another process on the same range (never so: one process owns a range) writes the
    # batch this one read ahead: this one must go on after it
    other = _once(
        lambda: run_range(UnitOfWork(db_engine), ctx, run_id, batch_size=3, stop_after_batches=1)
    )
    run_range(
        UnitOfWork(db_engine), ctx, run_id, batch_size=3, read_ahead=True, between_phases=other
    )
    with db_engine.connect() as conn:
        decided = list(conn.execute(select(decisions.c.enterprise_id)).scalars())
    assert sorted(decided) == ids
    _chains_verify(db_engine)


def _stored(n: int, rulebook: Rulebook) -> dict[str, Any]:
    """A firm's profile as UpsertEnterprise stores it."""
    return profile_to_data(parse_profile(profile(n), rulebook.fact_types))


class Crash(Exception):
    pass


def test_a_crash_between_the_phases_writes_nothing_and_the_run_resumes(
    register_stub, db_engine, rulebook
) -> None:  # type: ignore[no-untyped-def]
    for n in range(1, 6):
        upsert(register_stub, profile(n), as_of="2026-03-01")
    run_id = _start(db_engine)
    ctx = context_from(rulebook)

    def crash() -> None:
        raise Crash

    with db_engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    with pytest.raises(Crash):
        run_range(
            UnitOfWork(db_engine), ctx, run_id, batch_size=2, read_ahead=True, between_phases=crash
        )
    with db_engine.connect() as conn:
        run = conn.execute(select(reevaluation_runs).where(reevaluation_runs.c.id == run_id)).one()
        assert (run.processed, run.last_enterprise_id, run.finished_at) == (0, "", None)
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == before
        assert conn.execute(select(func.count()).select_from(decisions)).scalar_one() == 5
    assert run_range(UnitOfWork(db_engine), ctx, run_id, batch_size=2) == 3
    for n in range(1, 6):
        _run_decision(db_engine, run_id, uscc(n))
    _chains_verify(db_engine)


def _firms(engine: Engine, rulebook: Rulebook, count: int) -> None:
    """`count` firms stored without a decision, as a bulk import leaves them."""
    stamp = now()
    rows = []
    for n in range(1, count + 1):
        data = profile_to_data(parse_profile(profile(n), rulebook.fact_types))
        rows.append(
            {
                "enterprise_id": data["enterprise_id"],
                "name": data["name"],
                "region": data["region"],
                "profile": data,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(firms), rows)


def test_two_workers_on_one_range_decide_no_firm_twice(db_engine: Engine, rulebook: Any) -> None:
    """Review 34 F2: a range process left running by a killed parent and the resumed
    run's own work the same range at once. The range's record is locked in each batch's
    transaction (PostgreSQL; SQLite's writer holds the file), so each reads the cursor the
    other left: every firm is decided once."""
    import threading

    _firms(db_engine, rulebook, 300)
    run_id = _start(db_engine)
    ctx = context_from(rulebook)
    workers = [
        threading.Thread(
            target=run_range, args=(UnitOfWork(db_engine), ctx, run_id), kwargs={"batch_size": 20}
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    with db_engine.connect() as conn:
        per_firm = conn.execute(
            select(decisions.c.enterprise_id, func.count()).group_by(decisions.c.enterprise_id)
        ).all()
        assert len(per_firm) == 300 and {n for _, n in per_firm} == {1}
        assert verify(conn, audit_log, audit_head).ok


def test_the_read_ahead_truncates_sqlites_log_past_its_limit(
    db_engine: Engine, rulebook: Any, monkeypatch: Any
) -> None:
    """Review 34 F1: a read-ahead's snapshot could keep the other process from starting
    the write-ahead log over, which grew by every batch until the run ended. After each
    batch, a read-ahead range truncates the log once its file has grown past LOG_LIMIT
    (SQLite; nothing to do on PostgreSQL); within the limit it leaves SQLite's own
    checkpoints at work (truncating after every batch made the two processes wait on
    each other). None is asked for without the read-ahead."""
    _firms(db_engine, rulebook, 30)
    asked: list[tuple[int, bool]] = []
    real = UnitOfWork.checkpoint
    monkeypatch.setattr(
        UnitOfWork, "checkpoint", lambda self, over=0: asked.append((over, real(self, over)))
    )
    ctx = context_from(rulebook)
    assert run_range(UnitOfWork(db_engine), ctx, _start(db_engine), batch_size=10) == 3
    assert asked == []
    sqlite = db_engine.dialect.name == "sqlite"
    for day, limit, truncated in ((2, LOG_LIMIT, False), (3, 0, sqlite)):
        monkeypatch.setattr(reevaluation, "LOG_LIMIT", limit)
        asked.clear()
        with UnitOfWork(db_engine) as uow:  # the next day's run, read ahead
            uow.register.add(ReevaluationRun(run_id := new_id(), date(2026, 7, day), now(), 0, ""))
            uow.commit()
        run_range(UnitOfWork(db_engine), ctx, run_id, batch_size=10, read_ahead=True)
        assert asked == [(limit, truncated)] * 3


def test_a_checkpoint_truncates_only_a_log_past_its_limit(db_engine: Engine) -> None:
    """`UnitOfWork.checkpoint(over)` on SQLite: a log file within `over` bytes is left as
    it is (False); past it, copied into the database and truncated (True). PostgreSQL
    has no such log: False."""
    with db_engine.begin() as conn:  # something in the log
        conn.execute(insert(reevaluation_runs).values(_run_row()))
    if db_engine.dialect.name != "sqlite":
        assert UnitOfWork(db_engine).checkpoint(0) is False
        return
    size = _log_bytes(db_engine)
    assert size > 0
    assert UnitOfWork(db_engine).checkpoint(size) is False
    assert _log_bytes(db_engine) == size
    assert UnitOfWork(db_engine).checkpoint(size - 1) is True
    assert _log_bytes(db_engine) == 0


# the engine's busy timeout is 30 s: a checkpoint that waits for the reader returns after
# it, past this limit (which cannot cut SQLite's wait short), and the test fails
@pytest.mark.timeout(20)
def test_a_checkpoint_never_waits_for_a_reader(db_engine: Engine) -> None:
    """Review 44 F1: a truncation waits for readers while it holds SQLite's write lock,
    so with a reader holding a snapshot (a backup, `audit verify`) each batch's
    checkpoint held that lock for the whole busy timeout, and another range process's
    write failed as "database is locked". It now gives up at once (False), the writers
    go on, and a later one truncates once the reader is done."""
    if db_engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no write-ahead log file to truncate")
    with db_engine.begin() as conn:
        conn.execute(insert(reevaluation_runs).values(_run_row()))
    reader = sqlite3.connect(db_engine.url.database or "", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM reevaluation_runs").fetchone()  # its snapshot
        with db_engine.begin() as conn:  # the log past that snapshot
            conn.execute(insert(reevaluation_runs).values(_run_row()))
        assert UnitOfWork(db_engine).checkpoint(0) is False
        with db_engine.begin() as conn:  # writers go on
            conn.execute(insert(reevaluation_runs).values(_run_row()))
    finally:
        reader.close()
    assert UnitOfWork(db_engine).checkpoint(0) is True
    assert _log_bytes(db_engine) == 0


def _log_bytes(engine: Engine) -> int | None:
    connection = engine.raw_connection()
    try:
        return log_bytes(connection.cursor())
    finally:
        connection.close()


def _run_row() -> dict[str, Any]:
    return {
        "id": new_id(),
        "as_of": date(2026, 7, 9),
        "started_at": now(),
        "processed": 0,
        "last_enterprise_id": "",
    }


def test_a_terminated_command_stops_its_range_processes_and_the_run_resumes(
    tmp_path: Any, rulebook: Any
) -> None:
    """Review 34 F2/F4: SIGTERM to `reevaluate --all --processes 2` stops its forked
    range processes too (none is left running beside the next run), says how to go on,
    and exits 130; run again, the run resumes and decides every firm once."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from services.common.db import make_engine
    from services.rules.adapters import migrate
    from tests.support import ROOT

    url = f"sqlite:///{tmp_path / 'register.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    _firms(engine, rulebook, 12_000)
    command = [sys.executable, "-m", "services.rules", "reevaluate", "--all", "--db", url]
    command += ["--as-of", "2026-07-01", "--processes", "2", "--batch-size", "100"]
    running = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parent = psutil.Process(running.pid)
    done = 0
    for _ in range(1200):  # both ranges at work, a batch written
        with engine.connect() as conn:
            done = conn.execute(select(func.sum(reevaluation_runs.c.processed))).scalar() or 0
        if done and len(parent.children()) == 2:
            break
        time.sleep(0.05)
    children = parent.children()
    assert len(children) == 2 and 0 < done < 12_000
    running.send_signal(signal.SIGTERM)
    _, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert b"run the command again to resume" in err and b"Traceback" not in err
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "(resumed)" in again.stdout, again.stderr[-2000:]
    with engine.connect() as conn:
        per_firm = conn.execute(
            select(decisions.c.enterprise_id, func.count()).group_by(decisions.c.enterprise_id)
        ).all()
        assert len(per_firm) == 12_000 and {n for _, n in per_firm} == {1}
        assert verify(conn, audit_log, audit_head).ok
    engine.dispose()


def test_the_progress_poll_reads_while_a_writer_holds_the_lock(
    db_engine: Engine, rulebook: Any
) -> None:
    """Review 34 N5: the command's progress bar polled the run through a write
    transaction (SQLite: BEGIN IMMEDIATE), so the range processes waited for it every
    second. `processed` reads from a snapshot: it answers while a writer holds the lock
    (SQLite) or the runs' table (PostgreSQL), here with a busy timeout of half a second."""
    from sqlalchemy import text

    from services.common.db import DbTimeouts, make_engine
    from services.rules.service_layer import reevaluation

    _firms(db_engine, rulebook, 40)
    started = reevaluation.start_run(UnitOfWork(db_engine), DAY, 2, today=DAY, min_range=10)
    assert len(started.ranges) == 2
    ctx = context_from(rulebook)
    run_range(UnitOfWork(db_engine), ctx, started.ranges[0], batch_size=8, stop_after_batches=1)
    url = db_engine.url.render_as_string(hide_password=False)
    quick = make_engine(url, timeouts=DbTimeouts(statement=0.5))
    with db_engine.connect() as writer:
        if db_engine.dialect.name == "sqlite":
            raw = writer.connection.driver_connection
            raw.execute("BEGIN IMMEDIATE")
        else:
            writer.begin()
            writer.execute(text("LOCK TABLE reevaluation_runs IN EXCLUSIVE MODE"))
        try:
            assert reevaluation.processed(UnitOfWork(quick), started.run_id) == 8
        finally:
            if db_engine.dialect.name == "sqlite":
                raw.execute("ROLLBACK")
            else:
                writer.rollback()
    quick.dispose()


@pytest.mark.parametrize(
    ("firms", "parts", "ranges"), [(15, 2, 0), (25, 3, 2), (30, 3, 3), (45, 3, 3)]
)
def test_a_run_is_split_into_as_many_ranges_as_give_each_min_range_firms(
    db_engine: Engine, rulebook: Any, firms: int, parts: int, ranges: int
) -> None:
    """Review 44 F3: the split was all or nothing (40,000 firms on 41 cores ran in one
    process); a run now takes at most `parts` ranges, as many as give each `min_range`."""
    _firms(db_engine, rulebook, firms)
    started = reevaluation.start_run(UnitOfWork(db_engine), DAY, parts, today=DAY, min_range=10)
    with db_engine.connect() as conn:
        runs = conn.execute(select(reevaluation_runs)).all()
    assert len([r for r in runs if r.parent_id is not None]) == ranges
    assert len(started.ranges) == max(ranges, 1)
