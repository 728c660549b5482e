"""Review 60's outbox findings, on SQLite and PostgreSQL.

F3: one event booking cannot encode for rules (a field its EnterpriseEvent does not know:
an event written by another version during a rolling upgrade, or by hand) is parked with
its reason, holds its firm only, is listed and can be discarded; it used to stop the
outbox (or, once deliveries claimed their event, back its firm off for ever, listed
nowhere).
F6: a firm whose earliest event rules keeps refusing for now is listed as held (why, since
when) once that has lasted HELD_AFTER_SECONDS: by `booking outbox`, `sweep`'s line and the
worker's reminder; it used to be listed nowhere.
F7: what a delivery pass reads to find the firms' heads does not grow with the events
waiting behind a held firm (it read every open event, once a second).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, insert, select, text, update

from services.booking.adapters import migrate
from services.booking.adapters.orm import outbox
from services.booking.adapters.repository import due_heads_query
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.domain.rules_service import RulesUnavailable
from services.booking.service_layer import outbox as box
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common.clock import now
from services.common.context import Principal, bind, call_scope
from services.common.migrations import alembic_config
from services.common.vocabulary import mask_mobile
from tests.booking_env import Pair
from tests.integration.booking.test_outbox_firm_order import (
    GENERAL,
    _applied,
    _deliver,
    _hazards,
    _visit,
)
from tests.support import ROOT, uscc

STAFF = Principal("staff-cli", frozenset({"booking.admin"}))


# ---------------------------------------------------------------- F3: an unreadable event


def _unreadable(pair: Pair, firm: str, event_id: str) -> None:
    """An event of `firm` in the outbox whose hazard carries a field rules' EnterpriseEvent
    does not know (what a newer booking would write), queued now."""
    payload = {
        "event_id": event_id,
        "enterprise_id": firm,
        "kind": "EVENT_KIND_GENERAL_HAZARD_FOUND",
        "occurred_on": pair.clock.today.isoformat(),
        "hazard": {
            "hazard_id": f"T{event_id}",
            "clause_ref": "GEN:ledger",
            "severity": "SEVERITY_GENERAL",
            "due_on": (pair.clock.today + timedelta(days=30)).isoformat(),
            "photo_count": 2,
        },
    }
    with pair.booking_engine.begin() as conn:
        conn.execute(
            insert(outbox).values(
                event_id=event_id,
                kind=payload["kind"],
                enterprise_id=firm,
                payload=payload,
                created_at=now(),
                attempts=0,
            )
        )


def test_an_unreadable_event_is_parked_holding_its_firm_only(pair: Pair) -> None:
    """Firm A's unreadable event, then firm B's finding, then A's own finding: B's goes,
    A's unreadable one is parked with a reason saying so (not retried, not a traceback
    a minute), A's finding waits behind it, the listing names A, and a discard frees A."""
    a, b = pair.register_firm(160), pair.register_firm(161)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    a_token, b_token = pair.issue(a).token, pair.issue(b).token
    _unreadable(pair, a, "from-a-newer-booking")
    (b_found,) = _visit(pair, b, b_token, "b", 1, [GENERAL])
    (a_found,) = _visit(pair, a, a_token, "a", 3, [GENERAL])

    report = _deliver(pair)
    assert (report.delivered, report.failed) == (1, 1)
    assert _hazards(pair, b) == {b_found: rpb.HAZARD_STATUS_OPEN}
    assert _hazards(pair, a) == {}
    with pair.booking_engine.connect() as conn:
        parked = conn.execute(
            select(outbox.c.failed_at, outbox.c.last_error, outbox.c.next_attempt_at).where(
                outbox.c.event_id == "from-a-newer-booking"
            )
        ).one()
    assert parked.failed_at is not None and parked.next_attempt_at is None
    assert parked.last_error.startswith("UNREADABLE: "), parked.last_error
    assert "photo_count" in parked.last_error
    (held,) = box.held_firms(UnitOfWork(pair.booking_engine))
    assert (held.enterprise_id, held.event_id, held.parked, held.behind) == (
        a,
        "from-a-newer-booking",
        True,
        1,
    )
    assert held.error.startswith("UNREADABLE: ")
    status = box.outbox_status(UnitOfWork(pair.booking_engine))
    assert [e for e, _ in status.parked] == ["from-a-newer-booking"]
    assert _deliver(pair).delivered == 0  # parked: not tried again, A still held

    with call_scope():
        bind(STAFF)
        freed = box.discard(UnitOfWork(pair.booking_engine), "from-a-newer-booking", "新版本写的")
    assert freed.freed == 1
    assert _deliver(pair).delivered == 1
    assert _applied(pair, a) == [f"booking-{a_found}-found"]


# ---------------------------------------------------------------- F6: held for now, listed


def _firm_refused_for_now(pair: Pair, n: int) -> tuple[str, list[str], Any]:
    """Firm n's two findings; rules keeps answering RESOURCE_EXHAUSTED to the first (for
    that firm only). Returns (firm, its event ids, the rules port that refuses)."""
    firm = pair.register_firm(n)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    tickets = _visit(pair, firm, pair.issue(firm).token, f"k{n}", 1, [GENERAL] * 2)
    events = [f"booking-{t}-found" for t in tickets]
    real = pair.ctx.rules

    class Overloaded:
        def report(self, payload: Any) -> None:
            if payload["event_id"] == events[0]:
                raise RulesUnavailable("RESOURCE_EXHAUSTED", "this firm's event, every time")
            real.report(payload)

    return firm, events, Overloaded()


def _age(pair: Pair, event_id: str, seconds: float) -> None:
    """As if the event's first failure had been `seconds` ago and its backoff were over."""
    with pair.booking_engine.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.event_id == event_id)
            .values(failing_since=now() - timedelta(seconds=seconds), next_attempt_at=None)
        )


def test_a_firm_refused_for_now_for_long_is_listed_as_held(pair: Pair) -> None:
    firm, events, overloaded = _firm_refused_for_now(pair, 170)
    uow = UnitOfWork(pair.booking_engine)
    first = box.deliver_pending(uow, overloaded)
    assert (first.delivered, first.waiting) == (0, True)
    assert box.held_firms(uow) == []  # refused for now a moment ago: a hiccup, not listed
    _age(pair, events[0], box.HELD_AFTER_SECONDS + 60)
    box.deliver_pending(uow, overloaded)  # refused again
    (held,) = box.held_firms(uow)
    assert (held.enterprise_id, held.event_id, held.parked, held.behind) == (
        firm,
        events[0],
        False,
        1,
    )
    assert held.error == "RESOURCE_EXHAUSTED: this firm's event, every time"
    assert held.attempts == 2
    assert now() - held.since > timedelta(seconds=box.HELD_AFTER_SECONDS)  # kept, not reset
    assert box.outbox_status(uow).held == (held,)

    _age(pair, events[0], box.HELD_AFTER_SECONDS + 60)
    assert box.deliver_pending(uow, pair.ctx.rules).delivered == 2  # rules takes it now
    assert box.held_firms(uow) == []
    assert _applied(pair, firm) == events


def test_the_outbox_command_and_sweep_list_a_firm_refused_for_now(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    pair = sqlite_pair
    firm, events, overloaded = _firm_refused_for_now(pair, 175)
    box.deliver_pending(UnitOfWork(pair.booking_engine), overloaded)
    _age(pair, events[0], box.HELD_AFTER_SECONDS + 60)
    with pair.booking_engine.begin() as conn:  # not due yet: sweep must not deliver it
        conn.execute(
            update(outbox)
            .where(outbox.c.event_id == events[0])
            .values(next_attempt_at=now() + timedelta(hours=1))
        )
    db = pair.booking_engine.url.render_as_string(hide_password=False)

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "services.booking", *command, "--db", db]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)

    listing = run("outbox")
    assert listing.returncode == 0, listing.stderr
    assert "1 firm(s) held" in listing.stdout
    line = next(x for x in listing.stdout.splitlines() if x.startswith(f"  {firm}: "))
    assert f"1 event(s) held behind {events[0]}" in line
    assert "refused for now" in line and "RESOURCE_EXHAUSTED" in line and "1 attempt(s)" in line
    swept = run(
        "sweep",
        "--rules",
        f"127.0.0.1:{pair.rules_port}",
        "--qr-keys",
        str(tmp_path / "k.json"),
        "--new-qr-keys",
    )
    assert swept.returncode == 0, swept.stderr
    assert "1 firm(s) held" in swept.stdout


# ---------------------------------------------------------------- F7: the heads' cost


def _queue(conn: Connection, firm: str, first: int, count: int) -> None:
    conn.execute(
        insert(outbox),
        [
            {
                "event_id": f"{firm}-{n}",
                "kind": "EVENT_KIND_PENALTY",
                "enterprise_id": firm,
                "payload": {},
                "created_at": now(),
                "attempts": 0,
            }
            for n in range(first, first + count)
        ],
    )


def _reads(conn: Connection, sql: str) -> int:
    """How much work the statement does: on SQLite the virtual machine's steps, on
    PostgreSQL the rows its plan's nodes read from `outbox` (returned or filtered out, over
    all their loops). Counted, not timed."""
    if conn.dialect.name == "sqlite":
        raw: sqlite3.Connection = conn.connection.dbapi_connection  # type: ignore[assignment]
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        raw.set_progress_handler(count, 1)
        try:
            conn.execute(text(sql)).all()
        finally:
            raw.set_progress_handler(None, 1)
        return steps[0]
    plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("Plans", []):
            yield from walk(child)

    return sum(
        int(
            (n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0))
            * n.get("Actual Loops", 1)
        )
        for n in walk(plan[0]["Plan"])
        if n.get("Relation Name") == "outbox"
    )


def test_the_heads_query_reads_nothing_of_a_held_firms_backlog(engine: Engine) -> None:
    """A firm held behind a parked event, 40 other firms with one event each: what the
    heads query reads with 20 events behind the held one and with 4,000 is the same, with
    the planner's statistics of the first (none on SQLite: nobody runs ANALYZE there, and
    its planner then chose ix_outbox_pending, reading every open event per firm) and
    after ANALYZE."""
    migrate.upgrade(engine)
    held = uscc(900)
    with engine.begin() as conn:
        _queue(conn, held, 0, 21)
        conn.execute(
            update(outbox)
            .where(outbox.c.event_id == f"{held}-0")
            .values(failed_at=now(), last_error="INVALID_ARGUMENT: x")
        )
        for f in range(40):
            _queue(conn, uscc(f), 0, 1)
    sql = str(
        due_heads_query()
        .params(now=now(), limit=200)
        .compile(engine, compile_kwargs={"literal_binds": True})
    )

    def measure(analyze: bool = False) -> tuple[int, int]:
        with engine.connect() as conn:
            if analyze:
                sqlite = engine.dialect.name == "sqlite"
                conn.execute(text("ANALYZE" if sqlite else "ANALYZE outbox"))
                conn.commit()
            found = len(conn.execute(text(sql)).all())  # SQLite reads its schema once
            return found, _reads(conn, sql)

    few = measure()
    with engine.begin() as conn:
        _queue(conn, held, 21, 4000)
    many, analyzed = measure(), measure(analyze=True)
    assert few[0] == many[0] == analyzed[0] == 40  # the others' heads (the held one parked)
    assert many[1] <= few[1] * 1.1 + 20, (few, many)
    assert analyzed[1] <= few[1] * 1.1 + 20, (few, analyzed)


def test_b0015_dates_the_failures_already_recorded(engine: Engine) -> None:
    """At the upgrade an open event that failed gets its `failing_since`: when it was
    parked, or (refused for now) when it was written; the others none. Down and up again."""
    migrate.upgrade(engine, "b0014")
    written, parked_at = now() - timedelta(hours=3), now() - timedelta(hours=2)
    rows = {
        "parked": {"failed_at": parked_at, "last_error": "NOT_FOUND: x"},
        "for-now": {"next_attempt_at": now(), "last_error": "RESOURCE_EXHAUSTED: y"},
        "fresh": {},
        "done": {"delivered_at": now()},
    }
    with engine.begin() as conn:
        for n, (name, values) in enumerate(rows.items()):
            conn.execute(
                text(
                    "INSERT INTO outbox (event_id, kind, enterprise_id, payload, created_at, "
                    "attempts, next_attempt_at, delivered_at, failed_at, last_error) VALUES "
                    "(:e, 'K', :f, '{}', :c, 1, :n, :d, :p, :l)"
                ),
                {
                    "e": name,
                    "f": uscc(n),
                    "c": written,
                    "n": values.get("next_attempt_at"),
                    "d": values.get("delivered_at"),
                    "p": values.get("failed_at"),
                    "l": values.get("last_error", ""),
                },
            )
    migrate.upgrade(engine)
    with UnitOfWork(engine) as uow:
        since = {n: uow.register.outbox_message(n).failing_since for n in rows}  # type: ignore[union-attr]
    assert since["parked"] is not None and abs(since["parked"] - parked_at) < timedelta(seconds=1)
    assert since["for-now"] is not None and abs(since["for-now"] - written) < timedelta(seconds=1)
    assert since["fresh"] is None and since["done"] is None
    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "b0014")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == _head()


def test_b0016_stores_experts_mobiles_as_their_digits(engine: Engine) -> None:
    """Review 66 point 4: an expert's mobile stored with spaces or dashes before stop 33
    (masked to "***" for every reader but booking.admin) is stored as its 11 digits, so
    it reads 138****5678; a value that is no mobile once its separators go stays as it
    is. Down and up again."""
    migrate.upgrade(engine, "b0015")
    stored = {
        "E1": "138-1234-5678",
        "E2": "139 8765\u30004321",
        "E3": "13700001111",
        "E4": "",
        "E5": "0579-8512 3456",  # a landline: no mobile to recover
    }
    with engine.begin() as conn:
        for expert_id, phone in stored.items():
            conn.execute(
                text(
                    "INSERT INTO experts (id, name, phone, domains, regions, slots, "
                    "max_visits_per_day, active, conflicts) VALUES "
                    "(:i, '专家', :p, '[\"gas\"]', '[]', '[]', 2, :a, '[]')"
                ),
                {"i": expert_id, "p": phone, "a": True},
            )
    migrate.upgrade(engine)
    with UnitOfWork(engine) as uow:
        phones = {e.id: e.phone for e in uow.register.experts()}
    assert phones == {
        "E1": "13812345678",
        "E2": "13987654321",
        "E3": "13700001111",
        "E4": "",
        "E5": "0579-8512 3456",
    }
    assert mask_mobile(phones["E1"]) == "138****5678"
    config = alembic_config(migrate.MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "b0015")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == _head()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config(migrate.MIGRATIONS)).get_current_head()
