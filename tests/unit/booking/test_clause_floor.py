"""Review 52: a clause's own severity is the least a finding under it may have (a MAJOR
clause, 重大事故隐患, cannot be recorded as a GENERAL finding), pure and through the visit
use case (fake unit of work and rules service)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.findings import FindingInput, check_findings
from services.booking.service_layer import visits
from services.common.errors import ValidationError
from tests.unit.booking.fakes import FakeUnitOfWork
from tests.unit.booking.test_use_cases import dispatched, finding


def test_a_major_clause_cannot_be_recorded_as_a_general_finding(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    ctx.rules.clauses["GM2023:3(1)"] = ("重大事故隐患条款", "")
    ctx.rules.severities["GM2023:3(1)"] = "major"
    order = dispatched(uow, ctx, token)
    general = finding("general", clause_ref="GM2023:3(1)")
    with pytest.raises(ValidationError) as info:
        visits.record_visit(
            uow, ctx, order.id, [finding("general"), general], visited_on="", minutes=60,
            actor="E1",
        )  # fmt: skip
    assert [(v.field, v.description) for v in info.value.violations] == [
        ("findings[1].severity", messages.FINDING_BELOW_CLAUSE)
    ]
    assert not uow.register.events and not uow.register.tickets_by_id
    recorded = visits.record_visit(
        uow, ctx, order.id, [finding("major", clause_ref="GM2023:3(1)")], visited_on="",
        minutes=60, actor="E1",
    )  # fmt: skip
    assert recorded.tickets[0].severity == "major"


@pytest.mark.parametrize(
    ("clause", "recorded", "taken"),
    [
        ("major", "general", False),
        ("major", "major", True),
        ("general", "major", True),  # an expert may rate a finding above its clause
        ("general", "general", True),
    ],
)
def test_a_clause_s_severity_is_a_floor(clause: str, recorded: str, taken: bool) -> None:
    found = [FindingInput("GM2023:3(1)", recorded, "描述")]
    try:
        check_findings(found, date(2026, 6, 1), lambda ref: clause)
    except ValidationError as exc:
        assert not taken and exc.violations[0].field == "findings[0].severity"
    else:
        assert taken
