"""The change feed as an operator runs it: `serve --nats`, killed with SIGKILL in the
middle of a stream of events and started again on the same database. The JetStream
subscriber sees every acknowledged change exactly once, in order per firm."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.e2e.procs import Proc, serve_rules
from tests.integration.rules.test_change_feed_nats import NATS_URL, _delete, _nats_up, consume
from tests.integration.rules.test_events import accident
from tests.support import profile, uscc

pytestmark = pytest.mark.skipif(not _nats_up(), reason="NATS is not running at 127.0.0.1:4222")
TOKEN = "feed-writer-0123456789abc"


def _serve(tmp_path: Path, *nats: str) -> Proc:
    """`serve` on the test's SQLite file and tokens, with the given --nats… flags."""
    return serve_rules(f"sqlite:///{tmp_path / 'rules.db'}", tmp_path / "tokens.json", *nats)


def _on_stream(tag: str) -> list[str]:
    return [
        "--nats",
        NATS_URL,
        "--nats-stream",
        f"TEST_{tag}",
        "--nats-subject-prefix",
        f"t{tag}.changes",
    ]


def test_kill_9_mid_stream_then_restart_each_change_once(tmp_path: Path) -> None:
    import asyncio

    tag = uuid.uuid4().hex[:10]
    (tmp_path / "tokens.json").write_text(
        json.dumps(
            {
                "tokens": [
                    {"token": TOKEN, "caller": "feed-test", "scopes": ["rules.write", "rules.read"]}
                ]
            }
        )
    )
    auth = (("authorization", f"Bearer {TOKEN}"),)
    acknowledged: list[str] = []
    server = _serve(tmp_path, *_on_stream(tag))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.ready['port']}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            for n in range(1, 6):
                stub.UpsertEnterprise(
                    rpb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n))),
                    metadata=auth,
                    timeout=30,
                )

            def writer() -> None:
                for i in range(400):
                    event = accident(1 + i % 5, f"acc-{i}", occurred_on="2026-06-29")
                    try:
                        stub.ReportEvent(
                            rpb.ReportEventRequest(event=event), metadata=auth, timeout=10
                        )
                    except grpc.RpcError:
                        return  # the server is gone
                    acknowledged.append(f"acc-{i}")

            thread = threading.Thread(target=writer)
            thread.start()
            time.sleep(1.5)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(timeout=30)
            thread.join(timeout=60)
        assert acknowledged, "no event was acknowledged before the kill"
        server = _serve(tmp_path, *_on_stream(tag))  # the same database and stream
        engine = create_engine(f"sqlite:///{tmp_path / 'rules.db'}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                waiting = connection.execute(
                    text("SELECT count(*) FROM changes WHERE published_at IS NULL")
                ).scalar()
            if waiting == 0:
                break
            time.sleep(0.5)
        with engine.connect() as connection:
            stored = [
                row[0]
                for row in connection.execute(
                    text("SELECT change_id FROM changes ORDER BY position")
                )
            ]
        engine.dispose()
        received = consume_all(tag, len(stored))
    finally:
        server.stop()
        asyncio.run(_delete(f"TEST_{tag}"))
    assert [m["changeId"] for m in received] == stored  # each once, in feed order
    events = [
        m["event"]["eventId"] for m in received if m.get("kind") == "CHANGE_KIND_EVENT_APPLIED"
    ]
    assert set(acknowledged) <= set(events)  # nothing acknowledged is lost
    for n in range(1, 6):
        mine = [int(e.split("-")[1]) for e in events if int(e.split("-")[1]) % 5 == n - 1]
        assert mine == sorted(mine)
    assert all(m["enterpriseId"] in {uscc(n) for n in range(1, 6)} for m in received)


def consume_all(tag: str, expected: int) -> list[dict[str, object]]:
    from services.rules.adapters.feed_worker import NatsSettings

    settings = NatsSettings(NATS_URL, stream=f"TEST_{tag}", subject_prefix=f"t{tag}.changes")
    return consume(settings, expected + 5)  # asking for more than exist: doubles would show


def test_nats_unreachable_turns_only_the_feed_not_serving(tmp_path: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": []}))
    server = _serve(tmp_path, "--nats", "nats://127.0.0.1:1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.ready['port']}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status(name: str) -> int:
                request = health_pb2.HealthCheckRequest(service=name)
                return int(health.Check(request, timeout=5).status)

            assert status("rules.v1.ChangeFeed") == health_pb2.HealthCheckResponse.NOT_SERVING
            assert status("rules.v1.RulesService") == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert server.stop() == 0
