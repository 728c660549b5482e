"""Stopping a server whose calls are stuck (review: the 30-minute soak saw SIGTERM under
load exit 18-24 s after the signal, the drain's grace being 15 s).

A real rules process on PostgreSQL; the test holds the `events` table locked, so every
ReportEvent the server takes waits on the lock (up to its caller's 60 s deadline). The
drain cannot go quiet; at the end of its grace the calls are cancelled, and the process
must then exit: before the fix the interpreter joined the gRPC handler threads still
waiting on the lock (ThreadPoolExecutor's threads are not daemon threads), so the exit
waited for the lock or the calls' deadlines. A second SIGTERM during the drain cuts it
short. Nothing here asserts a speed: the bounds are hang guards well past what the
process needs."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine, create_engine, text

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.server import SAME_STOP_SECONDS
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import Proc, serve_rules
from tests.faults import pg_database, wait_until
from tests.support import profile, uscc

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TOKEN = "stop-under-load-0123456789abcdef"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
GRACE = 15.0  # serve_until_signalled's grace period
CALLERS = 6


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with pg_database(PG_ADMIN_URL, "rules_stopload") as url:
        yield url


def wait_for_a_call_on_a_lock(watcher: Engine) -> None:
    """Until one of the server's calls waits on a lock of the test's database."""
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database()"
    )

    def a_call_waits() -> bool:
        with watcher.connect() as conn:
            return bool(conn.execute(text(waiting)).scalar())

    wait_until(a_call_waits)


def _serve(db_url: str, tmp_path: Path) -> Proc:
    tokens = tmp_path / "tokens.json"
    scopes = ["rules.evaluate", "rules.write", "rules.read"]
    tokens.write_text(json.dumps({"tokens": [{"token": TOKEN, "caller": "t", "scopes": scopes}]}))
    # --db-timeout 120: the lock wait outlasts the test (only the calls' deadlines end it)
    return serve_rules(db_url, tokens, "--rate", "0", "--db-timeout", "120")


class _Load:
    """CALLERS threads sending ReportEvent (60 s deadlines) until told to stop; what each
    call was answered."""

    def __init__(self, stub: rules_pb2_grpc.RulesServiceStub) -> None:
        self._stub = stub
        self.stop = threading.Event()
        self.acknowledged: list[str] = []
        self.failed: list[str] = []
        self._next = iter(range(10**6))
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(CALLERS)]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        while not self.stop.is_set():
            with self._lock:
                n = next(self._next)
            event = pb.EnterpriseEvent(
                event_id=f"load-{n}",
                enterprise_id=uscc(1 + n % 4),
                kind=pb.EVENT_KIND_COMPLAINT,
                occurred_on="2026-06-30",
                complaint=pb.ComplaintDetail(text="投诉"),
            )
            try:
                self._stub.ReportEvent(
                    pb.ReportEventRequest(event=event), metadata=AUTH, timeout=60
                )
                self.acknowledged.append(event.event_id)
            except grpc.RpcError as exc:
                self.failed.append(exc.code().name)
                time.sleep(0.1)


def _wait_for(proc: Proc, event: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = proc.lines.get(timeout=1)
        except queue.Empty:
            continue
        if line.startswith("{") and json.loads(line).get("event") == event:
            return
    raise AssertionError(f"no {event!r}")


def _stuck_server(fresh_pg: str, tmp_path: Path) -> Iterator[tuple[Proc, _Load]]:
    """A rules process whose ReportEvent calls all wait on the locked `events` table."""
    rules = _serve(fresh_pg, tmp_path)
    channel = grpc.insecure_channel(f"127.0.0.1:{rules.ready['port']}")
    stub = rules_pb2_grpc.RulesServiceStub(channel)
    for n in range(1, 5):
        request = pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n)))
        stub.UpsertEnterprise(request, metadata=AUTH, timeout=60)
    holder = create_engine(fresh_pg)
    watcher = create_engine(fresh_pg, isolation_level="AUTOCOMMIT")
    held = holder.connect()
    held.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
    load = _Load(stub)
    try:
        wait_for_a_call_on_a_lock(watcher)  # the server's calls wait on the lock
        yield rules, load
    finally:
        load.stop.set()
        held.rollback()
        held.close()
        if rules.proc.poll() is None:
            rules.proc.kill()
            rules.proc.wait(timeout=30)
        for thread in load.threads:
            thread.join(timeout=90)
        channel.close()
        holder.dispose()
        watcher.dispose()


def _stored(db_url: str) -> set[str]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = {row[0] for row in conn.execute(text("SELECT event_id FROM events"))}
    engine.dispose()
    return stored


def _log_events(proc: Proc) -> list[str]:
    events = []
    while not proc.lines.empty():
        line = proc.lines.get()
        if line.startswith("{"):
            events.append(str(json.loads(line).get("event")))
    return events


def test_calls_stuck_past_the_grace_do_not_hold_the_exit(fresh_pg: str, tmp_path: Path) -> None:
    """The stuck calls are cancelled at the end of the grace and the process exits (0):
    their threads, still waiting on the lock, no longer hold it."""
    for rules, load in _stuck_server(fresh_pg, tmp_path):
        rules.proc.send_signal(signal.SIGTERM)
        code = rules.proc.wait(timeout=GRACE + 8)  # a hang guard: before the fix, ~60 s
        assert code == 0
        events = _log_events(rules)
        assert "calls still in progress at the end of the grace period" in events
        assert "stopped" in events
        load.stop.set()
    assert set(load.acknowledged) <= _stored(fresh_pg)  # nothing acknowledged lost


def test_a_second_sigterm_cuts_the_drain_short(fresh_pg: str, tmp_path: Path) -> None:
    """The first SIGTERM drains; a second one during the drain cancels the calls still in
    progress at once (what is committed stays committed) and the process exits 0,
    saying so, without waiting out the grace."""
    for rules, load in _stuck_server(fresh_pg, tmp_path):
        rules.proc.send_signal(signal.SIGTERM)
        _wait_for(rules, "draining")
        time.sleep(SAME_STOP_SECONDS + 0.5)  # sooner, it is the same stop delivered twice
        rules.proc.send_signal(signal.SIGTERM)
        code = rules.proc.wait(timeout=GRACE - 5)  # a hang guard below the grace
        assert code == 0
        events = _log_events(rules)
        assert "second stop signal: the drain is cut short" in events
        assert "calls still in progress at the end of the grace period" not in events
        assert "stopped" in events
        load.stop.set()
    assert set(load.acknowledged) <= _stored(fresh_pg)
