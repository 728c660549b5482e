"""`python -m bench.register_paired`: `reevaluate --all` of two checkouts of the project,
alternately, on copies of one generated register (PostgreSQL), beside the in-process
evaluate rate measured in the same minutes.

For a change to the re-evaluation's speed measured on a shared machine, where the rate
drifts from minute to minute: the register is generated and loaded once into a template
database migrated by the old checkout (`bench.register.load_register`, then VACUUM
ANALYZE; the new command migrates its copy further at start), and each run gets a fresh copy
of it (CREATE DATABASE … TEMPLATE), then the real command of one checkout in its own
process (`python -m services.rules reevaluate --all`, its defaults: one process per
core), timed from start to exit. Runs alternate old, new, old, new … so both meet the
same load. Each run reports its rate, its ratio to the in-process evaluate rate (measured
in this process on a sample of the same firms before each pair), the command's CPU
(every process of it: the range processes are waited for) and its PostgreSQL backends'
CPU (sampled from /proc while it runs), each per firm, and the ratio by CPU: in-process
evaluate's CPU a firm against half of the command's and PostgreSQL's (what the ratio
would be if the two cores were theirs alone; on a machine shared with other work the
rates' ratio drifts with the load, the CPU a firm much less).

    python -m bench.register_paired --old /tmp/base --firms 100000 --pairs 3

`--old`: a directory holding the old checkout (e.g. `git archive <commit> | tar -x -C
DIR`, with services/common/_generated copied in); the new one is this checkout, or
`--new DIR`. Both run on this interpreter (the same venv)."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text

from bench.register import AS_OF, PG_ADMIN, ROOT, analyzed, load_register
from services.common import workload
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server
from services.rules.service_layer import handlers
from tests.support import RULESETS


@dataclass
class Timed:
    label: str
    seconds: float
    command_cpu: float
    backend_cpu: float
    evaluate_rate: float
    evaluate_cpu: float  # CPU seconds a firm of in-process evaluate
    firms: int

    @property
    def rate(self) -> float:
        return self.firms / self.seconds

    @property
    def ratio(self) -> float:
        return self.rate / self.evaluate_rate

    @property
    def cpu_ratio(self) -> float:
        """The ratio were both cores the command's and PostgreSQL's alone: in-process
        evaluate's CPU a firm against half the command's and its backends' CPU a firm."""
        return self.evaluate_cpu / ((self.command_cpu + self.backend_cpu) / self.firms / 2)


def evaluate_cost(count: int, seed: int) -> tuple[float, float]:
    """In-process evaluate (`bench.register.in_process_rate`'s loop) over the first
    `count` generated firms: firms a second (wall) and CPU seconds a firm."""
    ctx = grpc_server.context_from(load_rulebook(RULESETS))
    data = list(workload.profiles(count, seed=seed))
    for d in data[:200]:  # warm-up
        handlers.evaluate_data(ctx, d, AS_OF, prefix="")
    start, cpu = time.perf_counter(), time.process_time()
    for d in data:
        handlers.evaluate_data(ctx, d, AS_OF, prefix="")
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count


def _url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _admin(sql: str) -> None:
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


class Backends:
    """The CPU seconds of the PostgreSQL backends serving database `name`, sampled from
    /proc every 0.1 s while the block runs (a backend's last sample counts)."""

    def __init__(self, name: str) -> None:
        self._name = f" {name} "
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Backends:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for p in psutil.process_iter(["cmdline"]):
                try:
                    line = " ".join(p.info["cmdline"] or ())
                    if line.startswith("postgres:") and self._name in line + " ":
                        t = p.cpu_times()
                        self._seen[p.pid] = t.user + t.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self._stop.wait(0.1)

    @property
    def seconds(self) -> float:
        return sum(self._seen.values())


def one(
    label: str, folder: Path, template: str, firms: int, evaluate: tuple[float, float]
) -> Timed:
    name = f"bench_pair_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        command = [sys.executable, "-m", "services.rules", "reevaluate", "--all"]
        command += ["--as-of", AS_OF, "--db", _url(name)]
        env = {**os.environ, "PYTHONPATH": str(folder)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with Backends(name) as backends:
            start = time.perf_counter()
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
            took = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{label}: {done.stdout[-500:]} {done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return Timed(label, took, cpu, backends.seconds, *evaluate, firms)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the old checkout's directory")
    parser.add_argument("--new", type=Path, default=ROOT, help="the new one's (default: this)")
    parser.add_argument("--firms", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=5_000, help="firms for evaluate's rate")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args(argv)
    template = f"bench_pair_tmpl_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{template}"')
    runs: list[Timed] = []
    try:
        # the old checkout's schema: the new command migrates its copy itself at start
        # (as it would a production register), the old one finds nothing to do
        migrated = subprocess.run(
            [sys.executable, "-m", "services.rules", "migrate", "--db", _url(template)],
            cwd=args.old,
            env={**os.environ, "PYTHONPATH": str(args.old)},
            capture_output=True,
            text=True,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"migrating the template: {migrated.stderr[-2000:]}")
        load_register(_url(template), args.firms, args.seed, migrated=True)
        analyzed(_url(template), vacuum=True)
        for n in range(args.pairs):
            evaluate = evaluate_cost(min(args.sample, args.firms), args.seed)
            order = [("old", args.old), ("new", args.new)]
            for label, folder in order if n % 2 == 0 else order[::-1]:
                t = one(label, folder, template, args.firms, evaluate)
                runs.append(t)
                print(
                    f"  {t.label}: {t.seconds:.1f} s, {t.rate:,.0f} firms/s, ratio "
                    f"{t.ratio:.0%} (evaluate {t.evaluate_rate:,.0f}/s); CPU a firm: command "
                    f"{t.command_cpu / t.firms * 1e6:.0f} µs, PostgreSQL "
                    f"{t.backend_cpu / t.firms * 1e6:.0f} µs, evaluate "
                    f"{t.evaluate_cpu * 1e6:.0f} µs; ratio by CPU {t.cpu_ratio:.0%}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    for label in ("old", "new"):
        mine = [t for t in runs if t.label == label]
        if not mine:
            continue
        print(
            f"{label}: median {statistics.median(t.rate for t in mine):,.0f} firms/s, "
            f"ratio {statistics.median(t.ratio for t in mine):.0%} "
            f"(per run {', '.join(f'{t.ratio:.0%}' for t in mine)}); CPU a firm: command "
            f"{statistics.median(t.command_cpu for t in mine) / mine[0].firms * 1e6:.0f} µs, "
            f"PostgreSQL {statistics.median(t.backend_cpu for t in mine) / mine[0].firms * 1e6:.0f}"
            f" µs; ratio by CPU {statistics.median(t.cpu_ratio for t in mine):.0%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
