"""Fixtures: the real rulesets, the real durable_rules engine, a real gRPC server on port 0."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import structlog

from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.adapters.ruleset_loader import Rulebook, load_rulebook
from services.rules.entrypoints import grpc_server
from services.rules.service_layer.handlers import RulesContext
from tests.support import RULESETS


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs an entry point configures structlog to print to the sys.stderr
    of that moment, pytest's capture of that test, closed when it ends: put structlog's
    configuration back after each test, or a later test's log lines (and the call that
    logs them) fail on the closed file."""
    before = structlog.get_config()
    yield
    structlog.configure(**before)


@pytest.fixture(scope="session")
def rulebook() -> Rulebook:
    return load_rulebook(RULESETS)


@pytest.fixture(scope="session")
def rules_ctx(rulebook: Rulebook) -> RulesContext:
    return grpc_server.context_from(rulebook)


@pytest.fixture(scope="session")
def rules_address(rulebook: Rulebook) -> Iterator[str]:
    server, port = grpc_server.create_server(rulebook, address="127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture(scope="session")
def rules_channel(rules_address: str) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(rules_address)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def rules_stub(rules_channel: grpc.Channel) -> rules_pb2_grpc.RulesServiceStub:
    return rules_pb2_grpc.RulesServiceStub(rules_channel)
