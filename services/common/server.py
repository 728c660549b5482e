"""What both gRPC servers share: options, interceptors, thread pools, admission, health,
reflection, shutdown.

Calls run on two thread pools, so a database that hangs cannot starve the calls that need
none: `db` for methods that touch the database, `calls` for the rest (evaluations, the
standards, health, reflection). Each pool counts the calls it holds (queued or running):
past `max_concurrent` of them a call is refused at once with RESOURCE_EXHAUSTED and the
rate limiter's `retry-after` trailer, from a pool of its own. SIGTERM drains: health
NOT_SERVING, the calls already sent finish, then the server stops.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import os
import queue
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine

from services.common.config import OperatorError, StoppedWhileStarting, env_flag
from services.common.context import deadline_in, no_call_ended
from services.common.db import SQLITE_SYNCHRONOUS, DatabaseReadOnly, DbTimeouts, ping
from services.common.interceptors import (
    INFRASTRUCTURE_PREFIXES,
    HandlerInterceptor,
    LoggingInterceptor,
    wrap_handler,
)
from services.common.malformed import MalformedRequestInterceptor

# what a server receives at most in a message unless it says otherwise (new_server's
# max_message): rules' whole API; booking takes its largest visit (grpc_server.py)
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_ANSWER_BYTES = 4 * MAX_MESSAGE_BYTES  # what a server sends at most (a batch's decisions)
DEFAULT_MAX_CONCURRENT = 128
RETRY_AFTER_BUSY = 1  # seconds, in the retry-after trailer of a refusal for load
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
# threads for health Watch streams (client-side health checking keeps one open per
# connection); past this many at once a new Watch is refused RESOURCE_EXHAUSTED with a
# retry hint (it waited, unanswered, for one to end: its client saw neither SERVING nor
# an error); Check needs no thread of these
HEALTH_WATCHERS = 64
NO_DEADLINE = 10**6  # grpc reports "no deadline" as a very long time remaining
_log = structlog.get_logger("server")


class CallPool(futures.ThreadPoolExecutor):
    """A thread pool that knows how many calls it holds (queued or running).

    A ThreadPoolExecutor to grpc (which takes only those as a method's pool), but its
    workers are daemon threads of its own: the standard pool's are joined when the
    interpreter exits, so a call still stuck once the drain had cancelled it (waiting on a
    database lock, a group's leader, its deadline) held the process's exit for up to its
    deadline after the drain had ended: SIGTERM under load exited 18-24 s after the
    signal, not 15 (the soak of review 68). A call cancelled by the drain can no longer
    be answered, so nothing it does afterwards is acknowledged to anyone; its
    transaction, unfinished, is rolled back by the database when the process ends."""

    def __init__(self, workers: int, name: str) -> None:
        super().__init__(max_workers=workers, thread_name_prefix=name)  # never starts any
        self._name = name
        self._count_lock = threading.Lock()
        self._held = 0
        self._closed = False
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._workers: list[threading.Thread] = []
        # its workers hold no reference to it: a pool dropped unshut (a test's server)
        # ends its idle workers, as ThreadPoolExecutor's do
        self._gone = weakref.ref(self, functools.partial(_end_workers, self._work))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        future: futures.Future[Any] = futures.Future()
        with self._count_lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._held += 1
            future.add_done_callback(self._release)
            self._work.put(_Work(future, fn, args, kwargs))
            self._grow()
        return future

    def _grow(self) -> None:
        """One more worker unless one is idle or all are running (under _count_lock)."""
        if self._idle.acquire(timeout=0) or len(self._workers) >= self._max_workers:
            return
        worker = threading.Thread(
            target=_serve,
            args=(self._work, self._idle),
            name=f"{self._name}_{len(self._workers)}",
            daemon=True,
        )
        worker.start()
        self._workers.append(worker)
        _WORKERS.add(worker)

    def _release(self, _future: object) -> None:
        with self._count_lock:
            self._held -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; `cancel_futures`: those still queued are cancelled; `wait`: the
        running ones are waited for."""
        with self._count_lock:
            self._closed = True
        while cancel_futures:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                break
            if work is not None:
                work.future.cancel()
        self._work.put(None)
        if wait:
            for worker in list(self._workers):
                worker.join()
        super().shutdown(wait=False)

    @property
    def held(self) -> int:
        return self._held

    @property
    def size(self) -> int:
        """Its threads."""
        return int(self._max_workers)

    def threads(self) -> list[threading.Thread]:
        """Its worker threads (for tests)."""
        return list(self._workers)


# every CallPool worker of the process, while its thread lives (`exit_process`)
_WORKERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def exit_process(code: int) -> NoReturn:
    """End the process with `code` (a `python -m services.…` entry point's last step).

    A call still stuck once the drain has ended runs on in a daemon thread (`CallPool`).
    Should it wake while the interpreter finalises and write a log line, CPython can
    abort ("Fatal Python error: could not acquire lock for <stderr> at interpreter
    shutdown, possibly due to daemon threads": exit 134, not 0; review 73 item 4). So
    when such a thread still lives, everything the process does at exit is done here
    (the atexit functions: log handlers flushed…; the entry point has already drained,
    disposed its engines and stopped its workers), the standard streams are flushed,
    and the process ends with os._exit: finalisation never meets the thread. Without
    one (every command but a server stopped with calls stuck) it exits as usual."""
    if not any(worker.is_alive() for worker in list(_WORKERS)):
        raise SystemExit(code)
    atexit._run_exitfuncs()  # what exit would run (logging.shutdown…), run before os._exit
    for stream in (sys.stdout, sys.stderr):
        # a closed stream or a reader gone: nothing left to keep
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _end_workers(work_queue: queue.SimpleQueue[_Work | None], _ref: object) -> None:
    work_queue.put(None)


def _serve(work_queue: queue.SimpleQueue[_Work | None], idle: threading.Semaphore) -> None:
    """A CallPool worker: runs the calls queued until shutdown (a None)."""
    while (work := work_queue.get()) is not None:
        work.run()
        del work  # no reference kept to the call's request while idle
        idle.release()
    work_queue.put(None)  # the next worker ends too


@dataclass
class _Work:
    future: futures.Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # the future carries it, as ThreadPoolExecutor's do
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


@dataclass(frozen=True)
class CallPools:
    calls: CallPool  # no database: evaluations, standards, health, reflection
    db: CallPool  # everything that touches the database
    refusals: CallPool  # answers "too busy" without waiting behind busy workers
    # health Watch streams: each holds a thread while open, so they get threads of their
    # own (never the calls' workers) and are not calls the drain waits for: they end
    # once they have sent NOT_SERVING (`_DrainingHealth`)
    watches: CallPool
    # set when the server starts to drain: a long-lived stream (ReportEventStream,
    # WatchChanges) then ends soon with UNAVAILABLE, its client reconnecting elsewhere,
    # instead of holding the drain to the end of its grace period
    draining: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, workers: int, db_workers: int) -> CallPools:
        return cls(
            CallPool(workers, "rpc"),
            CallPool(db_workers, "rpc-db"),
            CallPool(2, "busy"),
            CallPool(HEALTH_WATCHERS, "health-watch"),
        )

    def held(self) -> int:
        """Calls accepted and not finished (refusals not counted)."""
        return self.calls.held + self.db.held

    def wait_quiet(
        self, settle: float, timeout: float, cut_short: threading.Event | None = None
    ) -> bool:
        """Wait until no call has been held for `settle` seconds (True), or `timeout`
        passes or `cut_short` is set (False)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while cut_short is None or not cut_short.is_set():
            now = time.monotonic()
            if self.held():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                return True
            if now >= deadline:
                return False
            time.sleep(0.02)
        return False

    def shutdown(self) -> None:
        for pool in (self.calls, self.db, self.refusals, self.watches):
            pool.shutdown(wait=False, cancel_futures=True)


class AdmissionInterceptor(HandlerInterceptor):
    """Outermost: picks each call's thread pool, and refuses a call at once when
    `max_concurrent` calls are already held (RESOURCE_EXHAUSTED + retry-after). It runs
    when the server accepts a call, before the call is queued."""

    def __init__(
        self,
        pools: CallPools,
        db_free: frozenset[str],
        max_concurrent: int,
        logging: LoggingInterceptor,
        long_lived: frozenset[str] = frozenset(),
    ) -> None:
        self._pools = pools
        self._db_free = db_free
        self._max = max_concurrent
        self._logging = logging
        self._long_lived = long_lived | {HEALTH_WATCH}

    def intercept(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        """A new long-lived stream while the server drains is refused UNAVAILABLE with a
        retry hint (its client is meant to reconnect elsewhere; the refusal is not a call
        the drain waits for), any call past `max_concurrent` RESOURCE_EXHAUSTED."""
        method = details.method
        infrastructure = method.startswith(INFRASTRUCTURE_PREFIXES)
        if method in self._long_lived and self._pools.draining.is_set():
            return self._refused(handler, method, _DRAINING)
        if method == HEALTH_WATCH:
            if self._pools.watches.held >= self._pools.watches.size:
                return self._refused(handler, method, _WATCHERS_FULL)
            return _on(handler, self._pools.watches)
        if self._max and not infrastructure and self._pools.held() >= self._max:
            return self._refused(handler, method, _BUSY)
        needs_db = not infrastructure and method not in self._db_free
        return _on(handler, self._pools.db if needs_db else self._pools.calls)

    def _refused(self, handler: Any, method: str, why: _Refusal) -> Any:
        """The handler replaced by `why`'s refusal, logged, on the refusals' own pool."""
        refused = wrap_handler(handler, lambda _b: why.unary, lambda _b: why.stream)
        return _on(self._logging.wrap(refused, method), self._pools.refusals)


@dataclass(frozen=True)
class _Refusal:
    """A call refused before its handler runs: its code, message and retry hint."""

    code: grpc.StatusCode
    message: str
    retry_after: int

    def unary(self, _request: Any, context: grpc.ServicerContext) -> Any:
        context.set_trailing_metadata((("retry-after", str(self.retry_after)),))
        context.abort(self.code, self.message)

    def stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.unary(request, context)
        yield  # pragma: no cover - abort raises


_BUSY = _Refusal(
    grpc.StatusCode.RESOURCE_EXHAUSTED, "too many calls in progress; retry later", RETRY_AFTER_BUSY
)
_WATCHERS_FULL = _Refusal(
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    "too many health Watch streams open on this server process; retry later, or use Check",
    5,
)
_DRAINING = _Refusal(
    grpc.StatusCode.UNAVAILABLE, "the server is shutting down; reconnect to another replica", 1
)


def _on(handler: Any, pool: CallPool) -> Any:
    """The handler, run on `pool` (grpc's per-behaviour thread pool); a unary call's
    database work is bounded by the caller's deadline (context.deadline_in)."""

    def unary(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            no_call_ended()
            left = context.time_remaining()
            with deadline_in(left if left is not None and left < NO_DEADLINE else None):
                return behaviour(request, context)

        run.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return run

    def stream(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            no_call_ended()  # a stream's end (context.ending_with) is its own
            return behaviour(request, context)

        run.experimental_thread_pool = pool  # type: ignore[attr-defined]
        return run

    return wrap_handler(handler, unary, stream)


@dataclass(frozen=True)
class Limits:
    """Threads and the concurrency limit of a server (flags --workers, --db-workers,
    --max-concurrent)."""

    workers: int = 8
    db_workers: int = 8
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    shared_port: bool = False  # one of `serve --processes N` children: SO_REUSEPORT


def add_flags(parser: argparse.ArgumentParser, env_prefix: str) -> None:
    """--workers, --db-workers and --max-concurrent, each with an environment fallback."""
    env_flag(
        parser,
        "--workers",
        f"{env_prefix}_WORKERS",
        8,
        "threads for calls that need no database (evaluations, health)",
        type=int,
    )
    env_flag(
        parser,
        "--db-workers",
        f"{env_prefix}_DB_WORKERS",
        8,
        "threads for calls that use the database (the connection pool is sized to match)",
        type=int,
    )
    env_flag(
        parser,
        "--max-concurrent",
        f"{env_prefix}_MAX_CONCURRENT",
        DEFAULT_MAX_CONCURRENT,
        "calls in progress (running or queued) before RESOURCE_EXHAUSTED with retry-after; "
        "0: no limit",
        type=int,
    )
    add_database_flags(parser, env_prefix)


def add_database_flags(parser: argparse.ArgumentParser, env_prefix: str) -> None:
    """--db-timeout, --db-connect-timeout, --db-pool-timeout (seconds),
    --sqlite-synchronous."""
    defaults = DbTimeouts()
    for flag, name, default, text in (
        (
            "--db-timeout",
            "DB_TIMEOUT",
            defaults.statement,
            "seconds a statement may run (PostgreSQL statement_timeout, SQLite busy "
            "timeout); a connection held longer is cut",
        ),
        ("--db-connect-timeout", "DB_CONNECT_TIMEOUT", defaults.connect, "seconds to connect"),
        (
            "--db-pool-timeout",
            "DB_POOL_TIMEOUT",
            defaults.pool,
            "seconds to wait for a pooled connection",
        ),
    ):
        env_flag(parser, flag, f"{env_prefix}_{name}", default, text, type=float)
    env_flag(
        parser,
        "--sqlite-synchronous",
        f"{env_prefix}_SQLITE_SYNCHRONOUS",
        "full",
        "SQLite only: full syncs every commit to disk before it is acknowledged; normal "
        "syncs at checkpoints only (faster writes; a power cut or an OS crash can lose the "
        "last acknowledged ones: only for a disk whose write cache survives power loss)",
        type=_synchronous,
    )


def _synchronous(text: str) -> str:
    value = text.lower()
    if value not in SQLITE_SYNCHRONOUS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(SQLITE_SYNCHRONOUS)}")
    return value


def sqlite_synchronous_from(args: argparse.Namespace) -> str:
    return str(getattr(args, "sqlite_synchronous", "full"))


def timeouts_from(args: argparse.Namespace) -> DbTimeouts:
    return DbTimeouts(
        float(args.db_timeout), float(args.db_connect_timeout), float(args.db_pool_timeout)
    )


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(
        int(args.workers),
        int(args.db_workers),
        int(args.max_concurrent),
        bool(getattr(args, "shared_port", False)),
    )


def new_server(
    *,
    limits: Limits,
    db_free: Iterable[str] = (),
    items_checked: Iterable[str] = (),
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    long_lived: Iterable[str] = (),
    max_message: int = MAX_MESSAGE_BYTES,
    large_messages: Iterable[str] = (),
) -> tuple[grpc.Server, CallPools]:
    """A grpc.Server with message limits, keepalive, the admission and per-RPC logging
    interceptors, and its thread pools; `db_free` names the methods that need no
    database (full paths, /pkg.Service/Method), `items_checked` the unary methods that
    check each item's text themselves (malformed.py), `long_lived` the streams that end
    when the server drains (new ones are then refused: `AdmissionInterceptor`);
    `max_message` the largest message `large_messages` (full paths) receive (gRPC
    refuses a larger one, RESOURCE_EXHAUSTED, before any field is read); every other
    method's is MAX_MESSAGE_BYTES, refused alike before it is decoded (gRPC sets its
    limit a server, not a method: review 73)."""
    options = [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", MAX_ANSWER_BYTES),
        ("grpc.so_reuseport", 1 if limits.shared_port else 0),
        ("grpc.keepalive_time_ms", 60_000),
    ]
    pools = CallPools.create(limits.workers, limits.db_workers)
    logging = LoggingInterceptor()
    admission = AdmissionInterceptor(
        pools, frozenset(db_free), limits.max_concurrent, logging, frozenset(long_lived)
    )
    server = grpc.server(
        pools.calls,
        # admission outermost (it picks the pool); logging next (it sees every refusal);
        # then the caller's (authentication: an unknown caller learns nothing of what it
        # sent, as over HTTP/JSON); bad bytes and control characters are refused next,
        # before the handler
        interceptors=[
            admission,
            logging,
            *interceptors,
            MalformedRequestInterceptor(
                frozenset(items_checked), MAX_MESSAGE_BYTES, frozenset(large_messages)
            ),
        ],
        options=options,
        # a last resort only, should refusals themselves pile up (it sends no retry-after)
        maximum_concurrent_rpcs=4 * limits.max_concurrent if limits.max_concurrent else None,
    )
    return server, pools


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    pools: CallPools


_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _DrainingHealth(health.HealthServicer):
    """grpc's health service, whose Watch streams end (OK) once the server drains and
    they have sent NOT_SERVING: an open watcher then holds neither the drain nor the
    server's stop until the end of the grace period (review 40 F1). Watch runs here as
    grpc's blocking generator (the interceptors' wrappers take the place of its
    non-blocking form), on the pools' `watches` threads."""

    def __init__(self, draining: threading.Event) -> None:
        super().__init__(experimental_non_blocking=True)
        self._draining = draining

    def Watch(
        self, request: Any, context: grpc.ServicerContext, send_response_callback: Any = None
    ) -> Any:
        watcher = super().Watch(request, context, send_response_callback)
        return None if watcher is None else self._until_drained(watcher, context)

    def _until_drained(
        self, watcher: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        """The watcher's statuses, ended after a NOT_SERVING sent while draining; a
        watcher ended by its caller (grpc closes it quietly) is logged CANCELLED, not OK."""
        for response in watcher:
            yield response
            if self._draining.is_set() and response.status == _NOT_SERVING:
                return
        if not context.is_active():
            context.set_code(grpc.StatusCode.CANCELLED)


def add_health_and_reflection(
    server: grpc.Server, service_names: Iterable[str], draining: threading.Event | None = None
) -> health.HealthServicer:
    """Serve grpc.health.v1 (per service, SERVING) and server reflection; health Watch
    streams end once `draining` is set and they have sent NOT_SERVING."""
    names = list(service_names)
    checker = _DrainingHealth(draining or threading.Event())
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ["", *names]:
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return checker


def bind(server: grpc.Server, address: str) -> int:
    """Bind an insecure port; port 0 picks a free one. An address taken or not one is
    an OperatorError (one line, exit 1), as grpc raises RuntimeError or returns 0."""
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OperatorError(cannot_listen("gRPC", address))
    return port


def cannot_listen(what: str, address: str) -> str:
    return (
        f"cannot listen for {what} on {address[:80]!r}: the port is taken (another server "
        "running?) or the address is not HOST:PORT on this machine"
    )


# How often the main thread wakes while it waits for a stop signal. A signal the kernel
# hands to another thread (gRPC's and the feed's threads do not block SIGTERM) only sets
# CPython's flag; the main thread runs the Python handler at its next bytecode, so an
# untimed wait would never see it (a server that ignored SIGTERM for good, once in three CI
# runs in stop 33).
STOP_POLL_SECONDS = 0.2
# A stop signal this soon after the first is the same stop delivered twice, not a second
# one: Ctrl-C reaches every process of the terminal's process group, and systemd signals
# every process of the unit's cgroup, so a child of `serve --processes N` gets the signal
# both from there and from its parent, which passes it on.
SAME_STOP_SECONDS = 1.0


class StopSignal(threading.Event):
    """Set by SIGTERM/SIGINT. Until `serving()` is called a signal also raises
    `StoppedWhileStarting` in the main thread, so a start-up that waits (a database that
    does not answer, another replica's migration lock, a connect timeout, another
    process's SQLite write lock) ends at once instead of when the wait does (the handler
    runs between two bytecodes: SQLite's busy wait, in C, is cut in slices of
    `db.BUSY_SLICE_MS` in the main thread for it); from `serving()` on it only sets the
    event, and the server drains. A second signal once serving (SAME_STOP_SECONDS or
    more after the first) sets `again` too: the drain is cut short (the calls still in
    progress are cancelled at once; what they committed stays)."""

    def __init__(self) -> None:
        super().__init__()
        self._serving = False
        self.signal_name = ""
        self.again = threading.Event()
        self._first_at = 0.0

    def serving(self) -> None:
        """Start-up passed the point where abandoning it could leave anything behind
        (threads, a bound port): a stop from now on drains."""
        self._serving = True

    def handle(self, signum: int, _frame: object) -> None:
        # no log line here: the handler runs in the main thread between two bytecodes,
        # perhaps inside a log write that holds the stderr lock (not reentrant): logging
        # from it hung the process for good (review 69); the waiter logs instead
        first = not self.is_set()
        if first:
            self.signal_name = signal.Signals(signum).name
            self._first_at = time.monotonic()
        elif self._serving and time.monotonic() - self._first_at >= SAME_STOP_SECONDS:
            self.again.set()
        self.set()
        if first and not self._serving:  # once: a second would break the first's unwinding
            raise StoppedWhileStarting(self.signal_name)


def catch_stop_signals() -> StopSignal:
    """Install the SIGTERM/SIGINT handlers now and return the event they set. An entry
    point calls this before it starts anything, so a signal sent while it is still
    starting stops it at once and quietly (exit 0, `StoppedWhileStarting`, caught by
    `config.run_command`), and one sent once it serves (`StopSignal.serving`) drains."""
    stop = StopSignal()
    signal.signal(signal.SIGTERM, stop.handle)
    signal.signal(signal.SIGINT, stop.handle)
    return stop


def wait_for_stop(stop: threading.Event) -> None:
    """Block the main thread until `stop` is set, waking every STOP_POLL_SECONDS so a
    signal delivered to any thread is handled."""
    while not stop.wait(STOP_POLL_SECONDS):
        pass
    _log.info("shutting down", signal=getattr(stop, "signal_name", "") or None)


def serve_until_signalled(
    running: RunningServer,
    grace_seconds: float = 15.0,
    on_stop: Callable[[], None] | None = None,
    settle_seconds: float = 0.5,
    stop: threading.Event | None = None,
) -> None:
    """Block until SIGTERM/SIGINT (`stop`, from `catch_stop_signals`; installed here when
    not given), then drain: health NOT_SERVING (balancers stop sending), every call
    already sent is still taken and finished, and once no call has been in progress for
    `settle_seconds` the server stops; calls still running then get what is left of
    `grace_seconds` before they are cancelled. A second signal during the drain
    (`StopSignal.again`) cancels them at once."""
    if stop is None:
        stop = catch_stop_signals()
    if isinstance(stop, StopSignal):
        stop.serving()
    wait_for_stop(stop)
    _log.info("draining", grace_seconds=grace_seconds)
    drain(running, grace_seconds, settle_seconds, getattr(stop, "again", None))
    if on_stop:
        on_stop()
    _log.info("stopped")


def drain(
    running: RunningServer,
    grace_seconds: float = 15.0,
    settle: float = 0.5,
    cut_short: threading.Event | None = None,
) -> None:
    """Health NOT_SERVING and long-lived streams told to end (`CallPools.draining`), wait
    for quiet (at most `grace_seconds`, or until `cut_short` is set: a second stop
    signal), then stop. The calls still in progress then are cancelled; their threads
    (daemon threads, `CallPool`) do not hold the process's exit."""
    deadline = time.monotonic() + grace_seconds
    running.pools.draining.set()  # first: a health watcher ends on the NOT_SERVING it gets
    running.health.enter_graceful_shutdown()
    quiet = running.pools.wait_quiet(settle, grace_seconds, cut_short)
    if cut_short is not None and cut_short.is_set():
        _log.warning("second stop signal: the drain is cut short", calls=running.pools.held())
        deadline = time.monotonic()
    elif not quiet:
        _log.warning(
            "calls still in progress at the end of the grace period", calls=running.pools.held()
        )
    running.server.stop(max(0.0, deadline - time.monotonic())).wait()
    running.pools.shutdown()


# Health turns NOT_SERVING once PROBE_FAILURES of the last PROBE_WINDOW probes failed (a
# database that cannot write turns it at once), and SERVING again only after
# PROBE_RECOVERY probes in a row answered. 3 failures: Kubernetes' readiness
# failureThreshold, 3 by default, likewise.
PROBE_FAILURES = 3
PROBE_WINDOW = 4
PROBE_RECOVERY = 2


class ProbeVerdict:
    """The rule that turns the probes' outcomes into SERVING or NOT_SERVING (review 61
    R61-5). A sliding window, not failures in a row: with a count reset by any probe that
    answered, a database down three quarters of the time read SERVING two thirds of the
    time. `failures` of the last `window` probes failed: NOT_SERVING; then only
    `recovery` answered probes in a row make it SERVING again, so one probe that gets
    through a flapping database's brief upturn does not bring traffic back. A probe
    that found the database answering but unable to write is NOT_SERVING at once.

    The cost, with failures independent of each other (a simulation of 200,000 probes):
    a probe failing 10 % of the time (load) reads SERVING 99.5 % of the time (the
    failures-in-a-row rule: 99.9 %), 25 %: 93 % (98 %), 50 %: 59 % (88 %), 75 %: 18 %
    (58 %). A dead database takes `failures` probes, as before."""

    def __init__(
        self,
        failures: int = PROBE_FAILURES,
        window: int = PROBE_WINDOW,
        recovery: int = PROBE_RECOVERY,
    ) -> None:
        if not 1 <= failures <= window or recovery < 1:
            raise ValueError("need 1 <= failures <= window and recovery >= 1")
        self._failures = failures
        self._recent: deque[bool] = deque(maxlen=window)  # True: the probe answered
        self._recovery = recovery
        self._answered_in_a_row = 0
        self.serving = True

    def record(self, answered: bool, read_only: bool = False) -> bool:
        """One probe's outcome (`read_only`: it answered that the database cannot write,
        which is a failure too); returns whether health is SERVING now."""
        answered = answered and not read_only
        self._recent.append(answered)
        self._answered_in_a_row = self._answered_in_a_row + 1 if answered else 0
        if self.serving:
            failed = sum(not each for each in self._recent)
            self.serving = not (read_only or failed >= self._failures)
        elif self._answered_in_a_row >= self._recovery:
            self.serving = True
            self._recent.clear()
        return self.serving

    def failed(self) -> int:
        """Failed probes in the window."""
        return sum(not each for each in self._recent)


def watch_database(
    engine: Engine,
    checker: health.HealthServicer,
    service_names: Iterable[str],
    interval: float = 5.0,
    probe_timeout: float = 3.0,
    failures: int = PROBE_FAILURES,
) -> threading.Event:
    """Report NOT_SERVING while the database is sick; returns an Event that stops it.

    Every `interval` seconds a probe (db.ping) asks the database, on a pooled connection,
    whether it answers and can take writes (db.check_writable). A database that answers
    but cannot write (a hot standby after a failover, a read-only database, a SQLite file
    this process cannot write: review 57 D1) is NOT_SERVING at once: that is no load.
    Any other failure (no answer within `probe_timeout`, no connection to be had, an
    error) turns health NOT_SERVING only once `failures` of the last PROBE_WINDOW probes
    have failed (ProbeVerdict): a pool whose connections are all taken by calls for a
    moment, or a database that refuses one more connection past its connection limit
    while it answers the ones the pool holds, is load, not sickness, and made health flap
    (review 57 N1: NOT_SERVING in a quarter of the samples under a connection limit).
    SERVING again takes PROBE_RECOVERY probes in a row that answered, so a flapping
    database is not SERVING most of the time (review 61 R61-5).

    Bounds, by default: a database that refuses connections is NOT_SERVING within
    `failures` × `interval` (15 s); one that stalls (a partition, a hung server) within
    `failures` × (`interval` + `probe_timeout`) (24 s), since each probe waits its timeout
    first; its calls answer UNAVAILABLE meanwhile. SERVING again within about
    PROBE_RECOVERY × `interval` (10 s) of the database answering.

    The probe runs on a thread of its own under its own deadline (the watchdog cuts a
    stalled connection), so neither this loop nor the health servicer ever waits on the
    database, and a probe still stuck is not joined by another (each interval it stays
    stuck counts as one more failure)."""
    names = ["", *service_names]
    stop = threading.Event()

    def loop() -> None:
        last = None
        verdict = ProbeVerdict(failures, window=max(PROBE_WINDOW, failures))
        probe: _Probe | None = None
        while not stop.is_set():
            if probe is None or probe.finished.is_set():
                probe = _Probe(engine, probe_timeout)
            answered = probe.finished.wait(probe_timeout) and probe.error is None
            serving = verdict.record(answered, read_only=not answered and probe.read_only)
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            if not answered:
                why = probe.error or f"no answer within {probe_timeout} s"
                if not serving and last != status:
                    _log.warning("database unreachable", error=why)
                elif serving:
                    _log.info(
                        "database probe failed", error=why, failed=verdict.failed(), of=failures
                    )
            if status != last:
                for name in names:
                    checker.set(name, status)
                last = status
            stop.wait(interval)

    threading.Thread(target=loop, name="db-health", daemon=True).start()
    return stop


class _Probe:
    """db.ping on a thread of its own, bounded by `timeout`."""

    def __init__(self, engine: Engine, timeout: float) -> None:
        self.finished = threading.Event()
        self.error: str | None = None
        self.read_only = False  # the database answered: it cannot take writes
        self._engine = engine
        self._timeout = timeout
        threading.Thread(target=self._run, name="db-probe", daemon=True).start()

    def _run(self) -> None:
        try:
            with deadline_in(self._timeout):
                ping(self._engine)  # a pooled connection that died: one more, on a new one
        except Exception as exc:  # any failure to reach the database, or to write to it
            self.read_only = isinstance(exc, DatabaseReadOnly)
            self.error = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        finally:
            self.finished.set()


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key (PEM); with client_ca, clients must present a certificate
    signed by it (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def bind_port(server: grpc.Server, address: str, tls: TlsFiles | None = None) -> int:
    """Bind `address` in plain text or TLS; port 0 picks a free one."""
    if tls is None:
        return bind(server, address)
    credentials = grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
        require_client_auth=tls.client_ca is not None,
    )
    try:
        port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OperatorError(cannot_listen("gRPC", address))
    return port
