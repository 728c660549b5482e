"""A stalled NATS does not stall the register on SQLite (review 57 D3).

The feed worker published to JetStream inside a SQLite write transaction, holding the
process's one write lock for every publish (up to 5 s a message when NATS stalls): each
writer of the process, and the health probe, waited on NATS's round trips, calls with
short deadlines failed, and RulesService went NOT_SERVING, where the README promises
that a NATS outage only delays the feed. The worker now publishes with no transaction
open. What the review checked still holds: after the stall every change reaches the
stream once, in feed order.

A real rules server on SQLite, the real NATS at 127.0.0.1:4222 behind a TCP proxy the
test stalls (tests/faults.TcpProxy). Nothing asserts a duration.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select

from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import DbTimeouts, make_engine
from services.common.server import Limits
from services.rules.adapters import migrate
from services.rules.adapters.feed import FeedStore
from services.rules.adapters.feed_worker import FeedWorker, JetStreamPublisher, NatsSettings
from services.rules.adapters.orm import changes
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import change_json, profile_from_json
from tests.faults import TcpProxy, wait_until
from tests.integration.rules.test_change_feed_nats import NATS_URL, _delete, _nats_up, consume
from tests.support import complaint_event, profile

pytestmark = pytest.mark.skipif(not _nats_up(), reason="NATS is not running at 127.0.0.1:4222")
RULES = grpc_server.SERVICE_NAME


@pytest.fixture
def settings() -> Iterator[tuple[NatsSettings, TcpProxy]]:
    """A stream of this test's own, reached through a proxy (the publisher's side)."""
    import asyncio

    tag = uuid.uuid4().hex[:10]
    proxy = TcpProxy(("127.0.0.1", 4222))
    yield (
        NatsSettings(
            f"nats://{proxy.url_host}", stream=f"TEST_{tag}", subject_prefix=f"t{tag}.changes"
        ),
        proxy,
    )
    proxy.close()
    asyncio.run(_delete(f"TEST_{tag}"))


def test_a_stalled_nats_leaves_sqlite_writes_and_health_alone(
    rulebook: Rulebook, tmp_path: Path, settings: tuple[NatsSettings, TcpProxy]
) -> None:
    nats, proxy = settings
    engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}", timeouts=DbTimeouts())
    migrate.upgrade(engine)
    store = FeedStore(engine)
    running = grpc_server.build(rulebook, engine=engine, address="127.0.0.1:0", limits=Limits(4, 4))
    running.server.start()
    watcher = common_server.watch_database(
        engine, running.health, [RULES], interval=0.2, probe_timeout=1
    )
    worker = FeedWorker(store, JetStreamPublisher(nats, change_json))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = rules_pb2_grpc.RulesServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=RULES)

    def unpublished() -> int:
        with engine.connect() as connection:
            query = select(func.count()).where(changes.c.published_at.is_(None))
            left = int(connection.execute(query).scalar_one())
            connection.commit()
        return left

    try:
        for n in range(1, 5):
            stub.UpsertEnterprise(
                pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(n))), timeout=30
            )
        worker.start()
        wait_until(lambda: unpublished() == 0)
        proxy.stall()  # connections open, no byte moves: NATS hangs mid-publish
        codes: list[grpc.StatusCode] = []
        statuses: list[int] = []
        with structlog.testing.capture_logs() as logged:

            def one_more() -> bool:
                """A call with a short deadline, while the worker tries to publish its
                change (each tried for 5 s); done once a publish has failed."""
                n = len(codes)
                try:
                    stub.ReportEvent(complaint_event(1 + n % 4, f"stall-{n}"), timeout=2)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
                statuses.append(health.Check(request, timeout=10).status)
                return any(e["event"] == "publish failed" for e in logged)

            wait_until(one_more, interval=0.05)
        assert set(codes) == {grpc.StatusCode.OK}, codes
        assert set(statuses) == {health_pb2.HealthCheckResponse.SERVING}, statuses
        proxy.flow()
        wait_until(lambda: unpublished() == 0)
    finally:
        worker.stop()
        watcher.set()
        channel.close()
        running.server.stop(None)
    everything = store.read(0, limit=100_000)
    received = consume(NatsSettings(NATS_URL, nats.stream, nats.subject_prefix), len(everything))
    assert [m["changeId"] for m in received] == [c.change_id for c in everything]
    engine.dispose()
