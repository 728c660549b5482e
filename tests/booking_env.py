"""A running pair: the rules service and the booking service on real ports, real databases.

Used by tests/integration/booking and tests/e2e. The clock is pinned (Clock) so that
deadlines and the 14-day booking window are reproducible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import Engine, create_engine, func, select, text

from services.booking.adapters import migrate as booking_migrate
from services.booking.adapters.menu import load_menu
from services.booking.adapters.rules_client import RulesClient
from services.booking.adapters.sms import MemorySms
from services.booking.domain.qr import Keyring
from services.booking.entrypoints import grpc_server as booking_grpc
from services.booking.service_layer.ports import BookingContext
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import make_engine
from services.common.regions import load_regions
from services.rules.adapters import migrate as rules_migrate
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server as rules_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.support import RULESETS, profile

TEST_KEYS = Keyring({"k1": b"k" * 32, "k2": b"q" * 32}, active="k2")


def ledger_visit(
    order_id: str, *descriptions: str, visited_on: str = "", **finding: Any
) -> bpb.RecordVisitRequest:
    """An expert's visit record: one general finding (`GEN:ledger`, no ledger of hidden
    hazards) per description, each with `finding`'s further fields (due_on, photos)."""
    return bpb.RecordVisitRequest(
        order_id=order_id,
        visited_on=visited_on,
        findings=[
            bpb.FindingInput(
                clause_ref="GEN:ledger",
                severity=bpb.SEVERITY_GENERAL,
                description=text,
                **finding,
            )
            for text in descriptions
        ],
    )


def count_rows(engine: Engine, table: object, **where: str) -> int:
    """How many rows of `table` have each column of `where` equal to its value."""
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for name, value in where.items():
        query = query.where(table.c[name] == value)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def ledger_visit_form(csrf: str, description: str = "台账缺失", **fields: str) -> dict[str, str]:
    """The staff visit form (POST /staff/orders/<id>/visit) as `ledger_visit` over gRPC:
    one general finding `GEN:ledger` described `description`, 60 minutes on site, the
    CSRF token `csrf`; `fields` add or replace fields (idempotency_key, on_site_mobile,
    contact_confirmed, minutes_on_site …)."""
    return {
        "csrf": csrf,
        "minutes_on_site": "60",
        "ref_0": "GEN:ledger",
        "severity_0": "general",
        "desc_0": description,
        **fields,
    }


@dataclass
class Clock:
    today: date = date(2026, 6, 1)

    def __call__(self) -> date:
        return self.today


@dataclass
class Pair:
    """Both services running; stubs for each; the booking context and database."""

    clock: Clock
    rules_port: int
    booking_port: int
    rules_engine: Engine
    booking_engine: Engine
    ctx: BookingContext
    rules: rules_pb2_grpc.RulesServiceStub
    booking: booking_pb2_grpc.BookingServiceStub
    rules_server: grpc.Server
    closers: list[Any] = field(default_factory=list)

    def register_firm(self, n: int, **fields: Any) -> str:
        data = profile(n, **fields)
        self.rules.UpsertEnterprise(
            rpb.UpsertEnterpriseRequest(
                profile=profile_from_json(data), as_of=self.clock.today.isoformat()
            ),
            timeout=10,
        )
        return str(data["enterprise_id"])

    def issue(self, enterprise_id: str) -> bpb.IssueQrCodeResponse:
        return self.booking.IssueQrCode(
            bpb.IssueQrCodeRequest(enterprise_id=enterprise_id), timeout=10
        )

    def slot(self, days: int, half: str = "AM") -> str:
        return f"{(self.clock.today + timedelta(days=days)).isoformat()} {half}"

    def expert(
        self,
        expert_id: str,
        domains: list[str],
        regions: list[str],
        days: range = range(1, 15),
        **extra: Any,
    ) -> bpb.Expert:
        slots = [self.slot(d, h) for d in days for h in ("AM", "PM")]
        return self.booking.UpsertExpert(
            bpb.UpsertExpertRequest(
                expert=bpb.Expert(
                    expert_id=expert_id,
                    name=f"专家{expert_id}",
                    phone="13800000000",
                    domains=domains,
                    regions=regions,
                    slots=slots,
                    max_visits_per_day=extra.get("max_visits_per_day", 2),
                    active=extra.get("active", True),
                    conflicts=extra.get("conflicts", []),
                )
            ),
            timeout=10,
        )

    def order_request(
        self,
        token: str,
        item: str = "fire_safety",
        days: tuple[int, int] = (1, 2),
        key: str = "k",
        phone: str = "13812345678",
    ) -> bpb.CreateOrderRequest:
        """A valid order form: one item, two half-days `days` ahead (AM)."""
        return bpb.CreateOrderRequest(
            qr_token=token,
            item_codes=[item],
            preferred_slots=[self.slot(d) for d in days],
            contact_name="联系人",
            contact_phone=phone,
            idempotency_key=key,
        )

    @property
    def sms(self) -> MemorySms:
        """The in-memory SMS backend: every sign-in code the service sent."""
        assert isinstance(self.ctx.sms, MemorySms)
        return self.ctx.sms

    def sign_in(
        self, enterprise_id: str, token: str, phone: str = "13912345678"
    ) -> tuple[tuple[str, str], ...]:
        """Set the firm's sign-in mobile (booking.admin), sign in with the code it got:
        the metadata of the firm's private calls."""
        self.booking.SetSignInPhone(
            bpb.SetSignInPhoneRequest(enterprise_id=enterprise_id, phone=phone), timeout=10
        )
        self.booking.RequestSignInCode(
            bpb.RequestSignInCodeRequest(qr_token=token, phone=phone), timeout=10
        )
        done = self.booking.SignIn(
            bpb.SignInRequest(qr_token=token, phone=phone, code=self.sms.last_code(phone)),
            timeout=10,
        )
        return (("firm-session", done.session_token),)

    def rules_status(self, enterprise_id: str) -> rpb.EnterpriseStatus:
        return self.rules.GetEnterpriseStatus(
            rpb.GetEnterpriseStatusRequest(enterprise_id=enterprise_id), timeout=10
        )


def fresh_engine(kind: str, tmp: Path, name: str, pg_admin_url: str) -> Engine:
    if kind == "sqlite":
        return make_engine(f"sqlite:///{tmp / (name + '.db')}")
    db = f"{name}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return make_engine(pg_admin_url.rsplit("/", 1)[0] + "/" + db)


def drop_pg(engine: Engine, pg_admin_url: str) -> None:
    name = engine.url.database
    engine.dispose()
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def scratch_engine(kind: str, tmp: Path, name: str, pg_admin_url: str) -> Iterator[Engine]:
    """fresh_engine for the block; then disposed (SQLite) or its database dropped."""
    made = fresh_engine(kind, tmp, name, pg_admin_url)
    try:
        yield made
    finally:
        if kind == "sqlite":
            made.dispose()
        else:
            drop_pg(made, pg_admin_url)


@contextmanager
def running_pair(
    tmp: Path,
    kind: str = "sqlite",
    *,
    pg_admin_url: str = "",
    rules_port: int = 0,
    rules_security: Any = None,
    rules_token: str = "",
) -> Iterator[Pair]:
    """Start rules (always SQLite: it is not under test here) and booking (`kind`);
    `rules_security` (services.common.security.Security) makes rules check tokens, and
    booking then calls it with `rules_token` (the test's own stub sends none)."""
    clock = Clock()
    rules_engine = make_engine(f"sqlite:///{tmp / 'rules.db'}")
    rules_migrate.upgrade(rules_engine)
    booking_engine = fresh_engine(kind, tmp, "booking", pg_admin_url)
    booking_migrate.upgrade(booking_engine)
    rules_server, port = rules_grpc.create_server(
        load_rulebook(RULESETS),
        engine=rules_engine,
        address=f"127.0.0.1:{rules_port}",
        today=clock,
        **({"security": rules_security} if rules_security is not None else {}),
    )
    rules_server.start()
    client = RulesClient(f"127.0.0.1:{port}", token=rules_token, timeout=5)
    client.warm_clauses()
    ctx = BookingContext(
        keyring=TEST_KEYS,
        menu=load_menu(RULESETS / "menu.yaml"),
        rules=client,
        public_url="http://phone.test",
        hotline="0579-12345",
        today=clock,
        regions=load_regions(RULESETS / "regions.yaml"),
        sms=MemorySms(),
    )
    server, bport = booking_grpc.create_server(ctx, booking_engine, max_workers=16)
    server.start()
    rchan = grpc.insecure_channel(f"127.0.0.1:{port}")
    bchan = grpc.insecure_channel(f"127.0.0.1:{bport}")
    pair = Pair(
        clock,
        port,
        bport,
        rules_engine,
        booking_engine,
        ctx,
        rules_pb2_grpc.RulesServiceStub(rchan),
        booking_pb2_grpc.BookingServiceStub(bchan),
        rules_server,
    )
    try:
        yield pair
    finally:
        for closer in pair.closers:
            closer()
        rchan.close()
        bchan.close()
        server.stop(None)
        pair.rules_server.stop(None)
        client.close()
        rules_engine.dispose()
        if kind == "sqlite":
            booking_engine.dispose()
        else:
            drop_pg(booking_engine, pg_admin_url)
