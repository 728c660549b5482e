"""A soak with faults (review 68): both services as processes under a mixed load, while
the harness breaks what they stand on every minute or so, then checks that nothing
acknowledged was lost or applied twice.

    PYTHONPATH=$PWD .venv/bin/python -m bench.fault_soak --db postgresql --duration 20m

Faults: the databases (PostgreSQL through a TCP proxy of ours: stall, reset, down) and
NATS (the same) stall or drop; rules or booking is killed with SIGKILL mid-write, stopped
with SIGSTOP for a while, or stopped with SIGTERM under load, then started again; on
SQLite (root only: a tmpfs of its own) the databases' folder fills up.

Recorded: every call the clients saw acknowledged, with its ids (events, inspections,
upserts, orders, cancellations, visits, tickets, proofs, rechecks); every change the
WatchChanges follower saw; health of both every second; RSS, threads and descriptors
every 10 s; every call that took longer than its deadline, and every INTERNAL/UNKNOWN.
Checked at the end, against the databases, the change feed (WatchChanges and the NATS
stream) and rules' register: see `verify`. Exit 1 when something does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import httpx
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text

from bench.harness import free_port, launch, wait_logged
from bench.soak import FIRMS, Soak, ledger_visit, parse_duration
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.faults import TcpProxy, through
from tests.support import ROOT, profile, uscc

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEADLINE = 10.0  # every unary call's
HANG_SLACK = 2.0  # a call answered later than its deadline plus this hung


def today() -> Any:
    return datetime.now(SHANGHAI).date()


class Proc:
    """One service, restartable on the same ports; each incarnation logs to a file of its
    own (name.N.log)."""

    def __init__(self, name: str, args: list[str], workdir: Path, ready: str) -> None:
        self.name, self.args, self.dir, self.ready_event = name, args, workdir, ready
        self.incarnation = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.incarnation += 1
        self.log = self.dir / f"{self.name}.{self.incarnation}.log"
        self.proc, self.handle = launch(self.args, self.log)
        self.started_at = time.monotonic()
        wait_logged(self.proc, self.log, self.ready_event, timeout=180)
        self.ps = psutil.Process(self.proc.pid)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=30)
        self.handle.close()

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds to exit)."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -999
        self.handle.close()
        return code, time.monotonic() - start

    def sample(self) -> tuple[int, float, int, int] | None:
        try:
            return (
                self.ps.pid,
                self.ps.memory_info().rss / 2**20,
                self.ps.num_threads(),
                self.ps.num_fds(),
            )
        except (psutil.Error, AttributeError):
            return None


class FaultSoak(Soak):
    def __init__(
        self, kind: str, workdir: Path, duration: float, interval: float, seed: int
    ) -> None:
        super().__init__(kind, workdir, duration)
        self.interval = interval
        self.rnd = random.Random(seed)
        self.tag = uuid.uuid4().hex[:8]
        self.acked: dict[str, list[Any]] = defaultdict(list)
        self.upserts: dict[str, list[tuple[int, bool]]] = defaultdict(list)
        self.upsert_lock = threading.Lock()
        self.hangs: list[tuple[str, float]] = []
        self.bad: list[tuple[str, str, str]] = []  # (call, code, message)
        self.follower: list[tuple[str, str, str, str]] = []  # cursor, change_id, firm, event
        self.follower_errors: Counter[str] = Counter()
        self.health: list[tuple[float, str, str]] = []
        self.samples: list[tuple[float, str, int, float, int, int]] = []
        self.faults: list[dict[str, Any]] = []
        self.harness_errors: Counter[str] = Counter()
        self.t0 = time.monotonic()
        self.mount: Path | None = None
        self.marker = 100

    # -- setup

    def databases(self) -> None:
        if self.kind == "sqlite" and os.geteuid() == 0:
            self.mount = self.dir / "disk"
            self.mount.mkdir()
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=400m", "tmpfs", str(self.mount)], check=True
            )
            for name in ("rules", "booking"):
                self.urls[name] = f"sqlite:///{self.mount / (name + '.db')}"
            return
        super().databases()

    def drop(self) -> None:
        super().drop()
        if self.mount is not None:
            subprocess.run(["umount", "-l", str(self.mount)], check=False)

    def start(self) -> None:
        tokens = self.tokens_file()
        self.nats_proxy = TcpProxy(("127.0.0.1", 4222))
        self.proxies: dict[str, TcpProxy] = {"nats": self.nats_proxy}
        urls = dict(self.urls)
        if self.kind == "postgresql":
            for name in ("rules", "booking"):
                self.proxies[name] = TcpProxy(("127.0.0.1", 5432))
                urls[name] = through(self.urls[name], self.proxies[name])
        self.rules_port, self.grpc_port = free_port(), free_port()
        self.http_port = free_port()
        self.stream_name = f"SOAK68_{self.tag}"
        self.subject_prefix = f"soak68.{self.tag}"
        rules_at = f"127.0.0.1:{self.rules_port}"
        self.rules = Proc(  # type: ignore[assignment]
            "rules",
            [
                *self.rules_args(rules_at, urls["rules"], tokens),
                "--nats",
                f"nats://{self.nats_proxy.url_host}",
                "--nats-stream",
                self.stream_name,
                "--nats-subject-prefix",
                self.subject_prefix,
            ],
            self.dir,
            "rules service listening",
        )
        self.booking = Proc(  # type: ignore[assignment]
            "booking",
            self.booking_args(
                f"127.0.0.1:{self.grpc_port}", self.http_port, urls["booking"], rules_at, tokens
            ),
            self.dir,
            "booking service listening",
        )
        self.rules.start()  # type: ignore[attr-defined]
        self.booking.start()  # type: ignore[attr-defined]
        self.rchan = grpc.insecure_channel(f"127.0.0.1:{self.rules_port}")
        self.bchan = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.rstub = rules_pb2_grpc.RulesServiceStub(self.rchan)
        self.bstub = booking_pb2_grpc.BookingServiceStub(self.bchan)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=DEADLINE)

    def restarted(self, proc: Proc) -> None:
        if proc is self.booking:
            with self._log_lock:
                self._log_at = 0  # a new log file

    # -- calls

    def call(self, name: str, fn: Callable[[], Any], deadline: float = DEADLINE) -> Any:
        start = time.monotonic()
        code, result, message = "OK", None, ""
        try:
            result = fn()
        except grpc.RpcError as exc:
            code, message = exc.code().name, str(exc.details())
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        elapsed = time.monotonic() - start
        if isinstance(result, httpx.Response):
            code = "OK" if result.status_code < 400 else f"HTTP {result.status_code}"
            if result.status_code >= 500:
                message = result.text[:200]
        with self.stats.lock:
            self.stats.latencies[name].append(elapsed * 1000)
            self.stats.codes[name][code] += 1
            if elapsed > deadline + HANG_SLACK:
                self.hangs.append((name, elapsed))
            # 503 is the phone page's UNAVAILABLE (try again): expected while a fault lasts
            if code in ("INTERNAL", "UNKNOWN") or (
                code.startswith("HTTP 5") and code != "HTTP 503"
            ):
                self.bad.append((name, code, message[:300]))
        if code in ("UNAVAILABLE", "HTTP 503"):
            time.sleep(0.2)  # as a client that honours retry-after would, roughly
        return result if code == "OK" else None

    def ack(self, kind: str, item: Any) -> None:
        with self.stats.lock:
            self.acked[kind].append(item)

    # -- the load

    def gov_step(self, rnd: random.Random, lane: int) -> None:
        auth = self.auth("enforcement")
        pick = rnd.random()
        n = rnd.randint(1, FIRMS)
        if pick < 0.25:
            request = rpb.EvaluateRequest(profile=profile_from_json(profile(n)))
            self.call(
                "Evaluate", lambda: self.rstub.Evaluate(request, metadata=auth, timeout=DEADLINE)
            )
        elif pick < 0.45:
            n = rnd.randrange(lane + 1, FIRMS + 1, 2)  # each lane upserts its own firms
            firm = uscc(n)
            with self.upsert_lock:
                self.marker += 1
                marker = self.marker
            data = profile(n, name=f"浸泡企业{n}", employees=marker)
            request = rpb.UpsertEnterpriseRequest(profile=profile_from_json(data))
            done = self.call(
                "UpsertEnterprise",
                lambda: self.rstub.UpsertEnterprise(request, metadata=auth, timeout=DEADLINE),
            )
            with self.upsert_lock:
                self.upserts[firm].append((marker, done is not None))
        elif pick < 0.7:
            event_id = f"ev-{self.tag}-{uuid.uuid4().hex[:16]}"
            request = rpb.ReportEventRequest(event=self.complaint(event_id, n))
            done = self.call(
                "ReportEvent",
                lambda: self.rstub.ReportEvent(request, metadata=auth, timeout=DEADLINE),
            )
            if done is not None:
                self.ack("event", (event_id, uscc(n)))
        elif pick < 0.82:
            key = uuid.uuid4().hex
            request = rpb.CheckInspectionRequest(
                enterprise_id=uscc(n),
                authority=f"执法主体{rnd.randint(1, 5)}",
                kind=rpb.INSPECTION_KIND_COMPLAINT,
                planned_on=(today() + timedelta(days=rnd.randint(1, 300))).isoformat(),
                idempotency_key=key,
            )
            done = self.call(
                "CheckInspection",
                lambda: self.rstub.CheckInspection(request, metadata=auth, timeout=DEADLINE),
            )
            if done is not None:
                self.ack("inspection", (key, uscc(n)))
        elif pick < 0.92:
            token = ""
            for _ in range(10):
                request = rpb.ListWhitelistRequest(page_size=50, page_token=token)
                page = self.call(
                    "ListWhitelist",
                    lambda r=request: self.rstub.ListWhitelist(r, metadata=auth, timeout=DEADLINE),
                )
                if page is None or not page.next_page_token:
                    break
                token = page.next_page_token
        else:
            request = rpb.GetEnterpriseStatusRequest(enterprise_id=uscc(n), history_limit=5)
            self.call(
                "GetEnterpriseStatus",
                lambda: self.rstub.GetEnterpriseStatus(request, metadata=auth, timeout=DEADLINE),
            )

    def complaint(self, event_id: str, n: int) -> Any:
        return rpb.EnterpriseEvent(
            event_id=event_id,
            enterprise_id=uscc(n),
            kind=rpb.EVENT_KIND_COMPLAINT,
            occurred_on=today().isoformat(),
            complaint=rpb.ComplaintDetail(text="群众投诉"),
        )

    def stream_step(self, rnd: random.Random) -> None:
        """A data-monitoring system pushes 20 events on one stream."""
        events = [
            (f"st-{self.tag}-{uuid.uuid4().hex[:16]}", rnd.randint(1, FIRMS)) for _ in range(20)
        ]
        requests = [rpb.ReportEventRequest(event=self.complaint(e, n)) for e, n in events]
        start = time.monotonic()
        got = 0
        code = "OK"
        try:
            answers = self.rstub.ReportEventStream(
                iter(requests), metadata=self.auth("enforcement"), timeout=30
            )
            for (event_id, n), answer in zip(events, answers, strict=False):
                got += 1
                if answer.WhichOneof("result") == "status":
                    self.ack("event", (event_id, uscc(n)))
                elif answer.error.code in (13, 2):
                    with self.stats.lock:
                        self.bad.append(
                            (
                                "ReportEventStream item",
                                str(answer.error.code),
                                answer.error.message[:300],
                            )
                        )
        except grpc.RpcError as exc:
            code = exc.code().name
            if code in ("INTERNAL", "UNKNOWN"):
                with self.stats.lock:
                    self.bad.append(("ReportEventStream", code, str(exc.details())[:300]))
        elapsed = time.monotonic() - start
        with self.stats.lock:
            self.stats.latencies["ReportEventStream"].append(elapsed * 1000)
            self.stats.codes["ReportEventStream"][code] += 1
            if elapsed > 30 + HANG_SLACK:
                self.hangs.append(("ReportEventStream", elapsed))

    def follow(self) -> None:
        """A government system follows WatchChanges from the start, resuming from its last
        cursor after every error."""
        cursor = ""
        while not self.stop.is_set():
            try:
                stream = self.rstub.WatchChanges(
                    rpb.WatchChangesRequest(after_cursor=cursor), metadata=self.auth("enforcement")
                )
                self._stream = stream
                for change in stream:
                    event_id = (
                        change.event.event_id if change.WhichOneof("detail") == "event" else ""
                    )
                    with self.stats.lock:
                        self.follower.append(
                            (change.cursor, change.change_id, change.enterprise_id, event_id)
                        )
                    cursor = change.cursor
                    if self.stop.is_set():
                        stream.cancel()
            except grpc.RpcError as exc:
                code = exc.code().name
                self.follower_errors[code] += 1
                if code in ("INTERNAL", "UNKNOWN"):
                    with self.stats.lock:
                        self.bad.append(("WatchChanges", code, str(exc.details())[:300]))
                if code == "FAILED_PRECONDITION":
                    self.follower_errors["resync: " + str(exc.details())[:80]] += 1
                self.stop.wait(1.0)
            except Exception as exc:
                self.harness_errors[f"follow: {exc!r}"[:120]] += 1
                self.stop.wait(1.0)

    def booking_step(self, rnd: random.Random) -> None:
        admin = self.auth("admin")
        pick = rnd.random()
        order_id = self.world.take(self.world.dispatched)
        if order_id and pick < 0.15:
            request = bpb.CancelOrderRequest(order_id=order_id, reason="企业临时停产")
            done = self.call(
                "CancelOrder",
                lambda: self.bstub.CancelOrder(request, metadata=admin, timeout=DEADLINE),
            )
            if done is not None:
                self.ack("cancel", order_id)
            return
        if order_id and pick < 0.6:
            visit = ledger_visit(order_id, photo=rnd.random() < 0.5)
            done = self.call(
                "RecordVisit",
                lambda: self.bstub.RecordVisit(visit, metadata=admin, timeout=DEADLINE),
            )
            if done is not None:
                self.ack("visit", (order_id, done.visit_id, [t.ticket_id for t in done.tickets]))
                for ticket in done.tickets:
                    self.world.put(
                        self.world.open_tickets, (ticket.enterprise_id, ticket.ticket_id)
                    )
            else:
                self.world.put(self.world.dispatched, order_id)  # retry later (idempotent?)
            return
        if order_id:
            self.world.put(self.world.dispatched, order_id)
        ticket_id = self.world.take(self.world.proofs)
        if ticket_id and pick < 0.8:
            request = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True, note="复查通过")
            done = self.call(
                "RecheckTicket",
                lambda: self.bstub.RecheckTicket(request, metadata=admin, timeout=DEADLINE),
            )
            if done is not None:
                self.ack("recheck", ticket_id)
            return
        if ticket_id:
            self.world.put(self.world.proofs, ticket_id)
        n = rnd.randint(1, FIRMS)
        days = sorted(rnd.sample(range(1, 15), 2))
        key = uuid.uuid4().hex
        request = bpb.CreateOrderRequest(
            qr_token=self.world.tokens[uscc(n)],
            item_codes=["fire_safety"],
            preferred_slots=[f"{today() + timedelta(days=d)} PM" for d in days],
            contact_name="李经理",
            contact_phone="13812345678",
            idempotency_key=key,
        )
        done = self.call("CreateOrder", lambda: self.bstub.CreateOrder(request, timeout=DEADLINE))
        if done is not None:
            self.ack("order", (done.order_id, uscc(n), key))
            if done.status == bpb.ORDER_STATUS_DISPATCHED:
                self.world.put(self.world.dispatched, done.order_id)

    def phone_step(self, rnd: random.Random) -> None:
        ticket = self.world.take(self.world.open_tickets)
        if not ticket:
            self.stop.wait(1.0)
            return
        firm, ticket_id = ticket
        token = self.world.tokens[firm]
        cookie = self.sign_in(firm)
        if not cookie:
            self.world.put(self.world.open_tickets, ticket)
            self.world.sessions.pop(firm, None)
            return
        posted = self.call("web: proof upload", lambda: self.post_proof(token, ticket_id, cookie))
        if posted is not None and posted.headers.get("location", "").endswith(
            f"/tickets/{ticket_id}"
        ):
            self.ack("proof", ticket_id)
            self.world.put(self.world.proofs, ticket_id)
        elif posted is not None and "sign-in" in posted.headers.get("location", ""):
            self.world.sessions.pop(firm, None)
            self.world.put(self.world.open_tickets, ticket)
        elif posted is None:
            self.world.put(self.world.open_tickets, ticket)

    def safe(
        self, name: str, step: Callable[[random.Random], None], seed: int, pause: float
    ) -> None:
        rnd = random.Random(seed)
        while not self.stop.is_set():
            try:
                step(rnd)
            except Exception as exc:
                self.harness_errors[f"{name}: {exc!r}"[:160]] += 1
                self.stop.wait(0.5)
            if pause:
                self.stop.wait(pause)

    # -- watching

    def watch_health(self) -> None:
        stubs = {
            "rules": health_pb2_grpc.HealthStub(self.rchan),
            "booking": health_pb2_grpc.HealthStub(self.bchan),
        }
        while not self.stop_watch.is_set():
            for name, stub in stubs.items():
                try:
                    state = health_pb2.HealthCheckResponse.ServingStatus.Name(
                        stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
                    )
                except grpc.RpcError as exc:
                    state = exc.code().name
                self.health.append((time.monotonic() - self.t0, name, state))
            self.stop_watch.wait(1.0)

    def watch_resources(self) -> None:
        while not self.stop_watch.is_set():
            for name in ("rules", "booking"):
                proc = getattr(self, name)
                got = proc.sample()
                if got:
                    pid, rss, threads, fds = got
                    self.samples.append((time.monotonic() - self.t0, name, pid, rss, threads, fds))
            self.stop_watch.wait(10.0)

    # -- faults

    def fault_plan(self) -> list[str]:
        common = [
            "nats-stall",
            "kill9-rules",
            "nats-reset",
            "kill9-booking",
            "sigstop-rules",
            "sigterm-booking",
            "nats-down",
            "sigterm-rules",
            "sigstop-booking",
        ]
        if self.kind == "postgresql":
            db = [
                "db-stall-rules",
                "db-reset-booking",
                "db-down-rules",
                "db-stall-booking",
                "db-reset-rules",
                "db-down-booking",
            ]
        else:
            db = ["disk-full"] if self.mount is not None else []
        plan = []
        for i in range(max(len(common), len(db) * 2)):
            plan.append(common[i % len(common)])
            if db:
                plan.append(db[i % len(db)])
        return plan

    def inject(self, fault: str) -> dict[str, Any]:
        note: dict[str, Any] = {"fault": fault, "at": time.monotonic() - self.t0}
        hold = self.rnd.uniform(10, 25)
        if fault.startswith(("db-", "nats-")):
            what, target = (
                fault.split("-", 1)[1],
                fault.split("-")[-1] if fault.startswith("db-") else "nats",
            )
            proxy = self.proxies[target]
            if what.startswith("stall"):
                proxy.stall()
                time.sleep(hold)
                proxy.flow()
            elif what.startswith("reset"):
                proxy.reset()
                hold = 0
            else:
                proxy.down()
                time.sleep(hold)
                proxy.up()
        elif fault.startswith("kill9-"):
            proc = getattr(self, fault.split("-")[1])
            proc.kill9()
            time.sleep(2)
            proc.start()
            self.restarted(proc)
        elif fault.startswith("sigstop-"):
            proc = getattr(self, fault.split("-")[1])
            proc.signal(signal.SIGSTOP)
            time.sleep(hold)
            proc.signal(signal.SIGCONT)
        elif fault.startswith("sigterm-"):
            proc = getattr(self, fault.split("-")[1])
            code, took = proc.terminate()
            note["exit"], note["stop_seconds"] = code, round(took, 1)
            proc.start()
            self.restarted(proc)
        elif fault == "disk-full":
            assert self.mount is not None
            filler = self.mount / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as fh:
                while True:
                    fh.write(b"\0" * 2**20)
            time.sleep(hold)
            filler.unlink()
        note["held"] = round(hold, 1)
        note["end"] = time.monotonic() - self.t0
        return note

    # -- run

    def _load(self) -> dict[str, Any]:
        self.seed()
        self.stop_watch = threading.Event()
        threads = [
            threading.Thread(
                target=self.safe, args=("gov0", lambda r: self.gov_step(r, 0), 1, 0.0)
            ),
            threading.Thread(
                target=self.safe, args=("gov1", lambda r: self.gov_step(r, 1), 2, 0.0)
            ),
            threading.Thread(target=self.safe, args=("stream", self.stream_step, 3, 0.5)),
            threading.Thread(target=self.safe, args=("booking", self.booking_step, 4, 0.05)),
            threading.Thread(target=self.safe, args=("phone", self.phone_step, 5, 1.2)),
            threading.Thread(target=self.follow),
        ]
        watchers = [
            threading.Thread(target=self.watch_health, daemon=True),
            threading.Thread(target=self.watch_resources, daemon=True),
        ]
        for t in threads + watchers:
            t.start()
        started = time.monotonic()
        plan = self.fault_plan()
        i = 0
        time.sleep(min(60.0, self.interval))
        while time.monotonic() - started < self.duration - 60 and plan:
            fault = plan[i % len(plan)]
            i += 1
            print(f"[{self.kind} {time.monotonic() - self.t0:7.1f}] {fault}", file=sys.stderr)
            try:
                self.faults.append(self.inject(fault))
            except Exception as exc:
                self.faults.append({"fault": fault, "error": repr(exc)})
            time.sleep(self.rnd.uniform(self.interval * 0.6, self.interval))
        rest = self.duration - (time.monotonic() - started)
        time.sleep(max(0.0, rest))
        self.stop.set()
        with contextlib.suppress(Exception):
            self._stream.cancel()
        for t in threads:
            t.join(timeout=60)
        load_seconds = time.monotonic() - started
        settle = self.settle()
        self.stop_watch.set()
        result = self.verify()
        result.update(
            kind=self.kind,
            seconds=load_seconds,
            settle=settle,
            codes={k: dict(v) for k, v in self.stats.codes.items()},
            faults=self.faults,
            hangs=self.hangs,
            bad=self.bad,
            follower_errors=dict(self.follower_errors),
            harness_errors=dict(self.harness_errors),
            acked={k: len(v) for k, v in self.acked.items()},
            health=self.health_summary(),
            resources=self.resource_summary(),
            audit={name: self._audit(name) for name in ("rules", "booking")},
        )
        (self.dir / "result.json").write_text(
            json.dumps(result, ensure_ascii=False, indent=1, default=str)
        )
        return result

    def settle(self) -> dict[str, Any]:
        """After the load: the outbox drained, the feed positioned and published."""
        out: dict[str, Any] = {}
        deadline = time.monotonic() + 240
        booking = create_engine(self.urls["booking"])
        rules = create_engine(self.urls["rules"])
        try:
            while True:
                with booking.connect() as conn:
                    open_ = conn.execute(
                        text(
                            "SELECT count(*) FROM outbox"
                            " WHERE delivered_at IS NULL AND discarded_at IS NULL"
                        )
                    ).scalar_one()
                with rules.connect() as conn:
                    unpos = conn.execute(
                        text("SELECT count(*) FROM changes WHERE position IS NULL")
                    ).scalar_one()
                    unpub = conn.execute(
                        text("SELECT count(*) FROM changes WHERE published_at IS NULL")
                    ).scalar_one()
                out = {"outbox_open": open_, "unpositioned": unpos, "unpublished": unpub}
                if (open_, unpos, unpub) == (0, 0, 0) or time.monotonic() > deadline:
                    break
                time.sleep(2)
            out["waited"] = round(240 - (deadline - time.monotonic()), 1)
        finally:
            booking.dispose()
            rules.dispose()
        # the follower catches up: a last pass from its last cursor
        cursor = self.follower[-1][0] if self.follower else ""
        try:
            for change in self.rstub.WatchChanges(
                rpb.WatchChangesRequest(after_cursor=cursor),
                metadata=self.auth("enforcement"),
                timeout=15,
            ):
                event_id = change.event.event_id if change.WhichOneof("detail") == "event" else ""
                self.follower.append(
                    (change.cursor, change.change_id, change.enterprise_id, event_id)
                )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                self.follower_errors["final: " + exc.code().name] += 1
        return out

    # -- the checks

    def verify(self) -> dict[str, Any]:  # noqa: C901 - one list of checks
        problems: list[str] = []
        facts: dict[str, Any] = {}
        rules = create_engine(self.urls["rules"])
        booking = create_engine(self.urls["booking"])
        with rules.connect() as conn:
            events = Counter(
                r[0]
                for r in conn.execute(
                    text("SELECT event_id FROM events WHERE source = 'enforcement'")
                )
            )
            booking_events = {
                r[0]
                for r in conn.execute(
                    text("SELECT event_id FROM events WHERE source = 'booking-service'")
                )
            }
            inspections = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT idempotency_key FROM inspections WHERE idempotency_key IS NOT NULL"
                    )
                )
            }
            stored = {
                r[0]: (json.loads(r[1]) if isinstance(r[1], str) else r[1])["employees"]
                for r in conn.execute(text("SELECT enterprise_id, profile FROM firms"))
            }
            changes = [
                (r[0], r[1], r[2], r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4])
                for r in conn.execute(
                    text(
                        "SELECT position, change_id, enterprise_id, kind, detail"
                        " FROM changes ORDER BY position"
                    )
                )
            ]
        with booking.connect() as conn:
            orders = {
                r[0]: str(r[1]).upper() for r in conn.execute(text("SELECT id, status FROM orders"))
            }
            visits = {r[0] for r in conn.execute(text("SELECT id FROM visits"))}
            tickets = {
                r[0]: str(r[1]).upper()
                for r in conn.execute(text("SELECT id, status FROM tickets"))
            }
            outbox = conn.execute(
                text("SELECT event_id, delivered_at, discarded_at, failed_at FROM outbox")
            ).all()
        rules.dispose()
        booking.dispose()

        acked_events = [e for e, _ in self.acked["event"]]
        missing = [e for e in acked_events if e not in events]
        facts["events acked/stored"] = (len(acked_events), len(events))
        if missing:
            problems.append(f"{len(missing)} acknowledged events missing: {missing[:5]}")
        applied = Counter(
            c[4].get("event_id")
            for c in changes
            if str(c[3]).upper() == "EVENT_APPLIED" and isinstance(c[4], dict)
        )
        twice = [e for e in acked_events if applied.get(e, 0) > 1]
        not_in_feed = [e for e in acked_events if applied.get(e, 0) == 0]
        if twice:
            problems.append(f"{len(twice)} events applied more than once in the feed: {twice[:5]}")
        if not_in_feed:
            problems.append(
                f"{len(not_in_feed)} acknowledged events with no EVENT_APPLIED change: "
                f"{not_in_feed[:5]}"
            )
        missing = [k for k, _ in self.acked["inspection"] if k not in inspections]
        facts["inspections acked"] = len(self.acked["inspection"])
        if missing:
            problems.append(f"{len(missing)} acknowledged inspections missing: {missing[:5]}")
        wrong = []
        for firm, attempts in self.upserts.items():
            last = max((i for i, (_, ok) in enumerate(attempts) if ok), default=None)
            if last is None:
                continue
            allowed = {m for m, _ in attempts[last:]}
            if stored.get(firm) not in allowed:
                wrong.append((firm, stored.get(firm), attempts[last][0]))
        facts["upserts acked"] = sum(ok for a in self.upserts.values() for _, ok in a)
        if wrong:
            problems.append(
                f"{len(wrong)} firms whose acknowledged upsert is not stored: {wrong[:5]}"
            )

        for kind, check in (
            ("order", lambda o: o[0] in orders),
            ("cancel", lambda o: orders.get(o) == "CANCELLED"),
            ("visit", lambda v: v[1] in visits and all(t in tickets for t in v[2])),
            ("proof", lambda t: tickets.get(t) in ("SUBMITTED", "VERIFIED")),
            ("recheck", lambda t: tickets.get(t) == "VERIFIED"),
        ):
            lost = [x for x in self.acked[kind] if not check(x)]
            facts[f"{kind}s acked"] = len(self.acked[kind])
            if lost:
                problems.append(f"{len(lost)} acknowledged {kind}s not (so) stored: {lost[:3]}")
        keys = Counter(o[2] for o in self.acked["order"])
        if any(n > 1 for n in keys.values()):
            problems.append("an idempotency key acknowledged twice")

        open_ = [r for r in outbox if r[1] is None and r[2] is None]
        facts["outbox rows/open"] = (len(outbox), len(open_))
        if open_:
            problems.append(f"outbox not drained: {len(open_)} open ({[r[0] for r in open_[:3]]})")
        undelivered = [r[0] for r in outbox if r[1] is not None and r[0] not in booking_events]
        if undelivered:
            problems.append(
                f"{len(undelivered)} outbox events delivered but not in rules: {undelivered[:3]}"
            )

        # the feed: the table, the follower and the stream
        positions = [c[0] for c in changes]
        ids = [c[1] for c in changes]
        facts["feed changes"] = len(changes)
        if None in positions:
            problems.append(f"{positions.count(None)} changes never positioned")
        if len(set(ids)) != len(ids):
            problems.append("a change_id twice in the changes table")
        seen = [f[1] for f in self.follower]
        dup = [k for k, n in Counter(seen).items() if n > 1]
        facts["follower changes"] = len(seen)
        if dup:
            problems.append(f"WatchChanges: {len(dup)} changes delivered twice: {dup[:3]}")
        gone = set(ids) - set(seen)
        if gone:
            problems.append(
                f"WatchChanges: {len(gone)} changes never delivered: {sorted(gone)[:3]}"
            )
        per_firm: dict[str, int] = {}
        out_of_order = 0
        for cursor, _, firm, _ in self.follower:
            if per_firm.get(firm, -1) >= int(cursor):
                out_of_order += 1
            per_firm[firm] = int(cursor)
        if out_of_order:
            problems.append(f"WatchChanges: {out_of_order} changes out of order within their firm")
        nats = self.read_stream()
        facts["nats messages"] = len(nats)
        ndup = [k for k, n in Counter(m[0] for m in nats).items() if n > 1]
        if ndup:
            problems.append(f"NATS: {len(ndup)} changes published twice: {ndup[:3]}")
        ngone = set(ids) - {m[0] for m in nats}
        if ngone:
            problems.append(f"NATS: {len(ngone)} changes never published: {sorted(ngone)[:3]}")
        nper: dict[str, int] = {}
        nout = 0
        for _, firm, cursor in nats:
            if nper.get(firm, -1) >= cursor:
                nout += 1
            nper[firm] = cursor
        if nout:
            problems.append(f"NATS: {nout} changes out of order within their firm")
        if self.hangs:
            problems.append(f"{len(self.hangs)} calls beyond their deadline: {self.hangs[:5]}")
        if self.bad:
            problems.append(f"{len(self.bad)} INTERNAL/UNKNOWN/5xx: {self.bad[:5]}")
        return {"problems": problems, "facts": facts}

    def read_stream(self) -> list[tuple[str, str, int]]:
        """Every message of our stream: (change_id, firm, cursor), in stream order; the
        stream is deleted afterwards."""

        async def read() -> list[tuple[str, str, int]]:
            import nats

            nc = await nats.connect("nats://127.0.0.1:4222")
            js = nc.jetstream()
            out: list[tuple[str, str, int]] = []
            try:
                info = await js.stream_info(self.stream_name)
                last = info.state.last_seq
                sub = await js.pull_subscribe(f"{self.subject_prefix}.>", stream=self.stream_name)
                while len(out) < info.state.messages:
                    try:
                        msgs = await sub.fetch(500, timeout=5)
                    except nats.errors.TimeoutError:
                        break
                    for msg in msgs:
                        body = json.loads(msg.data)
                        out.append(
                            (
                                msg.headers.get("Nats-Msg-Id", "") if msg.headers else "",
                                body.get("enterpriseId", ""),
                                int(body.get("cursor", "0")),
                            )
                        )
                        await msg.ack()
                        if msg.metadata.sequence.stream >= last:
                            break
                await sub.unsubscribe()
            finally:
                with contextlib.suppress(Exception):
                    await js.delete_stream(self.stream_name)
                await nc.close()
            return out

        try:
            return asyncio.run(read())
        except Exception as exc:
            self.harness_errors[f"read_stream: {exc!r}"[:160]] += 1
            return []

    def health_summary(self) -> dict[str, Any]:
        """For every fault: the states each service read while it lasted and in the 40 s
        after; and the last state read."""
        out: dict[str, Any] = {"faults": []}
        for f in self.faults:
            if "at" not in f:
                continue
            row: dict[str, Any] = {"fault": f["fault"]}
            for name in ("rules", "booking"):
                during = Counter(
                    s for t, n, s in self.health if n == name and f["at"] <= t <= f["end"]
                )
                after = [
                    s for t, n, s in self.health if n == name and f["end"] < t <= f["end"] + 40
                ]
                row[name] = {
                    "during": dict(during),
                    "after_last": after[-1] if after else None,
                    "serving_again_after_s": next(
                        (
                            round(t - f["end"], 1)
                            for t, n, s in self.health
                            if n == name and t > f["end"] and s == "SERVING"
                        ),
                        None,
                    ),
                }
            out["faults"].append(row)
        for name in ("rules", "booking"):
            states = [s for _, n, s in self.health if n == name]
            out[f"{name}_final"] = states[-1] if states else None
            out[f"{name}_counts"] = dict(Counter(states))
        return out

    def resource_summary(self) -> dict[str, Any]:
        """Per process incarnation: first sample 60 s after start and the last."""
        out: dict[str, Any] = {}
        for name in ("rules", "booking"):
            by_pid: dict[int, list[tuple[float, float, int, int]]] = defaultdict(list)
            for t, n, pid, rss, threads, fds in self.samples:
                if n == name:
                    by_pid[pid].append((t, rss, threads, fds))
            out[name] = []
            for pid, rows in by_pid.items():
                warm = [r for r in rows if r[0] - rows[0][0] >= 60] or rows
                out[name].append(
                    {
                        "pid": pid,
                        "samples": len(rows),
                        "span_s": round(rows[-1][0] - rows[0][0]),
                        "rss": (
                            round(warm[0][1], 1),
                            round(rows[-1][1], 1),
                            round(max(r[1] for r in rows), 1),
                        ),
                        "threads": (warm[0][2], rows[-1][2], max(r[2] for r in rows)),
                        "fds": (warm[0][3], rows[-1][3], max(r[3] for r in rows)),
                    }
                )
        return out

    def stop_services(self) -> None:
        """Both services stopped whatever state the faults left them in (SIGSTOPped, dead),
        then the proxies closed."""
        for proc in (self.booking, self.rules):
            with contextlib.suppress(Exception):
                proc.signal(signal.SIGCONT)
                proc.terminate()  # type: ignore[attr-defined]
        for proxy in self.proxies.values():
            proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fault_soak", description=__doc__)
    parser.add_argument("--duration", type=parse_duration, default=1200.0)
    parser.add_argument("--interval", type=parse_duration, default=90.0, help="between faults")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--seed", type=int, default=68)
    args = parser.parse_args(argv)
    workdir = ROOT / "var" / f"fault-soak-{args.db}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    print(f"fault soak on {args.db} for {args.duration:.0f} s (logs in {workdir})", file=sys.stderr)
    result = FaultSoak(args.db, workdir, args.duration, args.interval, args.seed).run()
    print(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
