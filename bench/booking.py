"""`python -m bench.booking`: booking `CreateOrder` (the order taken and dispatched to an
expert in one transaction) at 8 in flight on SQLite and PostgreSQL, beside
a bare single-row insert RPC served by the same booking process on the same database
(bench/insert_server.py), measured through the same client in the same round
(bench/harness.py: the load generator in processes of its own, their CPU share shown).

Set-up (not measured): a rules service (SQLite, its own process: not under test), a
booking service on a fresh database, `--firms` firms registered and each given a QR
token, `--experts` experts offering every half-day of the 14-day window, then
`--warm-up` orders (two per expert by default, in the afternoons; not measured). Each
order carries a new idempotency key and the firms take turns, so no QR token meets its
order limit (10 at once, then 20 an hour) and the experts' slots outnumber the orders:
on a host fast enough to spend them within `--seconds`, each round is shortened
(`round_seconds`, said on stderr) rather than measure an exhausted pool.

PostgreSQL's tables are kept as production's autovacuum keeps them (this machine's
PostgreSQL runs without autovacuum): the database is vacuumed and ANALYZEd once the
warm-up's bookings are in, and again before each round. Without that the planner keeps
what one ANALYZE of the empty booking tables told it: each connection's cached plan of
dispatch's query reads every booking once for each expert (a sequential scan under each
of its per-expert subqueries where an index serves), so the database's CPU an order
grew with the bookings the run had made: 11–15 ms at 8 in flight, about 4–5 ms with
statistics that know the bookings (stop 27).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from concurrent import futures
from datetime import timedelta
from pathlib import Path

import grpc

from bench import harness
from bench.insert_server import INSERT_ROW
from bench.register import analyzed, database, profiled
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.clock import today_shanghai
from services.rules.entrypoints.convert import profile_from_json
from tests.support import RULESETS, profile

CREATE_ORDER = "/booking.v1.BookingService/CreateOrder"
ORDERS_PER_TOKEN = 10  # the burst of the per-QR-token order limit
MIN_ROUND = 1.0  # seconds: a round no shorter, whatever the pool has room for
SCOPES = ["rules.read", "rules.write", "booking.admin", "booking.read"]


def _slot(days: int, half: str = "AM") -> str:
    return f"{(today_shanghai() + timedelta(days=days)).isoformat()} {half}"


def _servers(
    folder: Path, url: str, token: str, extra: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """argv of the rules service and of the booking service (+ insert RPC); `extra`:
    more flags of booking's `serve` (e.g. --order-group-size 8)."""
    tokens = str(folder / "tokens.json")
    rules_address = f"127.0.0.1:{harness.free_port()}"
    rules = ["services.rules", "serve", "--grpc", rules_address, "--http"]
    rules += [f"127.0.0.1:{harness.free_port()}", "--db", f"sqlite:///{folder / 'rules.db'}"]
    rules += ["--rulesets", str(RULESETS), "--tokens", tokens]
    booking = ["bench.insert_server", "booking", "serve", "--db", url, "--rules", rules_address]
    booking += [f"--rules-token={token}", "--qr-keys", str(folder / "qr-keys.json")]
    booking += ["--new-qr-keys", "--tokens"]
    booking += [tokens, "--http", f"127.0.0.1:{harness.free_port()}"]
    # every order comes from this one host on a QR token alone, which the per-address limit
    # for callers without a bearer token (`--rate`, default 100/s) would otherwise cap
    booking += ["--rate", "100000"]
    booking += ["--menu", str(RULESETS / "menu.yaml"), "--regions", str(RULESETS / "regions.yaml")]
    return rules, booking + list(extra)


def prepare(
    rules_address: str, booking_address: str, auth: tuple, args: argparse.Namespace
) -> list[str]:  # type: ignore[type-arg]
    """Firms in the register, a QR token each, the expert pool; the tokens."""
    tokens = []
    with grpc.insecure_channel(rules_address) as rch, grpc.insecure_channel(booking_address) as bch:
        rules = rules_pb2_grpc.RulesServiceStub(rch)
        booking = booking_pb2_grpc.BookingServiceStub(bch)
        for n in range(1, args.firms + 1):
            data = profile(n)
            request = rpb.UpsertEnterpriseRequest(profile=profile_from_json(data))
            rules.UpsertEnterprise(request, metadata=auth, timeout=60)
            issued = booking.IssueQrCode(
                bpb.IssueQrCodeRequest(enterprise_id=str(data["enterprise_id"])),
                metadata=auth,
                timeout=60,
            )
            tokens.append(issued.token)
        slots = [_slot(d, h) for d in range(1, 15) for h in ("AM", "PM")]
        for n in range(args.experts):
            expert = bpb.Expert(
                expert_id=f"E{n:04d}",
                name=f"专家{n}",
                phone="13800000000",
                domains=["fire_crowded"],
                regions=["稠城街道"],
                slots=slots,
                max_visits_per_day=2,
                active=True,
            )
            booking.UpsertExpert(bpb.UpsertExpertRequest(expert=expert), metadata=auth, timeout=60)
    return tokens


def orders(tokens: list[str], round_no: int, per_round: int, half: str = "AM") -> tuple[bytes, ...]:
    """This round's orders: new keys, the firms' tokens in turn, two preferred half-days
    (mornings; the warm-up's afternoons, which leave the rounds' mornings free) from two
    to fourteen days ahead (still bookable if a run crosses Shanghai midnight, which
    turns "tomorrow" into today)."""
    out = []
    for n in range(per_round):
        k = round_no * per_round + n
        request = bpb.CreateOrderRequest(
            qr_token=tokens[k % len(tokens)],
            item_codes=["fire_safety"],
            preferred_slots=[_slot(2 + k % 12, half), _slot(3 + k % 12, half)],
            contact_name="联系人",
            contact_phone="13812345678",
            idempotency_key=f"bench-{round_no}-{n}",
        )
        out.append(request.SerializeToString())
    return tuple(out)


def warm_up(address: str, requests: Sequence[bytes], in_flight: int) -> None:
    """Place `requests` (serialised CreateOrder requests), `in_flight` at a time, before
    the measured rounds: the booking tables hold bookings, as they do in service."""
    with (
        grpc.insecure_channel(address) as channel,
        futures.ThreadPoolExecutor(max(1, in_flight)) as pool,
    ):
        call = channel.unary_unary(CREATE_ORDER)  # bytes in, bytes out
        for done in pool.map(lambda request: call(request, timeout=60), requests):
            assert done  # an error raises grpc.RpcError here


def round_seconds(args: argparse.Namespace, per_round: int, warm_rate: float) -> float:
    """How long each round lasts: `--seconds`, shortened on a host fast enough that the
    rounds would run out of prepared orders or take over half the experts' free mornings
    (the warm-up took afternoons): an exhausted pool makes every order search all experts
    twice, and that, not an order, would be measured. From the warm-up's rate with room
    to spare (a round runs faster than a warm-up on fresh statistics)."""
    mornings = args.experts * 14 // 2  # half the pool's free mornings, over all rounds
    room = min(per_round, mornings // args.rounds)
    fits = max(MIN_ROUND, room / (1.5 * warm_rate))
    if fits >= args.seconds:
        return float(args.seconds)
    print(
        f"  rounds of {fits:.1f} s, not {args.seconds:g}: the warm-up ran at {warm_rate:,.0f} "
        f"orders/s, and a round has {room:,} orders and free slots to spend",
        file=sys.stderr,
    )
    return fits


def run_database(kind: str, args: argparse.Namespace) -> harness.Pair:
    pair = harness.Pair(
        f"CreateOrder + dispatch, {args.in_flight} in flight ({kind})", "bare insert RPC", "calls/s"
    )
    with harness.scratch() as folder, database(kind, folder) as url:
        token = harness.write_tokens(folder, SCOPES)
        auth = (("authorization", f"Bearer {token}"),)
        rules_argv, booking_argv = _servers(folder, url, token, args.serve)
        rules_address = rules_argv[rules_argv.index("--grpc") + 1]
        address = f"127.0.0.1:{harness.free_port()}"
        booking_argv += ["--grpc", address]
        with (
            harness.ServerProcess(rules_argv, rules_address, folder / "rules.log").start(),
            harness.ServerProcess(booking_argv, address, folder / "booking.log").start() as server,
        ):
            tokens = prepare(rules_address, address, auth, args)
            # the rounds' orders, then the warm-up's: the tokens' budget shared out
            per_round = (len(tokens) * ORDERS_PER_TOKEN - args.warm_up) // args.rounds
            warm = orders(tokens, args.rounds, per_round, "PM")[: args.warm_up]
            started = time.perf_counter()
            warm_up(address, warm, args.in_flight)
            seconds = round_seconds(args, per_round, len(warm) / (time.perf_counter() - started))

            def step(round_no: int) -> None:
                analyzed(url, vacuum=True)  # as autovacuum would after the last round's bookings
                common = {"in_flight": args.in_flight, "seconds": seconds, "warmup": 0.0}
                blob = tuple(f"row-{round_no}-{n}".encode() * 8 for n in range(64))
                base = harness.Load(address, INSERT_ROW, blob, metadata=auth, **common)
                pair.baseline.append(harness.measure(base, server))
                load = harness.Load(
                    address, CREATE_ORDER, orders(tokens, round_no, per_round), **common
                )
                with profiled(server, args.profile, f"booking-{kind}", round_no):
                    pair.project.append(harness.measure(load, server))
                done = pair.project[-1].calls
                if done >= per_round:
                    raise RuntimeError(f"{done} orders used up the round's {per_round}: more firms")
                print(
                    f"  {kind} round {round_no + 1}: CreateOrder {pair.project[-1].rate:,.0f}/s "
                    f"vs insert {pair.baseline[-1].rate:,.0f}/s",
                    file=sys.stderr,
                )

            harness.rounds(args.rounds, [step])
            if args.warm_up + sum(m.calls for m in pair.project) > args.experts * 28 // 2:
                print("  warning: the orders took over half the experts' slots", file=sys.stderr)
    return pair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--firms", type=int, default=1500)
    parser.add_argument("--experts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument(
        "--warm-up", type=int, help="orders placed before the rounds (default: twice --experts)"
    )
    parser.add_argument("--quick", action="store_true", help="120 firms, 40 experts, 1 round")
    parser.add_argument("--profile", type=Path, help="py-spy the server in round 1 into DIR")
    parser.add_argument(
        "--serve",
        action="append",
        default=[],
        metavar="FLAG",
        help="a flag for booking's serve, once each (--serve=--order-group-size=8)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.firms, args.experts, args.rounds, args.seconds = 120, 40, 1, 2.0
    if args.warm_up is None:
        args.warm_up = 2 * args.experts
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    print(harness.machine())
    pairs = [run_database(kind, args) for kind in kinds]
    print(harness.pair_table(pairs, whole=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
