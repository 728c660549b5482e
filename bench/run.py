"""`make bench`: evaluations per second in-process, and through gRPC (unary and stream).

Writes a markdown table to docs/benchmarks.md (with --write). Numbers are medians of
three runs on whatever machine runs it; the machine is named in the output.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import grpc

from services.common import demo_city
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.domain.profile import parse_profile
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from services.rules.service_layer import handlers
from tests.support import RULESETS, profile

AS_OF = date(2026, 6, 30)


def sample_profiles(n: int) -> list[dict[str, object]]:
    """A mix like a city register: most firms clean, some with facts across standards."""
    out = []
    for i in range(n):
        facts: dict[str, object] = {
            "gen.no_hazard_ledger": i % 5 == 0,
            "fire.ebike_indoor_charging": i % 7 == 0,
        }
        extra: dict[str, object] = {}
        if i % 4 == 0:
            extra = {"industry": "light_industry", "high_risk_domains": ["dust_explosion"]}
            facts |= {
                "dust.dry_collector_unprotected": i % 8 == 0,
                "gm.special_ops_uncertified": i % 3,
            }
        if i % 10 == 0:
            extra = {"industry": "chemicals", "high_risk_domains": ["hazardous_chemicals"]}
            facts = {"chem.incompatibles_mixed": True, "fire.flammables_distance_ratio": 0.7}
        out.append(profile(i + 1, facts=facts, **extra))
    return out


def timed(fn: Callable[[], int]) -> float:
    """Median items/second of three runs."""
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        count = fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", type=Path, help="write the results table to this file")
    parser.add_argument("-n", type=int, default=5000, help="profiles per run")
    args = parser.parse_args()
    book = load_rulebook(RULESETS)
    ctx = grpc_server.context_from(book)
    data = sample_profiles(args.n)
    parsed = [parse_profile(d, book.fact_types) for d in data]
    messages = [profile_from_json(d) for d in data]
    rows = []

    rows.append(
        (
            "engine match only (durable_rules, in-process)",
            timed(
                lambda: sum(
                    1
                    for p in parsed
                    if ctx.engine.match(p.facts, [s.key for s in book.catalogue.standards])
                    is not None
                )
            ),
        )
    )
    rows.append(
        (
            "evaluate in-process (validate + match + decide)",
            timed(
                lambda: sum(
                    1 for d in data if handlers.evaluate_data(ctx, d, "2026-06-30", prefix="")
                )
            ),
        )
    )
    city = [f.profile for f in demo_city.city(AS_OF).firms]  # the seeded generator
    rows.append(
        (
            f"evaluate in-process, the demo city's register ({len(city)} firms, all high-risk)",
            timed(
                lambda: sum(
                    1 for d in city if handlers.evaluate_data(ctx, d, "2026-06-30", prefix="")
                )
            ),
        )
    )

    server, port = grpc_server.create_server(book)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = rules_pb2_grpc.RulesServiceStub(channel)
    small = messages[: max(1, args.n // 5)]

    def unary() -> int:
        for m in small:
            stub.Evaluate(pb.EvaluateRequest(profile=m, as_of="2026-06-30"), timeout=30)
        return len(small)

    def stream() -> int:
        def requests() -> Iterator[pb.EvaluateRequest]:
            for m in messages:
                yield pb.EvaluateRequest(profile=m, as_of="2026-06-30")

        return sum(1 for _ in stub.EvaluateStream(requests(), timeout=600))

    rows.append(("gRPC Evaluate, one client, sequential", timed(unary)))
    rows.append(("gRPC EvaluateStream, one stream", timed(stream)))
    channel.close()
    server.stop(None)

    table = render(rows, args.n)
    print(table)
    if args.write:
        args.write.write_text(table, encoding="utf-8")
    return 0


def render(rows: list[tuple[str, float]], n: int) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        "# Benchmarks",
        "",
        f"`make bench` on {machine}, {date.today().isoformat()}; {n} profiles per run "
        "(a mix: most clean, 1 in 4 dust-explosion, 1 in 10 chemicals), median of 3 runs.",
        "The engine is one process with one lock (durable_rules is not thread-safe); more",
        "throughput means more processes. Tests never assert times; this file records them.",
        "",
        "| what | profiles / second |",
        "|---|---:|",
        *[f"| {name} | {rate:,.0f} |" for name, rate in rows],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
