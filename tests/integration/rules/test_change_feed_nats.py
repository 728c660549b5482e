"""The change feed on the real NATS JetStream at 127.0.0.1:4222 (started before the
session on every development and CI machine): every change once, per firm in order,
also when the publisher dies between publishing and marking."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.rules.adapters import feed as feed_module
from services.rules.adapters.feed import FeedStore
from services.rules.adapters.feed_worker import (
    FeedWorker,
    JetStreamPublisher,
    NatsSettings,
    NatsUnavailable,
)
from services.rules.domain.changes import subject_token
from services.rules.entrypoints.convert import change_json
from tests.integration.conftest import upsert
from tests.integration.rules.test_change_feed import concurrent_writers, take
from tests.support import ROOT, profile, uscc

NATS_URL = "nats://127.0.0.1:4222"


def _nats_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _nats_up(), reason="NATS is not running at 127.0.0.1:4222")


@pytest.fixture
def settings() -> Iterator[NatsSettings]:
    """A stream and subjects of this test's own (streams may not share subjects)."""
    tag = uuid.uuid4().hex[:10]
    yield NatsSettings(NATS_URL, stream=f"TEST_{tag}", subject_prefix=f"t{tag}.changes")
    asyncio.run(_delete(f"TEST_{tag}"))


async def _delete(stream: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_stream(stream)
    await nc.close()


def consume(settings: NatsSettings, expected: int) -> list[dict[str, Any]]:
    """Read the stream from the start with an ephemeral pull consumer."""

    async def run() -> list[dict[str, Any]]:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            f"{settings.subject_prefix}.>", durable=None, stream=settings.stream
        )
        out: list[dict[str, Any]] = []
        while len(out) < expected:
            try:
                batch = await sub.fetch(200, timeout=3)
            except Exception:
                break  # nothing more within the timeout
            for message in batch:
                out.append({"subject": message.subject, **json.loads(message.data)})
                await message.ack()
        await nc.close()
        return out

    return asyncio.run(run())


def positioned(store: FeedStore, expected: int) -> int:
    """How many changes have positions, once `expected` have (or 60 s passed): the worker
    may hold the feed head while it publishes, and a sequencer then skips its turn."""
    deadline = time.monotonic() + 60
    while True:
        store.sequence()
        count = len(store.read(0, limit=100_000))
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def _check(received: list[dict[str, Any]], store: FeedStore) -> None:
    everything = store.read(0, limit=100_000)
    assert [m["changeId"] for m in received] == [c.change_id for c in everything]  # once, in order
    for message in received[:3]:
        assert message["subject"].endswith("." + message["enterpriseId"])
        assert ".x" in message["subject"]  # 稠城街道, hex-encoded into one token


def test_a_thousand_changes_reach_jetstream_and_watchchanges_once_in_order(
    register_stub: RulesServiceStub, db_engine: Engine, settings: NatsSettings
) -> None:
    """20 firms written concurrently: per firm 2 changes from the upsert, then 46 events
    (the first also changes the decision and revokes the entry; the second changes the
    decision once more, its `revoked_by_event` blocker gone with the entry it revoked,
    review 51 C2): 20 x 51 = 1,020."""
    concurrent_writers(register_stub, range(1, 21), 46)
    store = FeedStore(db_engine)
    worker = FeedWorker(store, JetStreamPublisher(settings, change_json))
    worker.start()  # as `serve` runs it: in the background, while followers read
    try:
        total = positioned(store, 1020)
        assert total == 1020
        followed = take(register_stub, 1020)
        received = consume(settings, total)
    finally:
        worker.stop()
    _check(received, store)
    assert [c.change_id for c in followed] == [m["changeId"] for m in received]
    for n in range(1, 21):
        mine = [
            int(c.event.event_id.rsplit("-", 1)[1])
            for c in followed
            if c.event.event_id.startswith(f"acc-{n}-")
        ]
        assert mine == list(range(46)), f"firm {n}: {mine[:10]}"


def test_a_publisher_that_dies_before_marking_publishes_again_without_doubles(
    register_stub: RulesServiceStub,
    db_engine: Engine,
    settings: NatsSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    concurrent_writers(register_stub, range(20, 23), 3)
    store = FeedStore(db_engine)

    def die(*_args: object) -> None:
        raise SystemExit("killed between publish and commit")

    monkeypatch.setattr("services.rules.adapters.feed_worker.mark_published", die)
    first = FeedWorker(store, JetStreamPublisher(settings, change_json))
    with pytest.raises(SystemExit):
        first.run_once()  # every change was published; none was marked
    first.stop()
    monkeypatch.setattr(
        "services.rules.adapters.feed_worker.mark_published", feed_module.mark_published
    )
    again = FeedWorker(store, JetStreamPublisher(settings, change_json))
    try:
        assert again.run_once() == len(store.read(0, limit=100_000))  # all of them again
    finally:
        again.stop()
    total = len(store.read(0, limit=100_000))
    _check(consume(settings, total + 5), store)  # asks for more than exist: none doubled


def test_nats_down_turns_the_feed_unhealthy_not_the_service(
    register_stub: RulesServiceStub, db_engine: Engine
) -> None:
    upsert(register_stub, profile(30))
    seen: list[bool] = []
    dead = NatsSettings("nats://127.0.0.1:1", stream="NOPE", subject_prefix="nope.changes")
    worker = FeedWorker(
        FeedStore(db_engine),
        JetStreamPublisher(dead, change_json),
        on_health=seen.append,
    )
    try:
        with pytest.raises(NatsUnavailable):
            worker.run_once()
    finally:
        worker.stop()
    assert seen == [False]
    assert upsert(register_stub, profile(31)).decision.enterprise_id  # the register serves


def test_the_readme_s_nats_subscriber_example_runs(
    register_stub: RulesServiceStub, db_engine: Engine, settings: NatsSettings, tmp_path: Path
) -> None:
    """examples/nats_subscriber.py, run as a user would (examples/watch_changes.py:
    tests/e2e/test_watch_changes_example.py)."""
    upsert(register_stub, profile(40))
    store = FeedStore(db_engine)
    worker = FeedWorker(store, JetStreamPublisher(settings, change_json))
    try:
        worker.run_once()
    finally:
        worker.stop()
    ids = [c.change_id for c in store.read(0)]
    subscribed = _run_example(
        [
            "examples/nats_subscriber.py",
            NATS_URL,
            f"{settings.subject_prefix}.>",
            f"durable{uuid.uuid4().hex[:6]}",
            settings.stream,
        ],
        tmp_path,
        len(ids),
    )
    assert [line["changeId"] for line in subscribed] == ids


def _run_example(
    args: list[str], cwd: Path, lines: int, settled: Callable[[], bool] = lambda: True
) -> list[dict[str, Any]]:
    """Start an example, read `lines` JSON lines from it, let it settle, then stop it."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        while len(out) < lines:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(json.loads(line))
        deadline = time.monotonic() + 10
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return out


def test_a_follower_positioning_changes_takes_none_away_from_the_bus(
    register_stub: RulesServiceStub, db_engine: Engine, settings: NatsSettings
) -> None:
    """Followers position changes too; the bus still gets every one of them (the
    sequencer never marks delivery, only the publisher does)."""
    worker = FeedWorker(FeedStore(db_engine), JetStreamPublisher(settings, change_json))
    worker.start()
    try:
        got: list[object] = []
        follower = threading.Thread(target=lambda: got.extend(take(register_stub, 40)))
        follower.start()
        for n in range(50, 70):
            upsert(register_stub, profile(n))
        follower.join(timeout=60)
        store = FeedStore(db_engine)
        positioned(store, 40)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db_engine.connect() as connection:
                waiting = connection.execute(
                    text("SELECT count(*) FROM changes WHERE published_at IS NULL")
                ).scalar()
            if not waiting:
                break
            time.sleep(0.2)
        received = consume(settings, 45)
    finally:
        worker.stop()
    assert len(got) == 40
    _check(received, store)


def test_a_replica_without_nats_leaves_the_changes_to_the_one_that_publishes(
    register_stub: RulesServiceStub, db_engine: Engine, settings: NatsSettings
) -> None:
    """Review 49 F1: a replica started without --nats on the same database marked every
    positioned change delivered, the ones the NATS replica had not yet published too:
    they never reached the bus. Once a replica has published, the others leave the
    changes to it, until the bus is given up (`forget-feed-publisher`)."""
    store = FeedStore(db_engine)
    upsert(register_stub, profile(1))
    publishing = FeedWorker(store, JetStreamPublisher(settings, change_json))
    without = FeedWorker(store)
    try:
        first = publishing.run_once()  # claims the feed head for its bus
        assert first == len(store.read(0))
        upsert(register_stub, profile(2))
        assert without.run_once() == 0  # positions them, marks nothing delivered
        with db_engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM changes WHERE published_at IS NULL")
            ).scalar()
        assert waiting and waiting == len(store.read(0)) - first
        assert publishing.run_once() == waiting  # all of them reach the bus
        received = consume(settings, first + waiting)
        assert len(received) == first + waiting
        with db_engine.begin() as conn:
            assert store.forget_publisher(conn) == publishing.publisher.name  # type: ignore[union-attr]
        upsert(register_stub, profile(3))
        assert without.run_once() > 0  # the bus given up: delivered once positioned
    finally:
        publishing.stop()


def test_a_slow_bus_never_keeps_changes_from_their_positions(db_engine: Engine) -> None:
    """Review 49 F2: the publisher held the feed head's row lock while a batch waited on
    a slow bus, and the sequencer, finding it held, skipped: no change got a position,
    and every WatchChanges follower stalled with the bus. Publishers now lock apart."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row and advisory locks are PostgreSQL's; SQLite has one writer")
    store = FeedStore(db_engine)
    with db_engine.begin() as publishing:
        assert store.lock_publishing(publishing)  # a publisher mid-batch
        with db_engine.begin() as other:
            assert not store.lock_publishing(other)  # one publisher at a time
        with db_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO changes (change_id, enterprise_id, region, kind, detail, "
                    "recorded_at) VALUES ('c-slow-bus', '91330782MA2000001K', '稠城街道', "
                    "'decision', '{}', now())"
                )
            )
        assert store.sequence() == 1  # positioned while the publisher holds its lock


def test_a_bus_down_at_the_publishers_start_still_keeps_the_changes_for_it(
    register_stub: RulesServiceStub, db_engine: Engine
) -> None:
    """Review 50 F2: the bus was named only once reached, so while NATS was down at the
    publishing replica's start the replicas without --nats marked everything delivered
    and nothing was published when NATS came back."""
    store = FeedStore(db_engine)
    dead = NatsSettings("nats://127.0.0.1:1", stream="NOPE", subject_prefix="nope.changes")
    publishing = FeedWorker(store, JetStreamPublisher(dead, change_json))
    try:
        with pytest.raises(NatsUnavailable):
            publishing.run_once()
    finally:
        publishing.stop()
    upsert(register_stub, profile(50))
    assert FeedWorker(store).run_once() == 0  # left for the bus, not marked delivered
    with db_engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT count(*) FROM changes WHERE published_at IS NULL")
        ).scalar()
    assert waiting and waiting == len(store.read(0))


def test_two_replicas_naming_two_buses_are_told(db_engine: Engine) -> None:
    """Review 50 N7: replicas with different --nats-stream split the feed between two
    streams, each claim overwriting the other without a word."""
    import structlog

    store = FeedStore(db_engine)
    names = []
    with structlog.testing.capture_logs() as logged:
        for stream in ("ONE", "TWO"):
            dead = NatsSettings("nats://127.0.0.1:1", stream=stream, subject_prefix="x.changes")
            worker = FeedWorker(store, JetStreamPublisher(dead, change_json))
            names.append(worker.publisher.name)  # type: ignore[union-attr]
            try:
                with pytest.raises(NatsUnavailable):
                    worker.run_once()  # named before the (dead) bus is reached
            finally:
                worker.stop()
    told = [e for e in logged if e["event"].startswith("another replica named another bus")]
    assert [(e["before"], e["now"]) for e in told] == [(names[0], names[1])]
    with db_engine.connect() as conn:
        assert store.publisher(conn) == names[1]


def test_a_move_reaches_both_regions_subjects_with_the_feed_s_cursors(
    register_stub: RulesServiceStub, db_engine: Engine, settings: NatsSettings
) -> None:
    """Review 58 F2 on the bus: a firm that moves to another region is published on the
    subject of the region it left (REGION_LEFT) and of the one it joined (REGION_JOINED),
    so a subscriber to one region's subjects learns it. Each message's cursor names the
    feed's epoch, as WatchChanges gives it (F1)."""
    upsert(register_stub, profile(50))
    upsert(register_stub, profile(50, region="北苑街道"))
    store = FeedStore(db_engine)
    worker = FeedWorker(store, JetStreamPublisher(settings, change_json))
    try:
        worker.run_once()
    finally:
        worker.stop()
    received = consume(settings, 4)
    followed = take(register_stub, 4)
    assert [m["cursor"] for m in received] == [c.cursor for c in followed]
    assert [m["kind"] for m in received][-2:] == [
        "CHANGE_KIND_REGION_LEFT",
        "CHANGE_KIND_REGION_JOINED",
    ]
    left, joined = received[-2:]
    for message, region in ((left, "稠城街道"), (joined, "北苑街道")):
        token = subject_token(region)
        assert message["subject"] == f"{settings.subject_prefix}.{token}.{uscc(50)}"
        assert message["regionChange"]["toRegion"] == "北苑街道"
        assert message["regionChange"]["whitelisted"] is True
