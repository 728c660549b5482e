"""The feed's background worker: sequence committed changes, publish them to JetStream.

One `FeedWorker` thread runs in every rules process that has a register. Each pass
positions what has committed (`FeedStore.sequence`) and, when NATS is configured,
publishes the positioned changes not yet published, in position order: on PostgreSQL
while holding the publishers' lock (`FeedStore.lock_publishing`, not the row lock
sequencing takes), so two replicas never publish at once and per-firm order holds on the
bus too; on SQLite with no transaction open (`FeedWorker._publish_batch`), so a slow or
stalled NATS never holds the process's write lock. A
replica that publishes names its bus in the feed head (`claim_publisher`); a replica
without NATS then leaves the changes to it, where it used to mark them delivered, the
unpublished ones too (review 49 F1). Each message carries the change id as `Nats-Msg-Id`: a process
killed between publishing and marking re-publishes on restart and JetStream drops the
duplicate (within the stream's duplicate window; subscribers de-duplicate by id beyond
it). A NATS outage only delays publishing (retried with backoff) and turns the feed's
health service NOT_SERVING; evaluation and the register keep serving.

nats-py is asyncio: the publisher owns one event loop on its own thread, and the worker
calls into it with `run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import structlog

from services.common.db import read_snapshot
from services.rules.adapters.feed import (
    FeedStore,
    mark_all_delivered,
    mark_published,
    unpublished,
)
from services.rules.domain.changes import Change, subject_token

_log = structlog.get_logger("feed")
FEED_HEALTH_NAME = "rules.v1.ChangeFeed"


@dataclass(frozen=True)
class NatsSettings:
    url: str
    stream: str = "RULES_CHANGES"
    subject_prefix: str = "rules.changes"
    duplicate_window_seconds: int = 3600
    max_age_days: int = 30  # JetStream's own retention; the register's is `prune-changes`

    def subject(self, change: Change) -> str:
        return (
            f"{self.subject_prefix}.{subject_token(change.region or 'none')}.{change.enterprise_id}"
        )


async def _nats_error(exc: Exception) -> None:
    """nats-py's errors as one log line of ours: its default printed a traceback through
    the standard logger, lines that broke the JSON log (review 49 N2). The worker's pass
    fails and retries on its own; this only says what the client saw."""
    _log.warning("nats client error", error=f"{type(exc).__name__}: {str(exc)[:200]}")


class NatsUnavailable(RuntimeError):
    """NATS cannot be reached (or refused the stream): publishing waits and retries."""


class JetStreamPublisher:
    """A NATS connection on its own event-loop thread; the stream is created idempotently."""

    def __init__(self, settings: NatsSettings, encode: Callable[[Change], bytes]) -> None:
        self.settings = settings
        self._encode = encode
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._ready = False

    def _run(self, coroutine: Any, timeout: float) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    @property
    def name(self) -> str:
        """The bus as the feed head names it (no URL: it may hold credentials)."""
        return f"NATS JetStream stream {self.settings.stream}"[:200]

    @property
    def connected(self) -> bool:
        """Connected, and the stream known to be there (a failed publish forgets that)."""
        return bool(self._nc is not None and self._nc.is_connected and self._ready)

    def connect(self) -> None:
        """Connect (if not connected) and create or update the stream."""
        if not self.connected:
            try:
                self._run(self._connect(), timeout=10)
            except Exception as exc:
                raise NatsUnavailable(f"NATS at {self.settings.url}: {str(exc)[:120]}") from exc

    async def _connect(self) -> None:
        import nats
        from nats.js.api import StreamConfig

        self._ready = False
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        s = self.settings
        self._nc = await nats.connect(  # the worker reconnects on its next pass
            s.url, connect_timeout=2, allow_reconnect=False, error_cb=_nats_error
        )
        self._js = self._nc.jetstream()
        config = StreamConfig(
            name=s.stream,
            subjects=[f"{s.subject_prefix}.>"],
            duplicate_window=float(s.duplicate_window_seconds),
            max_age=float(s.max_age_days * 86400),
        )
        try:
            await self._js.add_stream(config)
        except Exception as added:  # it exists with another config: bring it to ours
            try:
                await self._js.update_stream(config)
            except Exception:
                raise added from None  # the first error says what is wrong (e.g. overlap)
        self._ready = True

    def publish(self, batch: list[Change]) -> list[int]:
        """Publish in order; return the positions JetStream acknowledged (a prefix)."""
        return list(self._run(self._publish(batch), timeout=30))

    async def _publish(self, batch: list[Change]) -> list[int]:
        done: list[int] = []
        for change in batch:
            try:
                await self._js.publish(
                    self.settings.subject(change),
                    self._encode(change),
                    headers={"Nats-Msg-Id": change.change_id},
                    timeout=5,
                    stream=self.settings.stream,  # never into another stream's subjects
                )
            except Exception as exc:
                _log.warning("publish failed", change_id=change.change_id, error=str(exc)[:120])
                self._ready = False  # reconnect and make sure of the stream next pass
                break
            assert change.position is not None
            done.append(change.position)
        return done

    def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing to keep
                self._run(self._nc.close(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class FeedWorker(threading.Thread):
    """Sequences (and publishes) every `interval` seconds until `stop()`."""

    def __init__(
        self,
        store: FeedStore,
        publisher: JetStreamPublisher | None = None,
        on_health: Callable[[bool], None] | None = None,
        interval: float = 0.2,
        batch: int = 50,  # publishes per hold of the feed head: short holds, even on a far bus
    ) -> None:
        super().__init__(name="feed", daemon=True)
        self.store, self.publisher = store, publisher
        self._on_health = on_health
        self._interval, self._batch = interval, batch
        self._halt = threading.Event()
        self._healthy: bool | None = None
        self._claimed = False  # this process has named its bus in the feed head
        self._head_checked = False  # the head read once: a restored one renewed its epoch
        self._left_to_bus = False  # said once: the changes are left to another's bus

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)
        if self.publisher is not None:
            self.publisher.close()

    def run(self) -> None:
        backoff = self._interval
        while not self._halt.is_set():
            try:
                self.run_once()
                backoff = self._interval
            except Exception as exc:  # a database or NATS outage: retry with backoff
                _log.warning("feed pass failed", error=str(exc)[:200])
                backoff = min(backoff * 2, 10.0)
            self._halt.wait(backoff)

    def run_once(self) -> int:
        """One pass: position what committed, publish what is positioned. Returns published."""
        self._position()
        if self.publisher is None:  # nothing to publish to: positioned means delivered,
            with self.store.engine.begin() as connection:  # unless a replica publishes
                bus = self.store.publisher(connection, hold=True)
                if bus is None:
                    return mark_all_delivered(connection)
            if not self._left_to_bus:
                self._left_to_bus = True
                _log.warning(
                    "this replica runs without --nats; another publishes the changes to "
                    "NATS and they are left to it: give every replica the same --nats, or "
                    "run `forget-feed-publisher` once the bus is given up",
                    publisher=bus,
                )
            return 0
        if not self._claimed:  # before connecting: a bus down at this replica's start
            # must not let the others mark the changes delivered meanwhile (review 50 F2)
            with self.store.engine.begin() as connection:
                other = self.store.claim_publisher(connection, self.publisher.name)
            self._claimed = True
            if other is not None:  # review 50 N7: two buses split the feed between them
                _log.warning(
                    "another replica named another bus for this database's changes: give "
                    "every replica the same --nats settings",
                    before=other,
                    now=self.publisher.name,
                )
        try:
            self.publisher.connect()
            self._health(True)
        except Exception:
            self._health(False)
            raise
        published = 0
        while True:
            sent = self._publish_batch()
            if sent is None:
                return published  # nothing left, or another replica is publishing
            done, tried = sent
            published += done
            if done < tried:
                self._health(False)  # connected or not, the stream does not take them
                raise RuntimeError(f"published {done} of {tried}; retrying")

    def _publish_batch(self) -> tuple[int, int] | None:
        """The next batch published and marked: (published, tried), or None when none is
        left or another replica is publishing.

        PostgreSQL: read, publish and mark in one transaction holding the publishers'
        advisory lock (`FeedStore.lock_publishing`), which nothing else waits on. SQLite:
        no transaction is open while NATS is asked (review 57 D3): every SQLite write
        transaction holds the process's one write lock (db.py), so a publish inside one
        (up to 5 s a message on a stalled NATS) held up every writer of the process and
        its health. The batch is read from a snapshot, published, and the acknowledged
        prefix marked in a short write transaction of its own. Exactly once, in order,
        still: this process's one worker publishes in position order and marks only what
        JetStream acknowledged; a process killed between the two, or another process on
        the same file publishing the same batch meanwhile, sends a change again with the
        same `Nats-Msg-Id`, which JetStream drops, and each change is sent only after the
        one before it was acknowledged, so the stream keeps the feed's order."""
        assert self.publisher is not None
        engine = self.store.engine
        if self.store.publishes_in_transaction:
            with engine.begin() as connection:
                if not self.store.lock_publishing(connection):
                    return None
                batch = unpublished(connection, self._batch)
                if not batch:
                    return None
                done = self.publisher.publish(batch)
                mark_published(connection, done)
            return len(done), len(batch)
        with read_snapshot(engine) as connection:
            batch = unpublished(connection, self._batch)
        if not batch:
            return None
        done = self.publisher.publish(batch)  # no transaction open
        if done:
            with engine.begin() as connection:
                mark_published(connection, done)
        return len(done), len(batch)

    def _position(self) -> None:
        """Position what committed; first of all, once, read the head: a database restored
        since the last start renews its epoch before any cursor of it is published."""
        if not self._head_checked:
            self.store.head()
            self._head_checked = True
        while self.store.sequence(500) == 500:
            pass

    def _health(self, ok: bool) -> None:
        if ok != self._healthy and self._on_health is not None:
            self._on_health(ok)
        self._healthy = ok
