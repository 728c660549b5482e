"""Two replicas of the rules service on one database: the racing scenarios of
test_register_concurrency.py with the racers spread over both servers, each with its
own connection pool, so only the database can keep the counts right."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.db import make_engine
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from tests.integration.conftest import Clock
from tests.integration.rules import test_register_concurrency as races


class RoundRobin:
    """A stub whose calls alternate between the replicas (thread-safe counter)."""

    def __init__(self, stubs: list[rules_pb2_grpc.RulesServiceStub]) -> None:
        self._stubs = stubs
        self._turn = itertools.count()

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            stub = self._stubs[next(self._turn) % len(self._stubs)]
            return getattr(stub, method)(*args, **kwargs)

        return call


@pytest.fixture
def replicas(db_engine: Engine, rulebook: Rulebook, clock: Clock) -> Iterator[RoundRobin]:
    clock.today = date(2026, 1, 2)  # as in the racing tests: every planned day still to come
    url = db_engine.url.render_as_string(hide_password=False)
    engines = [db_engine, make_engine(url)]
    servers, channels = [], []
    for engine in engines:
        server, port = grpc_server.create_server(
            rulebook, engine=engine, today=clock, max_workers=16
        )
        server.start()
        servers.append(server)
        channels.append(grpc.insecure_channel(f"127.0.0.1:{port}"))
    yield RoundRobin([rules_pb2_grpc.RulesServiceStub(c) for c in channels])
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(None)
    engines[1].dispose()


def test_last_slot_across_replicas(replicas: RoundRobin) -> None:
    races.test_racing_for_the_last_slot_allows_exactly_one(replicas)


def test_one_joint_visit_across_replicas(replicas: RoundRobin) -> None:
    races.test_racing_authorities_in_one_fortnight_end_in_one_joint_visit(replicas)


def test_authority_cap_across_replicas(replicas: RoundRobin) -> None:
    races.test_one_authority_racing_itself_stops_at_two(replicas)
