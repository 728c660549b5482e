"""The booking use-case tests' common fixtures: an in-memory unit of work, a context on
a clock the test moves, and the firm's QR token. A module may override one (test_sign_in
gives its context a rules fake that knows the firm)."""

from __future__ import annotations

from typing import Any

import pytest

from services.booking.service_layer import qr_codes
from tests.unit.booking.fakes import FIRM, Clock, FakeUnitOfWork, context


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def ctx() -> Any:
    return context(clock=Clock())


@pytest.fixture
def token(uow: FakeUnitOfWork, ctx: Any) -> str:
    return qr_codes.issue_qr_code(uow, ctx, FIRM).token
