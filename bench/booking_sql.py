"""`python -m bench.booking_sql`: the SQL statements one booking `CreateOrder` (order
taken, then dispatched) sends, counted with a `before_cursor_execute` listener, and the
in-process time per order (no gRPC, one caller).

Set-up as bench/booking.py's (its experts offer every half-day of the 14-day window, one
domain, one region), but in this process on the use cases directly: a fresh database,
`--experts` experts, `--firms` firm cards with a QR token each, then `--orders` orders
taken in turn by the firms. Prints the statements of the last order, each with how many
times it ran (`-v`: their text), and the mean wall and CPU time per order (CPU: the
figure to compare on a busy machine; PostgreSQL's own work is not in it). A figure to compare
before and after a change of the write path, not a throughput.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench import harness
from bench.register import database
from services.booking.adapters import migrate
from services.booking.adapters.menu import load_menu
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain import qr
from services.booking.domain.records import FirmCard
from services.booking.service_layer.experts import upsert_expert
from services.booking.service_layer.orders import NewOrder, answer, create_order, take_orders
from services.booking.service_layer.ports import BookingContext
from services.common.clock import today_shanghai
from services.common.db import make_engine
from tests.support import RULESETS, uscc

KEYS = qr.Keyring({"k1": b"k" * 32}, active="k1")
REGION = "稠城街道"


def _slot(days: int, half: str = "AM") -> str:
    return f"{(today_shanghai() + timedelta(days=days)).isoformat()} {half}"


def run(url: str, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    uow = SqlUnitOfWork(engine)
    ctx = BookingContext(KEYS, load_menu(RULESETS / "menu.yaml"), None, "https://example.org")  # type: ignore[arg-type]
    slots = [_slot(d, h) for d in range(1, 15) for h in ("AM", "PM")]
    for n in range(args.experts):
        data: dict[str, Any] = {"expert_id": f"E{n:04d}", "name": f"专家{n}", "slots": slots}
        upsert_expert(uow, ctx, {**data, "domains": ["fire_crowded"], "regions": [REGION]})
    tokens = []
    with uow:
        for n in range(1, args.firms + 1):
            token, text = qr.issue(KEYS, uscc(n))
            uow.register.add(FirmCard(uscc(n), f"企业{n}", REGION, token.key_id, token.serial))
            tokens.append(text)
        uow.commit()
    seen: Counter[str] = Counter()

    def count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen[" ".join(statement.split())[: 300 if args.verbose else 60]] += 1

    def form(k: int) -> dict[str, Any]:
        return {
            "item_codes": ["fire_safety"],
            "preferred_slots": [_slot(2 + k % 12), _slot(3 + k % 12)],
            "contact_name": "联系人",
            "contact_phone": "13812345678",
        }

    group = max(1, args.group)
    profiler = cProfile.Profile() if args.profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    for first in range(0, args.orders, group):
        ks = range(first, min(first + group, args.orders))
        if args.orders - 1 in ks:
            event.listen(engine, "before_cursor_execute", count)
        if group == 1:
            order = create_order(uow, ctx, tokens[first % len(tokens)], form(first), f"key-{first}")
            continue
        items = [NewOrder(tokens[k % len(tokens)], form(k), f"key-{k}") for k in ks]
        taken = take_orders(lambda: SqlUnitOfWork(engine), ctx, items)
        order = answer(uow, ctx, items[-1], taken[-1])  # type: ignore[arg-type]
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    event.remove(engine, "before_cursor_execute", count)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(args.profile).print_stats(40)
    per = f" (the last group of {group})" if group > 1 else ""
    print(f"last order {order.status}; {sum(seen.values())} statements{per}:")
    for text, times in seen.items():
        print(f"  {times} × {text}")
    print(
        f"{elapsed / args.orders * 1000:.2f} ms per order over {args.orders} orders "
        f"({cpu / args.orders * 1000:.2f} ms of this process's CPU)"
    )
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--experts", type=int, default=200)
    parser.add_argument("--firms", type=int, default=100)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--group", type=int, default=1, help="orders taken together (take_orders)")
    parser.add_argument("--profile", default="", help="cProfile sorted by this (tottime, cumtime)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    with harness.scratch() as folder, database(args.db, Path(folder)) as url:
        run(url, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
