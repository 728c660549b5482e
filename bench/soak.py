"""`make soak DURATION=10m`: both services as processes, on SQLite and then on PostgreSQL,
under a mixed, bounded load; reports what a week of it would show early.

The load: evaluations, upserts, events, inspection checks and status reads (rules);
orders through the phone page (form, post), visits with findings and photos, proof-of-fix
uploads through the phone page, rechecks (booking); the booking service's own sweep and
outbox worker run as in production. It reports throughput, p50/p99 per call, errors by
status code, RSS and open descriptors of each process after warm-up and at the end,
database size, and `audit verify` of both. "Flat": RSS grows less than 20 MB after
warm-up, descriptors end within 5 of where they were, no INTERNAL/UNKNOWN (or HTTP 5xx),
both audit trails intact. Exit 1 when not flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import httpx
import psutil
from sqlalchemy import create_engine, text

from bench.harness import free_port, launch, wait_logged
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.support import ROOT, profile, uscc

PG_ADMIN = os.environ.get("SOAK_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FIRMS = 150
EXPERTS = 40
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
RSS_GROWTH_MB, FD_SLACK = 20.0, 5
ROLES = {
    "admin": ["booking.admin", "booking.read", "booking.inspector"],
    "booking-service": ["rules.read", "rules.evaluate", "rules.write", "rules.contact"],
    "enforcement": ["rules.read", "rules.evaluate", "rules.write", "inspection.check"],
}


def mobile(n: int) -> str:
    """Firm n's sign-in mobile (distinct in its masked form 139****nnnn)."""
    return f"139{n:08d}"


def parse_duration(text_: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text_.strip())
    if not found:
        raise argparse.ArgumentTypeError("a duration like 90s, 10m or 1h")
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]


def ledger_visit(order_id: str, *, photo: bool) -> bpb.RecordVisitRequest:
    """A visit with one general finding (no ledger of hidden hazards), with a small PNG
    when `photo`."""
    shots = [bpb.Photo(content=PNG, content_type="image/png")] if photo else []
    finding = bpb.FindingInput(
        clause_ref="GEN:ledger",
        severity=bpb.SEVERITY_GENERAL,
        description="未建立隐患排查治理台账",
        photos=shots,
    )
    return bpb.RecordVisitRequest(order_id=order_id, findings=[finding])


class Service:
    """One service process; its log goes to a file (one line per RPC is a lot of lines)."""

    def __init__(self, args: list[str], log: Path, ready: str) -> None:
        self.log = log
        self.proc, self.handle = launch(args, log)
        try:
            self.ready = wait_logged(self.proc, log, ready, timeout=120)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        self.ps = psutil.Process(self.proc.pid)

    def sample(self) -> tuple[float, int]:
        """(RSS in MB, open file descriptors)."""
        return self.ps.memory_info().rss / 2**20, self.ps.num_fds()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.handle.close()
        return code


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        code, result = "OK", None
        try:
            result = call()
        except grpc.RpcError as exc:
            code = exc.code().name
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        elapsed = (time.perf_counter() - start) * 1000
        if isinstance(result, httpx.Response):
            code = "OK" if result.status_code < 400 else f"HTTP {result.status_code}"
        with self.lock:
            self.latencies[name].append(elapsed)
            self.codes[name][code] += 1
        return result if code == "OK" else None


@dataclass
class World:
    """What the load has made so far, for the steps that need it."""

    tokens: dict[str, str] = field(default_factory=dict)  # firm → QR token
    sessions: dict[str, str] = field(default_factory=dict)  # firm → firm_session cookie
    dispatched: list[str] = field(default_factory=list)  # order ids to visit
    open_tickets: list[tuple[str, str]] = field(default_factory=list)  # (firm, ticket)
    proofs: list[str] = field(default_factory=list)  # tickets to recheck
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, items: list[Any]) -> Any:
        with self.lock:
            return items.pop(0) if items else None

    def put(self, items: list[Any], item: Any) -> None:
        with self.lock:
            items.append(item)


class Soak:
    def __init__(self, kind: str, workdir: Path, duration: float) -> None:
        self.kind, self.dir, self.duration = kind, workdir, duration
        self.stats, self.world = Stats(), World()
        self.keys = {role: secrets.token_urlsafe(24) for role in ROLES}
        self.urls: dict[str, str] = {}
        self.stop = threading.Event()
        self._codes: dict[str, str] = {}  # masked phone → newest code in the booking log
        self._log_at = 0
        self._log_lock = threading.Lock()

    # -- setup

    def databases(self) -> None:
        for name in ("rules", "booking"):
            if self.kind == "sqlite":
                self.urls[name] = f"sqlite:///{self.dir / (name + '.db')}"
                continue
            db = f"soak_{name}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"'))
            admin.dispose()
            self.urls[name] = PG_ADMIN.rsplit("/", 1)[0] + "/" + db

    def drop(self) -> None:
        if self.kind == "sqlite":
            return
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for url in self.urls.values():
                name = url.rsplit("/", 1)[1]
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    def tokens_file(self) -> Path:
        """The services' tokens file, one token a role of ROLES (self.keys)."""
        tokens = self.dir / "tokens.json"
        entries = [{"token": self.keys[r], "caller": r, "scopes": s} for r, s in ROLES.items()]
        tokens.write_text(json.dumps({"tokens": entries}))
        return tokens

    def rules_args(self, grpc_at: str, db: str, tokens: Path) -> list[str]:
        """`python -m` arguments of the rules service under the soak (no rate limit)."""
        return [
            "services.rules",
            "--log-json",
            "serve",
            "--grpc",
            grpc_at,
            "--db",
            db,
            "--tokens",
            str(tokens),
            "--rate",
            "0",
        ]

    def booking_args(
        self, grpc_at: str, http_port: int, db: str, rules_at: str, tokens: Path
    ) -> list[str]:
        """`python -m` arguments of the booking service under the soak: its own QR key,
        the sweep every 20 s, no rate limit."""
        return [
            "services.booking",
            "--log-json",
            "serve",
            "--grpc",
            grpc_at,
            "--http",
            f"127.0.0.1:{http_port}",
            "--db",
            db,
            "--rules",
            rules_at,
            "--rules-token",
            self.keys["booking-service"],
            "--tokens",
            str(tokens),
            "--public-url",
            f"http://127.0.0.1:{http_port}",
            "--qr-keys",
            str(self.dir / "qr-keys.json"),
            "--new-qr-keys",
            "--sweep-interval",
            "20",
            "--rate",
            "0",
        ]

    def start(self) -> None:
        tokens = self.tokens_file()
        self.rules = Service(
            self.rules_args("127.0.0.1:0", self.urls["rules"], tokens),
            self.dir / "rules.log",
            "rules service listening",
        )
        self.http_port = free_port()
        rules_at = f"127.0.0.1:{self.rules.ready['port']}"
        self.booking = Service(
            self.booking_args(
                "127.0.0.1:0", self.http_port, self.urls["booking"], rules_at, tokens
            ),
            self.dir / "booking.log",
            "booking service listening",
        )
        self.rchan = grpc.insecure_channel(f"127.0.0.1:{self.rules.ready['port']}")
        self.bchan = grpc.insecure_channel(f"127.0.0.1:{self.booking.ready['grpc_port']}")
        self.rstub = rules_pb2_grpc.RulesServiceStub(self.rchan)
        self.bstub = booking_pb2_grpc.BookingServiceStub(self.bchan)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=30)

    def auth(self, role: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.keys[role]}"),)

    def seed(self) -> None:
        for n in range(1, FIRMS + 1):
            data = profile(n, name=f"浸泡企业{n}")
            request = rpb.UpsertEnterpriseRequest(profile=profile_from_json(data))
            self.rstub.UpsertEnterprise(request, metadata=self.auth("enforcement"), timeout=60)
            issued = self.bstub.IssueQrCode(
                bpb.IssueQrCodeRequest(enterprise_id=uscc(n)),
                metadata=self.auth("admin"),
                timeout=60,
            )
            self.world.tokens[uscc(n)] = issued.token
            self.bstub.SetSignInPhone(
                bpb.SetSignInPhoneRequest(enterprise_id=uscc(n), phone=mobile(n)),
                metadata=self.auth("admin"),
                timeout=60,
            )
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        slots = [f"{today + timedelta(days=d)} {h}" for d in range(1, 15) for h in ("AM", "PM")]
        for e in range(EXPERTS):
            expert = bpb.Expert(
                expert_id=f"E{e:03d}",
                name=f"专家{e}",
                phone="13900000000",
                domains=["fire_crowded"],
                regions=["稠城街道"],
                slots=slots,
                max_visits_per_day=2,
                active=True,
            )
            self.bstub.UpsertExpert(
                bpb.UpsertExpertRequest(expert=expert), metadata=self.auth("admin"), timeout=60
            )

    # -- the load

    def rules_step(self, rnd: random.Random) -> None:
        n = rnd.randint(1, FIRMS)
        facts = {"gen.no_hazard_ledger": rnd.random() < 0.3}
        auth = self.auth("enforcement")
        pick = rnd.random()
        if pick < 0.4:
            request = rpb.EvaluateRequest(profile=profile_from_json(profile(n, facts=facts)))
            self.stats.timed(
                "Evaluate", lambda: self.rstub.Evaluate(request, metadata=auth, timeout=30)
            )
        elif pick < 0.55:
            data = profile(n, name=f"浸泡企业{n}", facts=facts)
            request = rpb.UpsertEnterpriseRequest(profile=profile_from_json(data))
            self.stats.timed(
                "UpsertEnterprise",
                lambda: self.rstub.UpsertEnterprise(request, metadata=auth, timeout=30),
            )
        elif pick < 0.7:
            event = rpb.EnterpriseEvent(
                event_id=uuid.uuid4().hex,
                enterprise_id=uscc(n),
                kind=rpb.EVENT_KIND_COMPLAINT,
                occurred_on=datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat(),
                complaint=rpb.ComplaintDetail(text="群众投诉"),
            )
            request = rpb.ReportEventRequest(event=event)
            self.stats.timed(
                "ReportEvent", lambda: self.rstub.ReportEvent(request, metadata=auth, timeout=30)
            )
        elif pick < 0.85:
            day = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(
                days=rnd.randint(1, 300)
            )
            request = rpb.CheckInspectionRequest(
                enterprise_id=uscc(n),
                authority=f"执法主体{rnd.randint(1, 5)}",
                kind=rpb.INSPECTION_KIND_ROUTINE,
                planned_on=day.isoformat(),
            )
            self.stats.timed(
                "CheckInspection",
                lambda: self.rstub.CheckInspection(request, metadata=auth, timeout=30),
            )
        else:
            request = rpb.GetEnterpriseStatusRequest(enterprise_id=uscc(n), history_limit=5)
            self.stats.timed(
                "GetEnterpriseStatus",
                lambda: self.rstub.GetEnterpriseStatus(request, metadata=auth, timeout=30),
            )

    def booking_step(self, rnd: random.Random) -> None:
        admin = self.auth("admin")
        order_id = self.world.take(self.world.dispatched)
        if order_id and rnd.random() < 0.7:
            visit = ledger_visit(order_id, photo=rnd.random() < 0.5)
            done = self.stats.timed(
                "RecordVisit", lambda: self.bstub.RecordVisit(visit, metadata=admin, timeout=30)
            )
            if done is not None:
                for ticket in done.tickets:
                    self.world.put(
                        self.world.open_tickets, (ticket.enterprise_id, ticket.ticket_id)
                    )
            return
        if order_id:
            self.world.put(self.world.dispatched, order_id)
        ticket_id = self.world.take(self.world.proofs)
        if ticket_id:
            request = bpb.RecheckTicketRequest(ticket_id=ticket_id, passed=True, note="复查通过")
            self.stats.timed(
                "RecheckTicket",
                lambda: self.bstub.RecheckTicket(request, metadata=admin, timeout=30),
            )
            return
        request = bpb.ListTicketsRequest(enterprise_id=uscc(rnd.randint(1, FIRMS)))
        self.stats.timed(
            "ListTickets", lambda: self.bstub.ListTickets(request, metadata=admin, timeout=30)
        )

    def _console_code(self, masked: str) -> str:
        """The newest sign-in code the booking service's console SMS backend logged for
        this (masked) number; reads the log from where it stopped last time."""
        with self._log_lock:
            with self.booking.log.open("rb") as fh:
                fh.seek(self._log_at)
                chunk = fh.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._log_at += len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                if line.startswith("{") and '"sms (console backend' in line:
                    entry = json.loads(line)
                    self._codes[entry["phone"]] = re.sub(r"\D", "", entry["text"])[:6]
            return self._codes.pop(masked, "")

    def sign_in(self, firm: str) -> str:
        """The firm's person signs in on the phone page, the code read from the booking
        log (the console SMS backend); each firm from its own loopback address, as each
        owner has their own phone. The session cookie, or "" when sign-in failed."""
        if firm in self.world.sessions:
            return self.world.sessions[firm]
        token = self.world.tokens[firm]
        n = list(self.world.tokens).index(firm) + 1  # seeded in order: uscc(n)
        transport = httpx.HTTPTransport(local_address=f"127.0.{n // 200 + 1}.{n % 200 + 2}")
        base = f"http://127.0.0.1:{self.http_port}"
        with httpx.Client(base_url=base, transport=transport, timeout=30) as own:
            asked = self.stats.timed(
                "web: sign-in code",
                lambda: own.post(f"/q/{token}/sign-in", data={"phone": mobile(n)}),
            )
            code = ""
            for _ in range(50):  # the log line is written before the answer; be patient
                code = self._console_code(mobile(n)[:3] + "****" + mobile(n)[-4:])
                if code or asked is None:
                    break
                time.sleep(0.1)
            if not code:
                return ""
            self.stats.timed(
                "web: sign-in",
                lambda: own.post(
                    f"/q/{token}/sign-in/code",
                    data={"phone": mobile(n), "code": code},
                    follow_redirects=False,
                ),
            )
            cookie = own.cookies.get("firm_session") or ""
        if cookie:
            self.world.sessions[firm] = cookie
        return cookie

    def post_proof(self, token: str, ticket_id: str, cookie: str) -> httpx.Response:
        """The signed-in firm's proof of a fix (a note and a photo) through the phone page."""
        return self.http.post(
            f"/q/{token}/tickets/{ticket_id}",
            data={"note": "已整改"},
            files={"photo": ("fix.png", PNG, "image/png")},
            headers={"Cookie": f"firm_session={cookie}"},
            follow_redirects=False,
        )

    def phone_step(self, rnd: random.Random) -> None:
        """The phone page at the pace its per-address limits allow (one post a second);
        proof of a fix is uploaded by the signed-in firm, as on a real phone."""
        ticket = self.world.take(self.world.open_tickets)
        if ticket:
            firm, ticket_id = ticket
            token = self.world.tokens[firm]
            cookie = self.sign_in(firm)
            posted = self.stats.timed(
                "web: proof upload", lambda: self.post_proof(token, ticket_id, cookie)
            )
            if posted is not None and not posted.headers.get("location", "").endswith(
                f"/tickets/{ticket_id}"
            ):
                posted = None  # sent to sign in, or refused: no proof to recheck
            if posted is not None:
                self.world.put(self.world.proofs, ticket_id)
            return
        firm = uscc(rnd.randint(1, FIRMS))
        token = self.world.tokens[firm]
        form = self.stats.timed("web: order form", lambda: self.http.get(f"/q/{token}/order"))
        key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text) if form else None
        if not key:
            return
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        days = sorted(rnd.sample(range(1, 15), 2))
        data = {
            "item_codes": ["fire_safety"],
            "preferred_slots": [f"{today + timedelta(days=d)} AM" for d in days],
            "contact_name": "王经理",
            "contact_phone": "13812345678",
            "note": "",
            "idempotency_key": key.group(1),
        }
        posted = self.stats.timed(
            "web: order", lambda: self.http.post(f"/q/{token}/order", data=data)
        )
        if posted is not None and posted.status_code == 303:
            order_id = posted.headers["location"].rsplit("/", 1)[1]
            placed = self.bstub.GetOrder(
                bpb.GetOrderRequest(order_id=order_id), metadata=self.auth("admin"), timeout=30
            )
            if placed.status == bpb.ORDER_STATUS_DISPATCHED:
                self.world.put(self.world.dispatched, order_id)

    def worker(self, step: Callable[[random.Random], None], seed: int, pause: float) -> None:
        rnd = random.Random(seed)
        while not self.stop.is_set():
            step(rnd)
            if pause:
                self.stop.wait(pause)

    def run(self) -> dict[str, Any]:
        self.databases()
        try:
            self.start()
            try:
                return self._load()
            finally:
                self.stop_services()
                self.http.close()
                self.rchan.close()
                self.bchan.close()
        finally:
            self.drop()

    def stop_services(self) -> None:
        """SIGTERM both services, saying so when one did not exit 0."""
        codes = (self.booking.stop(), self.rules.stop())
        if codes != (0, 0):
            print(f"{self.kind}: exit codes {codes}", file=sys.stderr)

    def _load(self) -> dict[str, Any]:
        self.seed()
        procs = {"rules": self.rules, "booking": self.booking}
        threads = [
            threading.Thread(target=self.worker, args=(self.rules_step, 1, 0.0), daemon=True),
            threading.Thread(target=self.worker, args=(self.rules_step, 2, 0.0), daemon=True),
            threading.Thread(target=self.worker, args=(self.booking_step, 3, 0.05), daemon=True),
            threading.Thread(target=self.worker, args=(self.phone_step, 4, 1.2), daemon=True),
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        warm = min(60.0, self.duration / 5)
        time.sleep(warm)
        after_warmup = {name: p.sample() for name, p in procs.items()}
        calls_at_warmup = self._calls()
        time.sleep(max(0.0, self.duration - warm))
        ended = {name: p.sample() for name, p in procs.items()}
        self.stop.set()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.monotonic() - started
        audits = {name: self._audit(name) for name in ("rules", "booking")}
        return {
            "kind": self.kind,
            "seconds": elapsed,
            "measured_seconds": elapsed - warm,
            "calls_after_warmup": self._calls() - calls_at_warmup,
            "latencies": dict(self.stats.latencies),
            "codes": {k: dict(v) for k, v in self.stats.codes.items()},
            "warm": after_warmup,
            "end": ended,
            "db_bytes": {name: self._size(name) for name in ("rules", "booking")},
            "audit": audits,
        }

    def _calls(self) -> int:
        with self.stats.lock:
            return sum(len(v) for v in self.stats.latencies.values())

    def _audit(self, service: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                f"services.{service}",
                "audit",
                "verify",
                "--db",
                self.urls[service],
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:]

    def _size(self, service: str) -> int:
        url = self.urls[service]
        if self.kind == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        engine = create_engine(url)
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        engine.dispose()
        return int(size)


# ---------------------------------------------------------------- the report


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def verdict(result: dict[str, Any]) -> list[str]:
    """What is not flat (empty: flat)."""
    problems = []
    for name in ("rules", "booking"):
        (rss0, fd0), (rss1, fd1) = result["warm"][name], result["end"][name]
        if rss1 - rss0 >= RSS_GROWTH_MB:
            problems.append(f"{name}: RSS grew {rss1 - rss0:.1f} MB after warm-up")
        if abs(fd1 - fd0) > FD_SLACK:
            problems.append(f"{name}: open descriptors {fd0} → {fd1}")
        if "intact" not in result["audit"][name]:
            problems.append(f"{name}: audit {result['audit'][name]}")
    for call, codes in result["codes"].items():
        bad = {
            c: n for c, n in codes.items() if c in ("INTERNAL", "UNKNOWN") or c.startswith("HTTP 5")
        }
        if bad:
            problems.append(f"{call}: {bad}")
    return problems


def report(results: list[dict[str, Any]], duration: float) -> str:
    lines = [
        f"Soak: {duration / 60:.3g} min per database, warm-up excluded from the memory figures; "
        f"{platform.node()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
        f"{datetime.now(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M} Asia/Shanghai.",
        "",
    ]
    for r in results:
        problems = verdict(r)
        rate = r["calls_after_warmup"] / max(1.0, r["measured_seconds"])
        lines += [
            f"### {r['kind']}: {'flat' if not problems else 'NOT flat'}",
            "",
            f"{sum(len(v) for v in r['latencies'].values())} calls in {r['seconds']:.0f} s "
            f"({rate:.1f}/s after warm-up).",
            "",
            "| call | count | p50 ms | p99 ms | status codes |",
            "|---|---:|---:|---:|---|",
        ]
        for call in sorted(r["latencies"]):
            values = r["latencies"][call]
            codes = ", ".join(f"{c} {n}" for c, n in sorted(r["codes"][call].items()))
            lines.append(
                f"| {call} | {len(values)} | {statistics.median(values):.1f} | "
                f"{_pct(values, 0.99):.1f} | {codes} |"
            )
        lines += [
            "",
            "| process | RSS MB warm → end | open fds warm → end | database | audit |",
            "|---|---|---|---|---|",
        ]
        for name in ("rules", "booking"):
            (rss0, fd0), (rss1, fd1) = r["warm"][name], r["end"][name]
            lines.append(
                f"| {name} | {rss0:.1f} → {rss1:.1f} | {fd0} → {fd1} | "
                f"{r['db_bytes'][name] / 2**20:.1f} MB | {r['audit'][name]} |"
            )
        lines += [""] + [f"- {p}" for p in problems] + ([""] if problems else [])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--duration", type=parse_duration, default=600.0, help="per database")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--write", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    for kind in kinds:
        workdir = ROOT / "var" / f"soak-{kind}-{uuid.uuid4().hex[:6]}"
        workdir.mkdir(parents=True)
        print(f"soak on {kind} for {args.duration:.0f} s (logs in {workdir})", file=sys.stderr)
        results.append(Soak(kind, workdir, args.duration).run())
    text_ = report(results, args.duration)
    print(text_)
    if args.write:
        args.write.write_text(
            "# Reliability: the soak\n\n`make soak DURATION=10m` (see bench/soak.py; not part of "
            "`make test`).\n\n" + text_ + "\n",
            encoding="utf-8",
        )
    return 1 if any(verdict(r) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
