"""A full disk on SQLite (issue 13, point 12): the database may not grow (PRAGMA
max_page_count on every connection of the server's own engine; CI runs as root, so file
permissions would prove nothing). A change that needs room answers UNAVAILABLE or
FAILED_PRECONDITION, nothing of it is written (register, outbox, audit chain), the server
keeps serving reads, and once there is room again the same change goes through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, event, func, select

from services.booking.adapters import orm as booking_orm
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.audit import verify
from services.common.db import make_engine
from services.rules.adapters import migrate
from services.rules.adapters import orm as rules_orm
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.booking_env import Pair, ledger_visit
from tests.integration.booking.conftest import sqlite_pair  # noqa: F401  (fixture)
from tests.support import profile, uscc

REFUSED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}


class Disk:
    """The size the database may reach, in pages, on every connection of `engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.limit = 1 << 30  # roomy

        @event.listens_for(engine, "checkout")
        def cap(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count={self.limit}")

    def pages(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.exec_driver_sql("PRAGMA page_count").scalar_one())

    @contextmanager
    def full(self) -> Iterator[None]:
        self.limit = self.pages()
        self.engine.dispose()  # pooled connections pick up the cap at their next checkout
        try:
            yield
        finally:
            self.limit = 1 << 30


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _audit_intact(engine: Engine, orm: Any) -> int:
    with engine.connect() as connection:
        report = verify(connection, orm.audit_log, orm.audit_head)
    assert report.ok, report
    return report.entries


def test_rules_on_a_full_disk_refuses_writes_keeps_nothing_and_recovers(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}")
    migrate.upgrade(engine)
    disk = Disk(engine)
    server, port = grpc_server.create_server(rulebook, engine=engine)
    server.start()
    big = profile(
        2,
        penalties=[
            {"decided_on": "2025-01-01", "amount_yuan": 1.0, "basis": "处罚依据" * 400}
            for _ in range(40)
        ],
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            upsert = pb.UpsertEnterpriseRequest(profile=profile_from_json(profile(1)))
            stub.UpsertEnterprise(upsert, timeout=30)
            before = _audit_intact(engine, rules_orm)
            with disk.full():
                request = pb.UpsertEnterpriseRequest(profile=profile_from_json(big))
                assert _code(lambda: stub.UpsertEnterprise(request, timeout=30)) in REFUSED
                # reads go on while the disk is full
                status = stub.GetEnterpriseStatus(
                    pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=30
                )
                assert status.profile.enterprise_id == uscc(1)
            # nothing of the refused change was written
            with pytest.raises(grpc.RpcError) as info:
                stub.GetEnterpriseStatus(
                    pb.GetEnterpriseStatusRequest(enterprise_id=uscc(2)), timeout=30
                )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert _audit_intact(engine, rules_orm) == before
            with UnitOfWork(engine) as uow:
                assert (
                    uow.session.execute(
                        select(func.count()).select_from(rules_orm.decisions)
                    ).scalar_one()
                    == 1
                )
            # room again: the same change goes through
            stub.UpsertEnterprise(
                pb.UpsertEnterpriseRequest(profile=profile_from_json(big)), timeout=30
            )
            assert _audit_intact(engine, rules_orm) > before
    finally:
        server.stop(None)
        engine.dispose()


def test_booking_on_a_full_disk_records_no_half_visit_and_recovers(
    sqlite_pair: Pair,  # noqa: F811
) -> None:
    pair = sqlite_pair
    disk = Disk(pair.booking_engine)
    firm = pair.register_firm(7, industry="light_industry", high_risk_domains=["dust_explosion"])
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(pair.order_request(token, item="dust_explosion"), timeout=10)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2000  # half a megabyte of "photo"
    visit = ledger_visit(
        placed.order_id, "无台账", photos=[bpb.Photo(content=png, content_type="image/png")]
    )
    before = _audit_intact(pair.booking_engine, booking_orm)
    with disk.full():
        assert _code(lambda: pair.booking.RecordVisit(visit, timeout=30)) in REFUSED
        order = pair.booking.GetOrder(bpb.GetOrderRequest(order_id=placed.order_id), timeout=10)
        assert order.status == bpb.ORDER_STATUS_DISPATCHED  # not half visited
    tickets = pair.booking.ListTickets(bpb.ListTicketsRequest(enterprise_id=firm), timeout=10)
    assert list(tickets.tickets) == []
    with pair.booking_engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(booking_orm.outbox)).scalar_one()
            == 0
        )
        assert (
            connection.execute(select(func.count()).select_from(booking_orm.photos)).scalar_one()
            == 0
        )
    assert _audit_intact(pair.booking_engine, booking_orm) == before
    done = pair.booking.RecordVisit(visit, timeout=30)
    assert len(done.tickets) == 1
    assert _audit_intact(pair.booking_engine, booking_orm) > before
