"""Register fixtures: a real rules server on port 0 over a real database, SQLite and
PostgreSQL (127.0.0.1:5432, database `test`), with a pinned clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import Engine, create_engine, text

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import make_engine
from services.rules.adapters import migrate
from services.rules.adapters.orm import metadata
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json

PG_ADMIN_URL = os.environ.get("RULES_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class Clock:
    """The server's idea of today; tests move it to cross window edges."""

    today: date = date(2026, 6, 30)

    def __call__(self) -> date:
        return self.today


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"rules_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty register database of each kind."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}")
        migrate.upgrade(engine)
    else:
        engine = make_engine(request.getfixturevalue("pg_url"))
        migrate.upgrade(engine)
        with engine.begin() as conn:
            heads = ("audit_head", "feed_head")
            names = ", ".join(t.name for t in metadata.sorted_tables if t.name not in heads)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            conn.execute(text("UPDATE audit_head SET last_id = 0, last_hash = :g"), {"g": "0" * 64})
            conn.execute(
                text(
                    "UPDATE feed_head SET last_position = 0, pruned_through = 0, "
                    "publisher = NULL, bare_through = 0"  # as a new database's
                )
            )
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def register_stub(
    db_engine: Engine, rulebook: Rulebook, clock: Clock
) -> Iterator[rules_pb2_grpc.RulesServiceStub]:
    server, port = grpc_server.create_server(
        rulebook, engine=db_engine, today=clock, max_workers=16
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield rules_pb2_grpc.RulesServiceStub(channel)
    channel.close()
    server.stop(None)


def upsert(
    stub: rules_pb2_grpc.RulesServiceStub, data: dict, as_of: str = ""
) -> pb.EnterpriseStatus:  # type: ignore[type-arg]
    return stub.UpsertEnterprise(
        pb.UpsertEnterpriseRequest(profile=profile_from_json(data), as_of=as_of), timeout=30
    )


def decisions(status: pb.EnterpriseStatus) -> list[pb.HistoryItem]:
    """The history's decision items (it also lists white-list grants, revocations and
    events that caused no decision), newest first."""
    return [h for h in status.history if h.kind == "decision"]


def violations(error: grpc.RpcError) -> dict[str, str]:
    """The field violations of an INVALID_ARGUMENT answer (google.rpc.BadRequest in the
    status trailers), by field path."""
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    out = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad)
        out.update({v.field: v.description for v in bad.field_violations})
    return out
