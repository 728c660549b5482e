"""What every benchmark of a gRPC service shares (bench/run.py for rules, reusable for
the register and booking): start a server as its own process and wait for its health,
drive it from client processes of their own while measuring their CPU, percentiles,
medians of rounds with pairwise ratios, and the markdown table.

A figure is only as honest as its client: every load row says how much CPU its client
processes used (`client_cpu`: CPU seconds per wall second, summed over the client
processes, so 1.0 means one core busy). A client near 1.0 per process is the bottleneck,
and the row says so. With `whole=True` a table also says what the machine's PostgreSQL
processes spent (`db_cpu`, same unit: 0 on SQLite, which runs inside the server) and the
CPU of all three per item: 2 cores divided by it bound the rate on this machine, however
many calls are in flight.

Clients send pre-serialised bytes and receive bytes (gRPC's identity serialisers), so the
client spends the same small effort on the project's call and on the echo baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- servers as processes


def launch(args: Sequence[str], log: Path) -> tuple[subprocess.Popen[bytes], Any]:
    """`python -m ARGS` from the checkout, unbuffered, its stderr (the JSON log) to `log`:
    (the process, the open log file, to close once it has ended)."""
    handle = log.open("w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stderr=handle)
    return proc, handle


def wait_logged(
    proc: subprocess.Popen[bytes], log: Path, event: str, timeout: float
) -> dict[str, Any]:
    """The first JSON line of `log` whose event is `event` (a service's "… listening",
    with its ports), waiting up to `timeout` s; RuntimeError once the process has ended
    or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log}: exited {proc.returncode}")
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and json.loads(line).get("event") == event:
                return dict(json.loads(line))
        time.sleep(0.2)
    raise RuntimeError(f"{log}: no {event!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_tokens(folder: Path, scopes: Sequence[str], rate: float = 1_000_000.0) -> str:
    """A tokens file with one batch caller (its own high rate limit, README "Security");
    returns the bearer token."""
    token = secrets.token_urlsafe(24)
    entry = {"caller": "bench", "token": token, "scopes": list(scopes), "rate_per_second": rate}
    path = folder / "tokens.json"
    path.write_text(json.dumps({"tokens": [entry]}), encoding="utf-8")
    path.chmod(0o600)
    return token


def wait_healthy(
    address: str,
    service: str = "",
    timeout: float = 120.0,
    exited: Callable[[], int | None] = lambda: None,
) -> None:
    """Until `address` answers grpc.health.v1 Check(service) with SERVING; RuntimeError at
    once when `exited()` gives the server's exit code (it failed to start, e.g. its port
    was taken between `free_port` and its bind), instead of waiting out the timeout."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            code = exited()
            if code is not None:
                raise RuntimeError(f"the server for {address} exited with {code} before serving")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not healthy after {timeout:.0f} s")
            time.sleep(0.2)


@dataclass
class ServerProcess:
    """A server started as `python -m <argv>`, its output in `log`; the whole process tree
    (a `--processes N` parent and its children) is measured together."""

    argv: list[str]
    address: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, health_service: str = "", timeout: float = 120.0) -> ServerProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.argv],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        try:
            wait_healthy(self.address, health_service, timeout, self.process.poll)
            self._wait_children()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, RuntimeError | TimeoutError):
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"{exc}; the end of {self.log}:\n{tail}") from exc
            raise
        return self

    def _wait_children(self) -> None:
        """A `--processes N` parent reports health only once; wait until its log says all
        children serve (its `listening` line comes after every child's ready mark)."""
        if "--processes" not in self.argv or self.argv[self.argv.index("--processes") + 1] == "1":
            return
        deadline = time.monotonic() + 120
        while b'"rules service listening"' not in self.log.read_bytes():
            if time.monotonic() > deadline:
                raise TimeoutError("the server processes did not all start")
            time.sleep(0.2)

    def tree(self) -> list[psutil.Process]:
        assert self.process is not None
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]

    def rss_mb(self) -> float:
        """Resident memory of the serving processes (the children of a `--processes N`
        parent, else the one process), in MB."""
        procs = self.tree()
        serving = procs[1:] or procs
        return sum(p.memory_info().rss for p in serving) / 2**20

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- load from client processes


@dataclass(frozen=True)
class Load:
    """One measurement: `in_flight` calls kept outstanding for `seconds` (after `warmup`),
    spread over `clients` processes and `channels` connections in each."""

    address: str
    method: str  # full path, /pkg.Service/Method
    payloads: tuple[bytes, ...]  # serialised requests, sent round-robin
    in_flight: int = 8
    seconds: float = 3.0
    warmup: float = 0.5
    clients: int = 1
    channels: int = 2  # per client process: distinct connections (SO_REUSEPORT spreads them)
    stream: bool = False  # one stream_stream call per client, pipelined
    # streams: at most this many requests unanswered on each stream (the client's window;
    # 0: as many as gRPC's flow control lets through), in_flight // window streams in all,
    # spread over the clients; each stream sends its own payloads and times each reply
    window: int = 0
    error_prefix: bytes = b""  # streams: a reply starting with these bytes is an error
    items_per_call: int = 1  # a batch request counts this many items
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass
class Measured:
    calls: int
    seconds: float
    latencies: list[float]  # seconds, one per call (streams: one per reply with a window)
    client_cpu: float  # CPU seconds of the client processes per wall second
    client_cpu_max: float  # the busiest client process, same unit (1.0 = a core)
    server_cpu: float = 0.0  # CPU seconds of the server tree per wall second
    items_per_call: int = 1
    db_cpu: float = 0.0  # CPU seconds of the PostgreSQL processes per wall second

    @property
    def all_cpu_per_item(self) -> float:
        """Client, server and database CPU microseconds per item: the machine's cost of
        one, which the cores bound the rate by."""
        cpu = self.client_cpu + self.server_cpu + self.db_cpu
        return cpu / self.rate * 1e6 if self.rate else 0.0

    @property
    def rate(self) -> float:
        return self.calls * self.items_per_call / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_item(self) -> float:
        """Server CPU microseconds per item: steadier than the rate on a shared machine,
        where the server may not get a whole core."""
        return self.server_cpu / self.rate * 1e6 if self.rate else 0.0

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0–100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def measure(
    load: Load,
    server: ServerProcess | None = None,
    on_start: Callable[[], object] | None = None,
) -> Measured:
    """Run `load` from `load.clients` fresh processes; they start together after warm-up
    (`on_start` is called then: a profiler can attach to the measured part only)."""
    spawn = multiprocessing.get_context("spawn")
    clients = max(1, min(load.clients, load.in_flight))
    share = [load.in_flight // clients + (i < load.in_flight % clients) for i in range(clients)]
    barrier = spawn.Barrier(clients + 1)
    results = spawn.Queue()
    # each client its own payloads (slot k of all in_flight sends k, k + in_flight, ...):
    # two clients sending the same ones would make every other ReportEvent a replay
    firsts = [sum(share[:k]) for k in range(clients)]
    workers = [
        spawn.Process(target=_client_main, args=(load, n, first, barrier, results), daemon=True)
        for n, first in zip(share, firsts, strict=True)
    ]
    for w in workers:
        w.start()
    barrier.wait(timeout=120)  # every client connected and warmed up
    if on_start is not None:
        on_start()
    cpu0 = server.cpu_seconds() if server else 0.0
    db0 = database_cpu_seconds()
    wall0 = time.perf_counter()
    parts = [results.get(timeout=load.seconds + 300) for _ in workers]
    wall = time.perf_counter() - wall0
    cpu1 = server.cpu_seconds() if server else 0.0
    db1 = database_cpu_seconds()
    for w in workers:
        w.join(timeout=30)
    errors = [p["error"] for p in parts if p.get("error")]
    if errors:
        raise RuntimeError(f"{load.method}: {errors[0]}")
    seconds = max(p["seconds"] for p in parts)
    return Measured(
        calls=sum(p["calls"] for p in parts),
        seconds=seconds,
        latencies=[x for p in parts for x in p["latencies"]],
        client_cpu=sum(p["cpu"] for p in parts) / seconds,
        client_cpu_max=max(p["cpu"] / p["seconds"] for p in parts),
        server_cpu=(cpu1 - cpu0) / wall if server else 0.0,
        items_per_call=load.items_per_call,
        db_cpu=max(0.0, db1 - db0) / wall,
    )


def database_cpu_seconds() -> float:
    """CPU seconds so far of this machine's PostgreSQL processes (the postmaster, its
    backends, the checkpointer, the WAL writer, autovacuum...), 0.0 where none can be
    read: those running, and those ended (a backend whose connection a pool closed),
    which the postmaster's children's times hold once it has reaped them. Background
    work counts too, whatever caused it (a checkpoint of an earlier round's writes)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.info["name"] == "postgres" and times is not None:
            total += times.user + times.system + times.children_user + times.children_system
    return total


def _client_main(load: Load, in_flight: int, first: int, barrier: Any, results: Any) -> None:
    try:
        out = asyncio.run(_client(load, in_flight, first, barrier))
    except Exception as exc:  # reported to the parent, which raises
        out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        with contextlib.suppress(Exception):
            barrier.abort()
    results.put(out)


async def _client(load: Load, in_flight: int, first: int, barrier: Any) -> dict[str, Any]:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    channels = [
        grpc.aio.insecure_channel(load.address, options=options)
        for _ in range(max(1, min(load.channels, in_flight)))
    ]
    try:
        run = partial(_stream_calls if load.stream else _unary_calls, first=first)
        await run(load, channels, in_flight, time.perf_counter() + load.warmup, [])
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 120)
        me = psutil.Process()
        cpu0, start = _cpu(me), time.perf_counter()
        latencies: list[float] = []
        calls = await run(load, channels, in_flight, start + load.seconds, latencies)
        seconds = time.perf_counter() - start
        return {
            "calls": calls,
            "seconds": seconds,
            "latencies": latencies,
            "cpu": _cpu(me) - cpu0,
        }
    finally:
        for channel in channels:
            await channel.close()


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def _unary_calls(
    load: Load,
    channels: list[Any],
    in_flight: int,
    until: float,
    latencies: list[float],
    first: int = 0,
) -> int:
    """`in_flight` slots of this client; slot i sends the payloads first + i, then every
    `load.in_flight`-th after it (the slots of all clients together send each once)."""
    calls = [c.unary_unary(load.method) for c in channels]
    payloads, count = load.payloads, len(load.payloads)
    done = 0

    async def slot(i: int) -> None:
        nonlocal done
        call, n = calls[i % len(calls)], first + i
        clock = time.perf_counter
        while (began := clock()) < until:
            await call(payloads[n % count], metadata=load.metadata, timeout=120)
            latencies.append(clock() - began)
            done += 1
            n += load.in_flight

    await asyncio.gather(*(slot(i) for i in range(in_flight)))
    return done


async def _stream_calls(
    load: Load,
    channels: list[Any],
    in_flight: int,
    until: float,
    latencies: list[float],
    first: int = 0,
) -> int:
    """One pipelined stream per channel: requests sent as fast as flow control lets them
    until `until`, every response read; counts responses. With a window: `in_flight //
    window` streams of this client, each keeping at most `window` requests unanswered."""
    if load.window:
        return await _windowed_streams(load, channels, in_flight, until, latencies, first)
    payloads, count = load.payloads, len(load.payloads)

    async def one(channel: Any) -> int:
        def requests() -> Iterator[bytes]:
            n = 0
            while time.perf_counter() < until:
                yield payloads[n % count]
                n += 1

        call = channel.stream_stream(load.method)(
            _aiter(requests()), metadata=load.metadata, timeout=600
        )
        got = 0
        async for _reply in call:
            got += 1
        return got

    return sum(await asyncio.gather(*(one(c) for c in channels)))


async def _windowed_streams(
    load: Load,
    channels: list[Any],
    in_flight: int,
    until: float,
    latencies: list[float],
    first: int,
) -> int:
    """Stream s of all (s from `first // window`) sends the payloads s, s + S, s + 2S …
    (S: the streams of all clients), so no two streams send the same request; a request
    waits for a free place in the window; each reply's latency is from its request's send
    (replies come in request order)."""
    window, payloads, count = load.window, load.payloads, len(load.payloads)
    stride = max(1, load.in_flight // window)
    streams = max(1, in_flight // window)
    clock = time.perf_counter

    async def one(s: int) -> int:
        free = asyncio.Semaphore(window)
        sent: list[float] = []  # send times not yet answered, oldest first

        async def requests() -> Any:
            n = first // window + s
            while clock() < until:
                await free.acquire()
                sent.append(clock())
                yield payloads[n % count]
                n += stride

        channel = channels[s % len(channels)]
        call = channel.stream_stream(load.method)(requests(), metadata=load.metadata, timeout=600)
        got, errors = 0, 0
        async for reply in call:
            latencies.append(clock() - sent.pop(0))
            got += 1
            if load.error_prefix and reply.startswith(load.error_prefix):
                errors += 1
            free.release()
        if errors:
            raise RuntimeError(f"{errors} of {got} replies on a stream were errors")
        return got

    return sum(await asyncio.gather(*(one(s) for s in range(streams))))


async def _aiter(items: Iterator[bytes]) -> Any:
    for item in items:
        yield item


# ---------------------------------------------------------------- rounds, ratios, tables


@dataclass
class Pair:
    """A project figure and its same-run baseline, over rounds (one Measured each)."""

    name: str
    baseline_name: str
    unit: str
    project: list[Measured] = field(default_factory=list)
    baseline: list[Measured] = field(default_factory=list)

    def ratio(self) -> float:
        """Median over rounds of project/baseline, each ratio taken within its round."""
        return median([p.rate / b.rate for p, b in zip(self.project, self.baseline, strict=True)])

    def cpu_ratio(self) -> float:
        """Median over rounds of the baseline's server CPU per item over the project's:
        the rate ratio a server with a core of its own would show."""
        pairs = zip(self.project, self.baseline, strict=True)
        return median([b.cpu_per_item / p.cpu_per_item for p, b in pairs if p.cpu_per_item])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def rounds(count: int, steps: Sequence[Callable[[int], None]]) -> None:
    """Run every step once per round, round by round (a slow spell hits a whole round,
    not one figure), passing the round number."""
    for r in range(count):
        for step in steps:
            step(r)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def pair_table(pairs: Sequence[Pair], *, latency: bool = True, whole: bool = False) -> str:
    """One row per pair: medians of each figure, the median pairwise ratio, latency of the
    project figure, and the CPU of client and server during it; `whole`: also the
    database's, and all three per item with the rate they bound on this machine's cores
    (`cores × 10⁶ / µs per item`)."""
    head = ["what", "rate", "unit", "same-run baseline", "baseline rate", "ratio"]
    if latency:
        head += ["p50 ms", "p99 ms", "baseline p50 ms"]
    head += [
        "client CPU (cores, busiest process)",
        "server CPU (cores)",
        "server CPU µs per item (baseline)",
        "CPU ratio",
    ]
    if whole:
        head += ["database CPU (cores)", "all CPU µs per item: the rate it bounds (baseline)"]
    cores = psutil.cpu_count() or 1
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pair in pairs:
        row = [
            pair.name,
            fmt_rate(median([m.rate for m in pair.project])),
            pair.unit,
            pair.baseline_name,
            fmt_rate(median([m.rate for m in pair.baseline])),
            f"{pair.ratio():.0%}",
        ]
        if latency:
            row += [
                _ms(pair.project, 50),
                _ms(pair.project, 99),
                _ms(pair.baseline, 50),
            ]
        row += [
            f"{median([m.client_cpu for m in pair.project]):.2f} "
            f"({median([m.client_cpu_max for m in pair.project]):.2f})",
            f"{median([m.server_cpu for m in pair.project]):.2f}",
            f"{median([m.cpu_per_item for m in pair.project]):,.0f} "
            f"({median([m.cpu_per_item for m in pair.baseline]):,.0f})",
            f"{pair.cpu_ratio():.0%}",
        ]
        if whole:
            every = median([m.all_cpu_per_item for m in pair.project])
            bound = cores * 1e6 / every if every else 0.0
            base = median([m.all_cpu_per_item for m in pair.baseline])
            row += [
                f"{median([m.db_cpu for m in pair.project]):.2f}",
                f"{every:,.0f}: ≤ {fmt_rate(bound)}/s ({base:,.0f})",
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _ms(figures: Sequence[Measured], p: float) -> str:
    """The median over rounds of a latency percentile, in ms; "–" for streams (no
    per-call latency)."""
    if not any(m.latencies for m in figures):
        return "–"
    return fmt_ms(median([m.percentile(p) for m in figures]))


def table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """The machine in one line: CPU model, cores, memory, Python, load when measured."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{model}, {psutil.cpu_count()} cores, {memory:.0f} GB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, grpcio {grpc.__version__}; "
        f"load average at the start {load}"
    )


@contextlib.contextmanager
def scratch(prefix: str = "bench-") -> Iterator[Path]:
    """A temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)
