"""How many of the process's call threads WatchChanges may hold (review 61 R61-2, R61-3).

The followers' streams run on the `calls` pool, the one Evaluate, EvaluateBatch and
ListStandards run on. A stream's slot stands for its thread: it is held until the thread
has ended, so a follower that cancels and reconnects over and over never holds more
threads than slots, even while the threads of the streams it left wait for the SQLite
write lock (a long batch, a slow disk); and those threads see the cancel at once, so
the follower's reconnect is admitted. A stream asked for while no slot is free waits
for one only when its caller holds one itself, and one at a time, so a storm of refused
followers takes no threads from Evaluate. These tests count threads and slots; they
assert no times."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.auth import TokenStore
from services.common.db import make_engine
from services.common.ratelimit import Rate
from services.common.security import Security
from services.rules.adapters import migrate
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from services.rules.service_layer import feed
from tests.faults import wait_until
from tests.integration.conftest import Clock
from tests.support import profile

TOKENS = {
    "a": "tok-threads-a-0123456789abcdef",
    "b": "tok-threads-b-0123456789abcdef",
    "c": "tok-threads-c-0123456789abcdef",
}


def as_caller(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[name]}"),)


@dataclass
class Server:
    stub: RulesServiceStub
    engine: Engine
    running: grpc_server.RunningServer
    admitted: list[str | None]  # the callers whose streams took a slot, in order

    @property
    def followers(self) -> feed.Followers:
        assert self.running.servicer is not None
        return self.running.servicer._followers

    @property
    def threads(self) -> int:
        """Calls held by the `calls` pool (queued or running): here only WatchChanges
        and the test's Evaluate use it."""
        return self.running.pools.calls.held

    def watch(self, caller: str) -> Any:
        return self.stub.WatchChanges(
            pb.WatchChangesRequest(), metadata=as_caller(caller), timeout=120
        )

    def admit(self, caller: str) -> Any:
        """A stream of `caller`, once its slot is taken (it may then wait for the write
        lock, so nothing is read from it)."""
        before = len(self.admitted)
        stream = self.watch(caller)
        wait_until(lambda: len(self.admitted) > before or stream.done(), timeout=15)
        assert not stream.done(), stream.details()
        return stream


def start(tmp_path: Path, rulebook: Any, workers: int = 8) -> Server:
    path = tmp_path / "tokens.json"
    entries = [
        {"token": token, "caller": name, "scopes": ["rules.read", "rules.write", "rules.evaluate"]}
        for name, token in TOKENS.items()
    ]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    # no DbTimeouts: a wait for the write lock lasts 30 s (SQLITE_BUSY_MS), longer than
    # any of these tests waits for a thread to end
    engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}")
    migrate.upgrade(engine)
    running = grpc_server.build(
        rulebook,
        engine=engine,
        address="127.0.0.1:0",
        limits=common_server.Limits(workers, 8),
        today=Clock(),
        security=Security(TokenStore.load(path), Rate(1000, 1000)),
    )
    assert running.servicer is not None
    followers = running.servicer._followers
    admitted: list[str | None] = []
    hold = followers.hold

    def counted(caller: str | None) -> Callable[[], None]:
        release = hold(caller)
        admitted.append(caller)
        return release

    followers.hold = counted  # type: ignore[method-assign]
    running.server.start()
    stub = RulesServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
    stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(1))),
        metadata=as_caller("a"),
        timeout=30,
    )
    return Server(stub, engine, running, admitted)


@pytest.fixture
def server(tmp_path: Path, rulebook: Any) -> Iterator[Server]:
    s = start(tmp_path, rulebook)
    yield s
    s.running.server.stop(None)
    s.engine.dispose()


def hold_the_write_lock(engine: Engine) -> Any:
    """A transaction holding the process's SQLite write lock (as a long batch does)
    until it ends."""
    transaction = engine.begin()
    connection = transaction.__enter__()
    connection.exec_driver_sql("UPDATE feed_head SET publisher = publisher")
    return transaction


def test_cancelling_and_reconnecting_while_the_write_lock_is_held_keeps_a_thread_per_slot(
    server: Server,
) -> None:
    """R61-2: each cancelled stream gave its slot back at once while its thread still
    waited for the write lock, so a follower that cancelled and reconnected 8 times held
    8 threads (with 8, every thread Evaluate has). Now the slot is held until the thread
    ends, and the thread ends as soon as its call is cancelled."""
    lock = hold_the_write_lock(server.engine)
    try:
        most = 0
        for _ in range(8):
            stream = server.admit("a")
            most = max(most, server.threads)
            stream.cancel()
        assert len(server.admitted) == 8  # no reconnect refused
        assert most <= server.followers.per_caller  # never more threads than its slots
        # every cancelled stream's thread ends while the lock is still held
        wait_until(lambda: server.threads == 0 and server.followers.open_count() == 0, 15)
    finally:
        lock.__exit__(None, None, None)


def test_a_follower_reconnecting_from_a_full_share_is_admitted_once_its_old_thread_ends(
    server: Server,
) -> None:
    """The reconnect case: a follower holding its share (2 streams, both waiting for the
    write lock) cancels one and reconnects at once. The new stream is not refused for
    the stream it left: it waits until that stream's thread has seen the cancel and
    ended; and then the follower holds 2 threads, not 3."""
    lock = hold_the_write_lock(server.engine)
    try:
        first, second = server.admit("a"), server.admit("a")
        first.cancel()
        again = server.admit("a")
        wait_until(lambda: server.threads == 2, 15)
        assert server.followers.open_count() == 2
        for stream in (second, again):
            stream.cancel()
        wait_until(lambda: server.threads == 0, 15)
    finally:
        lock.__exit__(None, None, None)


def test_refused_followers_do_not_take_evaluate_s_threads(
    tmp_path: Path, rulebook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R61-3: with every slot taken, each further WatchChanges waited for a slot on a
    thread of the pool Evaluate runs on, so a few refused followers held every thread
    and Evaluate queued behind them. Now a caller holding no slot is refused at once,
    and of the callers holding one only one stream waits (here the wait is made long;
    with 6 threads, 4 followers and that waiter leave one for Evaluate)."""
    monkeypatch.setattr(feed, "SLOT_GRACE_SECONDS", 600.0)
    s = start(tmp_path, rulebook, workers=6)
    try:
        held = [s.admit(caller) for caller in ("a", "a", "b", "b")]
        for stream in held:
            next(stream)
        codes: list[grpc.StatusCode] = []
        got: list[pb.Change] = []

        def ask(caller: str) -> None:
            try:
                got.append(next(s.watch(caller)))
            except grpc.RpcError as exc:
                codes.append(exc.code())

        askers = [threading.Thread(target=ask, args=(c,)) for c in ["c"] * 6 + ["a"] * 3]
        for t in askers:
            t.start()
        # all refused but one of "a"'s, which waits for a slot "a" may give back
        wait_until(lambda: len(codes) == 8, 30)
        assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert s.followers.waiting_count() == 1
        assert s.threads == 5
        evaluated = s.stub.Evaluate(
            pb.EvaluateRequest(profile=profile_from_json(profile(7))),
            metadata=as_caller("c"),
            timeout=30,
        )
        assert evaluated.enterprise_id
        held[0].cancel()  # "a" gives a slot back: its waiting stream takes it
        wait_until(lambda: len(got) == 1, 30)
        for t in askers:
            t.join(30)
        for stream in held:
            stream.cancel()
    finally:
        s.running.server.stop(None)
        s.engine.dispose()
