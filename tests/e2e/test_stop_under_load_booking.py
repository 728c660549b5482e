"""The booking service stopped while its calls are stuck (the rules side:
test_stop_under_load.py). A real booking process on PostgreSQL; the test holds the
`experts` table locked, so every UpsertExpert the server takes waits on the lock (up to
its caller's 60 s deadline). SIGTERM: the drain's grace ends with the calls cancelled and
the process exits (before the fix the interpreter joined their threads, still waiting).
A second SIGTERM during the drain cuts it short. The bounds are hang guards only."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common.server import SAME_STOP_SECONDS
from tests.e2e.procs import Proc, free_port, serve_rules
from tests.e2e.test_stop_under_load import GRACE, _log_events, _wait_for, wait_for_a_call_on_a_lock
from tests.faults import pg_database

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ADMIN = "stop-booking-admin-0123456789"
SERVICE = "stop-booking-service-01234567"
CALLERS = 6


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with pg_database(PG_ADMIN_URL, "booking_stopload") as url:
        yield url


def _tokens(tmp_path: Path) -> Path:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "token": ADMIN,
                        "caller": "admin",
                        "scopes": ["booking.admin", "booking.read"],
                    },
                    {
                        "token": SERVICE,
                        "caller": "booking-service",
                        "scopes": ["rules.read", "rules.evaluate", "rules.write", "rules.contact"],
                    },
                ]
            }
        )
    )
    return tokens


def _serve_booking(db_url: str, tmp_path: Path, rules_port: object, tokens: Path) -> Proc:
    http_port = free_port()
    return Proc(
        [
            *("services.booking", "--log-json", "serve", "--grpc", "127.0.0.1:0"),
            *("--http", f"127.0.0.1:{http_port}", "--db", db_url),
            *("--rules", f"127.0.0.1:{rules_port}", "--rules-token", SERVICE),
            *("--tokens", str(tokens), "--public-url", f"http://127.0.0.1:{http_port}"),
            *("--qr-keys", str(tmp_path / "qr-keys.json"), "--new-qr-keys"),
            *("--rate", "0", "--db-timeout", "120"),  # the lock wait outlasts the test
        ],
        "booking service listening",
    )


def _stuck_booking(fresh_pg: str, tmp_path: Path) -> Iterator[Proc]:
    """A booking process whose UpsertExpert calls all wait on the locked `experts`."""
    tokens = _tokens(tmp_path)
    rules = serve_rules(f"sqlite:///{tmp_path / 'rules.db'}", tokens)
    booking = _serve_booking(fresh_pg, tmp_path, rules.ready["port"], tokens)
    channel = grpc.insecure_channel(f"127.0.0.1:{booking.ready['grpc_port']}")
    stub = booking_pb2_grpc.BookingServiceStub(channel)
    holder = create_engine(fresh_pg)
    watcher = create_engine(fresh_pg, isolation_level="AUTOCOMMIT")
    held = holder.connect()
    held.execute(text("LOCK TABLE experts IN ACCESS EXCLUSIVE MODE"))
    stop = threading.Event()

    def send(n: int) -> None:
        while not stop.is_set():
            expert = bpb.Expert(
                expert_id=f"E{n}", name="专家", domains=["fire_crowded"], active=True
            )
            try:
                stub.UpsertExpert(
                    bpb.UpsertExpertRequest(expert=expert),
                    metadata=(("authorization", f"Bearer {ADMIN}"),),
                    timeout=60,
                )
            except grpc.RpcError:
                time.sleep(0.1)

    threads = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(CALLERS)]
    for thread in threads:
        thread.start()
    try:
        wait_for_a_call_on_a_lock(watcher)
        yield booking
    finally:
        stop.set()
        held.rollback()
        held.close()
        for proc in (booking, rules):
            if proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait(timeout=30)
        for thread in threads:
            thread.join(timeout=90)
        channel.close()
        holder.dispose()
        watcher.dispose()


def test_calls_stuck_past_the_grace_do_not_hold_the_exit(fresh_pg: str, tmp_path: Path) -> None:
    for booking in _stuck_booking(fresh_pg, tmp_path):
        booking.proc.send_signal(signal.SIGTERM)
        assert booking.proc.wait(timeout=GRACE + 8) == 0  # a hang guard: before, ~60 s
        events = _log_events(booking)
        assert "calls still in progress at the end of the grace period" in events
        assert "stopped" in events


def test_a_second_sigterm_cuts_the_drain_short(fresh_pg: str, tmp_path: Path) -> None:
    for booking in _stuck_booking(fresh_pg, tmp_path):
        booking.proc.send_signal(signal.SIGTERM)
        _wait_for(booking, "draining")
        time.sleep(SAME_STOP_SECONDS + 0.5)
        booking.proc.send_signal(signal.SIGTERM)
        assert booking.proc.wait(timeout=GRACE - 5) == 0  # a hang guard below the grace
        events = _log_events(booking)
        assert "second stop signal: the drain is cut short" in events
        assert "stopped" in events
