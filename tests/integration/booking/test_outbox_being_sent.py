"""`booking outbox` lists the events being sent: claimed by a delivery whose answer from
rules is not recorded yet (a delivery in flight, or one whose process died or stalled
with its claim). It listed only the waiting count, the parked events and the held
firms, so an operator looking at a stuck outbox did not see the event its firm waits on.
On SQLite and PostgreSQL, through the real command line."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from sqlalchemy import Connection, Engine, insert, update

from services.booking.adapters import migrate
from services.booking.adapters.orm import outbox
from services.booking.adapters.unit_of_work import SqlUnitOfWork as UnitOfWork
from services.booking.service_layer import outbox as box
from services.common.clock import now
from tests.support import ROOT, uscc


def _queue(conn: Connection, firm: str, count: int) -> list[str]:
    ids = [f"{firm}-{n}" for n in range(count)]
    conn.execute(
        insert(outbox),
        [
            {
                "event_id": event_id,
                "kind": "EVENT_KIND_PENALTY",
                "enterprise_id": firm,
                "payload": {},
                "created_at": now(),
                "attempts": 0,
            }
            for event_id in ids
        ],
    )
    return ids


def _outbox_listing(engine: Engine) -> list[str]:
    db = engine.url.render_as_string(hide_password=False)
    argv = [sys.executable, "-m", "services.booking", "outbox", "--db", db]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_outbox_command_lists_the_events_being_sent(engine: Engine) -> None:
    migrate.upgrade(engine)
    live, dead, idle = uscc(501), uscc(502), uscc(503)
    with engine.begin() as conn:
        live_events = _queue(conn, live, 2)
        dead_events = _queue(conn, dead, 1)
        _queue(conn, idle, 1)
    # two deliveries claim their firm's head as the worker does (the claim's own code);
    # neither gets to record rules' answer
    for firm in (live, dead):
        claimed = box._claim(UnitOfWork(engine), firm, "replica-7:4242")
        assert isinstance(claimed, box._Claim), claimed
    # the second delivery's process died: its claim ran out long ago
    with engine.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.event_id == dead_events[0])
            .values(claimed_until=now() - timedelta(minutes=10))
        )

    status = box.outbox_status(UnitOfWork(engine))
    assert [(s.event_id, s.enterprise_id, s.lapsed) for s in status.sending] == [
        (live_events[0], live, False),
        (dead_events[0], dead, True),
    ]
    assert all(s.claimed_by.startswith("replica-7:4242:") for s in status.sending)
    assert all(s.attempts == 1 for s in status.sending)

    lines = _outbox_listing(engine)
    assert lines[0].startswith("4 event(s) waiting for delivery")
    heading = next(x for x in lines if "being sent" in x)
    assert heading.startswith("2 event(s) being sent")
    shown = {x.split(":", 1)[0].strip(): x for x in lines if x.startswith("  ")}
    being_sent = shown[live_events[0]]
    assert "EVENT_KIND_PENALTY" in being_sent and live in being_sent
    assert "claimed since " in being_sent and "by replica-7:4242:" in being_sent
    assert "claim ends " in being_sent and "1 attempt(s)" in being_sent
    assert "ran out" not in being_sent
    lapsed = shown[dead_events[0]]
    assert dead in lapsed and "by replica-7:4242:" in lapsed
    assert "claim ran out " in lapsed and "sent again" in lapsed
    # the firm waiting behind a claim, and the idle firm, are not listed as being sent
    assert live_events[1] not in shown and f"{idle}-0" not in shown


def test_an_outbox_with_nothing_being_sent_says_no_more_than_before(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        _queue(conn, uscc(504), 1)
    assert box.outbox_status(UnitOfWork(engine)).sending == ()
    lines = _outbox_listing(engine)
    assert lines[0].startswith("1 event(s) waiting for delivery")
    assert not any("being sent" in x for x in lines)
