"""`make bench`: the rules service measured honestly (issue 15); writes docs/benchmarks.md.

Every figure stands beside a baseline measured in the same run on the same machine, as a
ratio; each is the median of `--rounds` rounds (3 unless told), ratios taken pairwise
within a round. Servers and clients are separate processes (bench/harness.py). Sections:

1. in-process: the engine (durable_rules) against its peers, plain Python predicates (the
   floor) and zen-engine decision tables, on the same profiles with the same
   applicability filter, checked to find the same clauses for every profile; then the
   whole evaluation (validate + applicability + match + decide), and with proto
   conversion both ways (what a server does per profile);
2. gRPC against `bench.rules_server` (the real server plus a bare echo service behind the
   same interceptors): Evaluate unary at 1, 8 and 32 in flight, EvaluateStream, and
   EvaluateBatch, each beside the echo through the same client; again with
   `--processes 2`;
3. a file of 1,000,000 profiles through `evaluate --server` (the batch path) against
   `serve --processes 2`, with the server's RSS before and after and the client's peak,
   the CPU per profile of the client (and of its start-up) and of the servers;
4. a py-spy profile of the server under Evaluate load (threads holding the GIL).

`--quick` runs every section on tiny numbers (a smoke test, seconds not minutes).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench import harness
from bench.peers import PythonMatcher, ZenMatcher
from bench.rules_server import ECHO_STREAM, ECHO_UNARY
from services.common import demo_city, workload
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.adapters.engine import DurableRulesEngine
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.domain.profile import parse_profile
from services.rules.entrypoints import convert, grpc_server
from services.rules.service_layer import handlers

AS_OF = "2026-06-30"
METHOD = "/rules.v1.RulesService/"
TARGET_SECONDS = 90.0


@dataclass(frozen=True)
class Sizes:
    rounds: int
    peers: int  # profiles per in-process run
    seconds: float  # per gRPC measurement
    warmup: float
    batch: int  # profiles per EvaluateBatch
    file: int  # profiles in the `evaluate --server` file
    file_runs: int
    spy_seconds: int
    requests: int  # distinct Evaluate requests the gRPC clients cycle through

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        if args.quick:
            return cls(3, 300, 0.4, 0.2, 50, 2_000, 1, 1, 200)
        return cls(
            args.rounds, args.peers, args.seconds, 0.5, 500, args.file, args.file_runs, 8, 2_000
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the report (markdown) to this file")
    parser.add_argument("--quick", action="store_true", help="tiny numbers: a smoke test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers", type=int, default=100_000, help="profiles in-process")
    parser.add_argument("--seconds", type=float, default=2.0, help="per gRPC measurement")
    parser.add_argument("--file", type=int, default=1_000_000, help="profiles in the file")
    parser.add_argument("--file-runs", type=int, default=3, help="runs over the file")
    parser.add_argument("--only", default="", help="comma-separated sections: peers,grpc,file,spy")
    parser.add_argument("--cache", type=Path, default=harness.ROOT / "var" / "bench")
    args = parser.parse_args(argv)
    sizes = Sizes.of(args)
    wanted = set(filter(None, args.only.split(","))) or {"peers", "grpc", "file", "spy"}
    started = time.monotonic()
    report = Report(harness.machine(), _command(argv), sizes)
    with harness.scratch() as folder:
        if "peers" in wanted:
            report.peers = in_process(sizes)
            print(report.peers_section(), flush=True)
        if "grpc" in wanted:
            report.grpc = {n: grpc_pairs(folder, sizes, n) for n in (1, 2)}
            print(report.grpc_section(), flush=True)
        if "file" in wanted:
            report.file = through_file(folder, sizes, args.cache)
            print(report.file_section(), flush=True)
        if "spy" in wanted:
            report.spy = spy(folder, sizes)
    report.minutes = (time.monotonic() - started) / 60
    text = report.render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        print(text)
    return 0


def _command(argv: Sequence[str] | None) -> str:
    given = list(sys.argv[1:] if argv is None else argv)
    if "--write" in given:
        at = given.index("--write")
        del given[at : at + 2]
    given = [a for a in given if not a.startswith("--write=")]
    return "make bench" + (f" BENCH_ARGS={shlex.quote(' '.join(given))}" if given else "")


# ---------------------------------------------------------------- 1. in-process


@dataclass
class PeerFigures:
    rates: dict[str, list[float]]  # name → profiles per CPU second, one per round
    profiles: int
    identical: bool
    with_findings: int


def in_process(sizes: Sizes) -> PeerFigures:
    """The engines on the same profiles (rates per CPU second of this process, so another
    program on the machine slows none of them), then the whole evaluation."""
    book = load_rulebook(harness.ROOT / "rulesets")
    ctx = grpc_server.context_from(book)
    day = date.fromisoformat(AS_OF)
    data = list(workload.profiles(sizes.peers))
    parsed = [parse_profile(d, book.fact_types) for d in data]
    jobs = [(p.facts, ctx.applicability.of(p, day).editions) for p in parsed]
    engines: dict[str, Any] = {
        # the engine itself: asked every time, its answers not remembered
        "durable_rules (this service's engine)": DurableRulesEngine(book.catalogue, remember=0),
        "plain Python predicates (the floor)": PythonMatcher(book.catalogue),
        "zen-engine decision tables": ZenMatcher(book.catalogue),
    }
    answers = {name: [e.match(f, ed) for f, ed in jobs] for name, e in engines.items()}
    first = next(iter(answers.values()))
    identical = all(a == first for a in answers.values())
    messages = [convert.profile_from_json(d) for d in data]
    steps: dict[str, Callable[[], None]] = {
        name: functools.partial(_each, jobs, e.match) for name, e in engines.items()
    }
    steps["evaluate (validate + applicability + match + decide)"] = lambda: _each_one(
        data, lambda d: handlers.evaluate_data(ctx, d, AS_OF, prefix="")
    )
    city = [f.profile for f in demo_city.city(day).firms]  # the demo city (issue 12)
    steps[f"evaluate, the demo city's register ({len(city)} firms, all high-risk; per firm)"] = (
        lambda: _each_one(city, lambda d: handlers.evaluate_data(ctx, d, AS_OF, prefix=""))
    )
    # as RulesServicer does it: a plainly valid profile read straight from the proto
    steps["evaluate with proto conversion both ways (a server's work)"] = lambda: _each_one(
        messages,
        lambda m: convert.decision_to_proto(
            handlers.evaluate_typed(
                ctx, convert.profile_candidate(m), lambda: convert.profile_to_dict(m), AS_OF
            )
        ),
    )
    rates: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(sizes.rounds):
        for name, step in steps.items():
            began = time.process_time()
            step()
            done = len(city) if name.startswith("evaluate, the demo city") else len(data)
            rates[name].append(done / max(time.process_time() - began, 1e-9))
    return PeerFigures(dict(rates), len(data), identical, sum(1 for a in first if a))


def _each(jobs: Sequence[tuple[Any, Any]], match: Callable[[Any, Any], Any]) -> None:
    for facts, editions in jobs:
        match(facts, editions)


def _each_one(items: Sequence[Any], fn: Callable[[Any], Any]) -> None:
    for item in items:
        fn(item)


# ---------------------------------------------------------------- 2. gRPC


def _start(
    folder: Path, module: str, processes: int, name: str
) -> tuple[harness.ServerProcess, str]:
    token = harness.write_tokens(folder, ["rules.evaluate"])
    address = f"127.0.0.1:{harness.free_port()}"
    server = harness.ServerProcess(
        [
            module,
            "serve",
            "--grpc",
            address,
            "--tokens",
            str(folder / "tokens.json"),
            "--db",
            f"sqlite:///{folder}/{name}.db",
            "--processes",
            str(processes),
        ],
        address,
        folder / f"{name}.log",
    )
    return server.start(grpc_server.SERVICE_NAME), token


def _requests(count: int) -> list[bytes]:
    return [
        pb.EvaluateRequest(profile=convert.profile_from_json(p), as_of=AS_OF).SerializeToString()
        for p in workload.profiles(count, seed=7)
    ]


def grpc_pairs(folder: Path, sizes: Sizes, processes: int) -> list[harness.Pair]:
    """Each project figure beside the echo through the same client, round by round."""
    requests = tuple(_requests(sizes.requests))
    batches = tuple(
        pb.EvaluateBatchRequest(
            items=[pb.EvaluateRequest.FromString(r) for r in requests[i : i + sizes.batch]]
        ).SerializeToString()
        for i in range(0, len(requests) - sizes.batch + 1, sizes.batch)
    )
    server, token = _start(folder, "bench.rules_server", processes, f"grpc{processes}")
    auth = (("authorization", f"Bearer {token}"),)
    common: dict[str, Any] = {"seconds": sizes.seconds, "warmup": sizes.warmup, "metadata": auth}
    common["channels"] = 4 if processes > 1 else 2
    plan: list[tuple[harness.Pair, harness.Load, harness.Load]] = []
    flights = (1, 8, 32) if processes == 1 else (8, 32)
    for n in flights:
        plan.append(
            (
                harness.Pair(f"Evaluate, {n} in flight", f"echo, {n} in flight", "calls/s"),
                harness.Load(server.address, METHOD + "Evaluate", requests, in_flight=n, **common),
                harness.Load(server.address, ECHO_UNARY, requests, in_flight=n, **common),
            )
        )
    if processes == 1:
        plan.append(
            (
                harness.Pair("EvaluateStream, one stream", "echo stream", "messages/s"),
                harness.Load(
                    server.address,
                    METHOD + "EvaluateStream",
                    requests,
                    stream=True,
                    in_flight=1,
                    **common,
                ),
                harness.Load(
                    server.address, ECHO_STREAM, requests, stream=True, in_flight=1, **common
                ),
            )
        )
    plan.append(
        (
            harness.Pair(
                f"EvaluateBatch of {sizes.batch}, 2 in flight",
                "echo of the same batch bytes, 2 in flight",
                "profiles/s",
            ),
            harness.Load(
                server.address,
                METHOD + "EvaluateBatch",
                batches,
                in_flight=2,
                items_per_call=sizes.batch,
                **common,
            ),
            harness.Load(
                server.address,
                ECHO_UNARY,
                batches,
                in_flight=2,
                items_per_call=sizes.batch,
                **common,
            ),
        )
    )
    try:
        for _ in range(sizes.rounds):
            for pair, project, baseline in plan:
                pair.baseline.append(harness.measure(baseline, server))
                pair.project.append(harness.measure(project, server))
    finally:
        server.stop()
    return [pair for pair, _, _ in plan]


# ---------------------------------------------------------------- 3. a file through the batch path


@dataclass
class FileFigures:
    profiles: int
    seconds: list[float]
    file_mb: float
    rss_before: float  # MB, the serving processes after start and warm-up
    rss_after: list[float]  # after each run
    client_peak: list[float]  # MB, the CLI's peak RSS per run
    decisions: int
    errors: int
    client_cpu: list[float] = field(default_factory=list)  # CPU s of the CLI per run
    server_cpu: list[float] = field(default_factory=list)  # CPU s of the servers per run
    busiest: list[float] = field(default_factory=list)  # the busier server's share, per run
    client_startup: float = 0.0  # CPU s of the CLI over a one-profile file (imports …)


def cached_file(cache: Path, count: int) -> Path:
    """The seeded register as JSONL, written once per size (it is the same every time)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"profiles-{count}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            for firm in workload.profiles(count):
                out.write(orjson.dumps(firm) + b"\n")
        partial.rename(path)
    return path


def through_file(folder: Path, sizes: Sizes, cache: Path) -> FileFigures:
    path = cached_file(cache, sizes.file)
    # the warm-up fills every connection's window several times over (8 connections, 16
    # batches of 500 held at most), so the RSS "before" is taken at the load's own
    # high-water mark of buffers in flight, and growth afterwards means memory kept
    warm = cached_file(cache, 20_000)
    one = cached_file(cache, 1)
    server, token = _start(folder, "services.rules", 2, "file")
    try:
        _run_cli(server.address, token, warm, folder / "warm.jsonl")
        before = server.rss_mb()
        figures = FileFigures(sizes.file, [], path.stat().st_size / 2**20, before, [], [], 0, 0)
        figures.client_startup = _run_cli(server.address, token, one, folder / "one.jsonl")[2]
        for _ in range(sizes.file_runs):
            out = folder / "decisions.jsonl"
            cpu, split = server.cpu_seconds(), _serving_cpu(server)
            seconds, peak, client_cpu = _run_cli(server.address, token, path, out)
            figures.server_cpu.append(server.cpu_seconds() - cpu)
            used = [after - was for after, was in zip(_serving_cpu(server), split, strict=True)]
            figures.busiest.append(max(used) / (sum(used) or 1))
            figures.client_cpu.append(client_cpu)
            figures.seconds.append(seconds)
            figures.client_peak.append(peak)
            figures.rss_after.append(server.rss_mb())
            figures.decisions, figures.errors = _count_decisions(out)
            out.unlink()
    finally:
        server.stop()
    return figures


def _serving_cpu(server: harness.ServerProcess) -> list[float]:
    """CPU seconds of each serving process (the children of `--processes 2`)."""
    used = []
    for proc in server.tree()[1:]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            used.append(times.user + times.system)
    return used


def _run_cli(address: str, token: str, path: Path, out: Path) -> tuple[float, float, float]:
    """Seconds `evaluate --server` takes over the file, its peak RSS in MB and the CPU
    seconds it used."""
    command = [
        sys.executable,
        "-m",
        "services.rules",
        "evaluate",
        str(path),
        "--json",
        "--as-of",
        AS_OF,
        "--server",
        address,
    ]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            command,
            cwd=harness.ROOT,
            stdout=sink,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RULES_TOKEN": token},
        )
        watch, peak = psutil.Process(proc.pid), 0.0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, watch.memory_info().rss / 2**20)
            time.sleep(0.25)
    seconds = time.perf_counter() - began
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"evaluate --server exited {proc.returncode}")
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
    return seconds, peak, cpu


def _count_decisions(path: Path) -> tuple[int, int]:
    decisions = errors = 0
    with path.open("rb") as fh:
        for line in fh:
            decisions += 1
            errors += b'"error"' in line
    return decisions, errors


# ---------------------------------------------------------------- 4. where the server's time goes


def spy(folder: Path, sizes: Sizes) -> list[tuple[float, str]]:
    """py-spy (threads holding the GIL) on the server under Evaluate at 8 in flight:
    (share of samples, function) for the functions of this project and grpc's server."""
    server, token = _start(folder, "bench.rules_server", 1, "spy")
    raw = folder / "spy.txt"
    spy_bin = Path(sys.executable).with_name("py-spy")
    recorder: list[subprocess.Popen[bytes]] = []

    def record() -> None:
        command = [
            str(spy_bin), "record", "--pid", str(server.tree()[0].pid), "--duration",
            str(sizes.spy_seconds), "--rate", "200", "--format", "raw", "--gil",
            "--nonblocking", "--output", str(raw),
        ]  # fmt: skip
        recorder.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )

    try:
        load = harness.Load(
            server.address,
            METHOD + "Evaluate",
            tuple(_requests(200)),
            in_flight=8,
            seconds=sizes.spy_seconds + 1,
            warmup=sizes.warmup,
            metadata=(("authorization", f"Bearer {token}"),),
        )
        harness.measure(load, server, on_start=record)
        for proc in recorder:
            proc.wait(timeout=60)
    finally:
        server.stop()
    return summarise_spy(raw) if raw.exists() else []


def summarise_spy(raw: Path, top: int = 22) -> list[tuple[float, str]]:
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        seen = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            name = f"{name} ({where.split(':')[0]})" if where else name
            if name not in seen:
                seen.add(name)
                inclusive[name] += int(count)
    wanted = ("services/", "grpc/_server", "structlog/", "durable/")
    found = [
        (n / total, name) for name, n in inclusive.most_common() if any(w in name for w in wanted)
    ]
    return found[:top] if total else []


# ---------------------------------------------------------------- the report


@dataclass
class Report:
    machine: str
    command: str
    sizes: Sizes
    peers: PeerFigures | None = None
    grpc: dict[int, list[harness.Pair]] | None = None
    file: FileFigures | None = None
    spy: list[tuple[float, str]] | None = None
    minutes: float = 0.0

    def render(self) -> str:
        parts = [
            HEADER.format(
                machine=self.machine,
                command=self.command,
                day=date.today().isoformat(),
                rounds=self.sizes.rounds,
                minutes=self.minutes,
                python=platform.python_version(),
            )
        ]
        parts.append(self.targets_section())
        if self.peers:
            parts.append(self.peers_section())
        if self.grpc:
            parts.append(self.grpc_section())
        if self.file:
            parts.append(self.file_section())
        if self.spy:
            parts.append(self.spy_section())
        parts.append(NOTES)
        return "\n\n".join(p.strip() for p in parts) + "\n"

    def peers_section(self) -> str:
        assert self.peers is not None
        p = self.peers
        durable = "durable_rules (this service's engine)"
        floor, zen = "plain Python predicates (the floor)", "zen-engine decision tables"
        ratios = {
            name: harness.median([a / b for a, b in zip(rates, p.rates[durable], strict=True)])
            for name, rates in p.rates.items()
        }
        rows = [
            (name, harness.fmt_rate(harness.median(rates)), f"{ratios[name]:.2f}×")
            for name, rates in p.rates.items()
        ]
        check = "identical" if p.identical else "**DIFFERENT** (a bug: see bench/peers.py)"
        return (
            f"## 1. In-process: the engine beside its peers\n\n"
            f"{p.profiles:,} generated profiles (`services/common/workload.py`, seed 20261127), "
            f"{p.with_findings:,} of them matching a clause; each engine is asked only about "
            "the editions whose clauses apply to the profile (the same `Applicability` "
            "filter). Profiles per CPU second of the benchmark process, median of "
            f"{self.sizes.rounds} rounds; the ratio is to durable_rules in the same round.\n\n"
            f"Findings of the three engines for every profile: **{check}**.\n\n"
            + harness.table(["what", "profiles / CPU s", "÷ durable_rules"], rows)
            + "\n\nStretch targets: durable_rules ≥ 1.5× zen-engine per call: "
            f"{1 / ratios[zen]:.2f}× ({_met(1 / ratios[zen] >= 1.5)}); ≥ 10% of the plain-"
            f"Python floor: {1 / ratios[floor]:.1%} ({_met(1 / ratios[floor] >= 0.10)})."
        )

    def grpc_section(self) -> str:
        assert self.grpc is not None
        out = ["## 2. gRPC: the rules service beside a bare echo on the same server"]
        for processes, pairs in self.grpc.items():
            out.append(f"### `serve --processes {processes}`\n\n" + harness.pair_table(pairs))
        return "\n\n".join(out)

    def file_section(self) -> str:
        assert self.file is not None
        f = self.file
        seconds = harness.median(f.seconds)
        growth = max(f.rss_after) - f.rss_before
        rate = f.profiles / seconds
        in_process = ""
        if self.peers:
            full = harness.median(
                self.peers.rates["evaluate with proto conversion both ways (a server's work)"]
            )
            in_process = (
                f" That is {rate / full:.0%} of one core's in-process rate with proto "
                f"conversion ({harness.fmt_rate(full)}/CPU s) measured above."
            )
        return (
            f"## 3. {f.profiles:,} profiles through `evaluate --server` (the batch path)\n\n"
            f"`python -m services.rules evaluate profiles.jsonl --json --server ADDR` against "
            f"`serve --processes 2` ({f.file_mb:,.0f} MB of JSONL, decisions written as JSONL; "
            f"{f.decisions:,} decisions, {f.errors:,} errors), {len(f.seconds)} run(s): "
            f"median **{seconds:,.1f} s** ({harness.fmt_rate(rate)} profiles/s; runs "
            + ", ".join(f"{s:,.1f} s" for s in f.seconds)
            + f").{in_process}{self._bound()}\n\n"
            f"Memory: the serving processes held {f.rss_before:,.1f} MB after start and a "
            f"warm-up of 20,000 profiles (the client's whole window of batches in flight, "
            f"several times over), and {', '.join(f'{r:,.1f}' for r in f.rss_after)} MB after "
            f"each run of "
            f"{f.profiles:,} evaluations: growth {growth:+,.1f} MB ({_met(growth < 20)}: < 20 "
            f"MB). The client's peak RSS was {', '.join(f'{c:,.0f}' for c in f.client_peak)} "
            f"MB for a {f.file_mb:,.0f} MB file: at most `WINDOW` batches of `BATCH` "
            "profiles are held (services/rules/entrypoints/batch_client.py), the file is "
            "read line by line, so memory is set by flow control, not by the file's size."
        )

    def _bound(self) -> str:
        """What the file run spent: CPU of the client and of the servers per profile."""
        f = self.file
        if f is None or not f.client_cpu:
            return ""
        client = harness.median(f.client_cpu) / f.profiles * 1e6
        steady = (harness.median(f.client_cpu) - f.client_startup) / f.profiles * 1e6
        servers = harness.median(f.server_cpu) / f.profiles * 1e6
        cores = (harness.median(f.client_cpu) + harness.median(f.server_cpu)) / harness.median(
            f.seconds
        )
        # the client is one process, the servers two: on two idle cores the CPU alone
        # takes the larger of the client's time and half of everything's
        floor = max(steady, (steady + servers) / 2)  # seconds per 1,000,000 profiles
        busiest = f" (the busier one {harness.median(f.busiest):.0%} of it)" if f.busiest else ""
        return (
            f" Per profile the client (`evaluate --server`: read JSONL and build the batches, "
            f"print JSONL) used {client:,.0f} µs of CPU ({steady:,.0f} µs beside its "
            f"start-up, {f.client_startup:,.1f} s over a one-profile file) and the two server "
            f"processes {servers:,.0f} µs{busiest}; together {cores:.2f} cores busy on "
            f"average. Under 90 s for 1,000,000 needs the whole pipeline under "
            f"{2 * TARGET_SECONDS:,.0f} µs of CPU per profile on 2 cores; with these figures "
            f"two otherwise idle cores would take about {floor:,.0f} s (the larger of the "
            "client's CPU and half the sum), so the sum of these is what bounds it."
        )

    def spy_section(self) -> str:
        assert self.spy is not None
        rows = [(f"{share:.1%}", f"`{name}`") for share, name in self.spy]
        return (
            "## 4. Where a server's time goes (py-spy)\n\n"
            "`py-spy record --gil` on `bench.rules_server` (one process) under Evaluate at 8 "
            "in flight; the share of samples in which a thread holding the GIL was inside "
            "each function (inclusive), for this project's, grpc's server and structlog's "
            "functions.\n\n" + harness.table(["samples", "function"], rows)
        )

    def targets_section(self) -> str:
        lines = ["## Targets (issue 15, point 9), ratios from this run", ""]
        if self.grpc:
            pair = next(p for p in self.grpc[1] if p.name == "Evaluate, 8 in flight")
            client = harness.median([m.client_cpu_max for m in pair.project])
            lines.append(
                f"- Evaluate unary at 8 in flight ≥ 70% of the bare echo's calls/s: "
                f"**{pair.ratio():.0%}** ({_met(pair.ratio() >= 0.7)}; by server CPU per "
                f"call {pair.cpu_ratio():.0%}); the busiest client "
                f"process used {client:.2f} of a core"
                + (" (not the bottleneck)." if client < 0.8 else " (near a core: client-bound).")
            )
        if self.file:
            seconds = harness.median(self.file.seconds)
            scaled = seconds * 1_000_000 / self.file.profiles
            lines.append(
                f"- 1,000,000 profiles through `evaluate --server` in under 90 s: "
                f"**{scaled:,.0f} s** ({_met(scaled < TARGET_SECONDS)})"
                + ("" if self.file.profiles == 1_000_000 else " (scaled from a smaller file)")
                + "."
            )
        return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


HEADER = """
# Benchmarks

Written by `make bench` (bench/run.py) on {day}; the command was `{command}`
({minutes:.1f} minutes). Machine: {machine}.

Tests never assert times; this file records them. The machine may be shared, so absolute
numbers drift: every figure stands beside a baseline measured in the same run, as a
ratio, and is the median of {rounds} rounds (ratios are taken pairwise within a round,
then the median of those). Servers and clients run as separate processes
(bench/harness.py): gRPC figures come from client processes of their own (grpc.aio,
sending pre-serialised requests), each row with the client's CPU (cores in use summed
over the client processes, the busiest one in brackets: near 1.00 means the client, not
the server, was the limit) and the server's.

How to run: `make bench` (15 to 20 minutes; writes this file), `make bench
BENCH_ARGS=--quick` (a smoke test on tiny numbers, a few minutes), or one section:
`make bench BENCH_ARGS="--only grpc"` (peers, grpc, file, spy).
"""

NOTES = """
## How it is measured, and what was changed to get here

- **The echo baseline** is a generic-handler service (`bench.Echo`, raw bytes in, the same
  bytes out) added to the real rules server by `bench/rules_server.py`, a bench-only
  entry point that is `python -m services.rules serve` plus that service. The echo goes
  through the same interceptors as Evaluate (admission, the per-call log line, malformed
  bytes, bearer token and rate limit) and on the same thread pool, so the ratio is what
  the rules service does per call beyond what any call on this server costs. The echo
  of a batch sends back the batch's bytes, so its "profiles/s" is a batch's worth of
  profiles per echoed message.
- **Processes, not threads**: `serve --processes N` (issue 15 called it `--workers N`, but
  `--workers` already sizes the thread pool) runs N servers on one port with
  SO_REUSEPORT; `--processes 0` is one per core. The clients open several connections so
  the kernel spreads them over the processes.
- **The hot path** (`evaluate`), profiled with pyinstrument in-process and py-spy in the
  server (section 4). Before: of an in-process evaluation with proto conversion both
  ways, deciding which clauses apply took about 39% (every clause's scopes tested for
  every firm), the engine 17%, validating the profile 15% (the credit-code check digit
  a third of that), deciding 7%, the two proto conversions 10%. Now the clauses that
  apply are computed once per kind of firm (date, industry, domains, venues,
  hazardous-chemicals roles, size class against the scopes' head-count thresholds) and
  remembered with their refs and editions (`services/rules/domain/applicability.py`,
  about 1% now; a test checks it against the fresh computation on and around every
  threshold); the check digit uses a lookup table; enum numbers and the as_of date are
  remembered; each ruleset's answer is remembered per the values of the facts it reads
  (`services/rules/adapters/engine.py`; 5,000 firms of the generated register needed 29
  answers of durable_rules, and a test compares remembered answers with fresh ones); a
  batch client builds profiles field by field instead of through ParseDict. An
  in-process evaluation with proto conversion both ways went from about 5,000 to about
  9,500 profiles per CPU second. Then Evaluate came to read a plainly valid profile
  straight from the proto (`convert.profile_candidate`, `profile.plain_profile`; the dict
  path, which names every bad field, is the fallback, and a test compares the two over
  generated and mutated profiles), the control-character check to gather strings with a
  walker compiled per message type, and deciding to build reason texts only for reasons
  that hold: Evaluate's own work per call went from about 71 to about 40 µs in-process.
  In the server, what is left is grpc's own per-call machinery and the per-call log line
  (section 4), which the echo pays too.
- **The batch path** (`services/rules/entrypoints/batch_client.py`, `batch_json.py`):
  `evaluate --server` reads JSONL as bytes with orjson, turns each plain profile into the
  request's constructor arguments (enum numbers from tables) and lets protobuf build a
  whole `EvaluateBatch` message of 500 in one call (`convert.profile_from_json`, with
  ParseDict behind it, only for unusual shapes; tests check both build the same
  message). Each of 8 connections carries one batch at a time and gets the next when
  its answer is in, so a server process that the kernel handed more connections gets no
  more than its core gets through (round-robin over 4 connections had split the
  servers' work 50/50, 26/74 and 3/97 in three runs); at most 16 batches are held.
  Decisions are printed field by field (MessageToDict only for a rejected item), the
  printed line of each distinct decision remembered apart from the firm's id (bounded),
  with orjson, a batch per write; tests check the lines are MessageToDict's, key for key.
  The client's CPU per profile went from about 70 µs to about 20 µs (plus about a
  second of start-up).
- **The engine's answers are remembered** per (ruleset, values of the facts it reads):
  the evaluate rows and the gRPC rows use the service as it runs, with that memory; the
  engine rows of section 1 compare durable_rules itself, asked every time.
- **Peers**: `bench/peers.py` compiles the same clauses to plain Python lambdas and to
  zen-engine decision tables (one per edition, hit policy `collect`);
  `tests/unit/rules/test_peers.py` checks on a few hundred profiles that both find
  exactly what durable_rules finds, and every run above checks it on all profiles.
"""


if __name__ == "__main__":
    raise SystemExit(main())
