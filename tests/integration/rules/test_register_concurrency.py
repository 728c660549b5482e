"""Counting under concurrency: many CheckInspection calls at once, on SQLite and PostgreSQL.

The gate's counting is serialised by the database (SQLite's BEGIN IMMEDIATE, PostgreSQL's
SELECT … FOR UPDATE on the firm), so no interleaving can over-allow or split a joint visit.
The clock stands at 2026-01-02, so every planned day of the year is still to come.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from tests.integration.conftest import upsert
from tests.support import profile, uscc

RACERS = 12


@pytest.fixture(autouse=True)
def _early_in_the_year(clock) -> None:  # type: ignore[no-untyped-def]
    clock.today = date(2026, 1, 2)


def _check(stub, n: int, authority: str, day: date, kind: int = pb.INSPECTION_KIND_ROUTINE):  # type: ignore[no-untyped-def]
    return stub.CheckInspection(
        pb.CheckInspectionRequest(
            enterprise_id=uscc(n), authority=authority, kind=kind, planned_on=day.isoformat()
        ),
        timeout=60,
    )


def test_racing_for_the_last_slot_allows_exactly_one(register_stub) -> None:  # type: ignore[no-untyped-def]
    upsert(register_stub, profile(1, specialized_sme=False, standardization_grade=1))  # cap 1
    days = [date(2026, 1, 5) + timedelta(days=20 * i) for i in range(RACERS)]  # never joint
    with ThreadPoolExecutor(RACERS) as pool:
        verdicts = list(
            pool.map(lambda i: _check(register_stub, 1, f"执法主体{i}", days[i]), range(RACERS))
        )
    allowed = [v for v in verdicts if v.allowed]
    assert len(allowed) == 1
    assert {v.reason_code for v in verdicts if not v.allowed} == {"yearly_cap"}


def test_racing_authorities_in_one_fortnight_end_in_one_joint_visit(register_stub) -> None:  # type: ignore[no-untyped-def]
    upsert(register_stub, profile(2, specialized_sme=False, standardization_grade=3))  # cap 4
    day = date(2026, 3, 10)
    with ThreadPoolExecutor(RACERS) as pool:
        verdicts = list(
            pool.map(
                lambda i: _check(register_stub, 2, f"执法主体{i}", day + timedelta(days=i % 5)),
                range(RACERS),
            )
        )
    assert all(v.allowed for v in verdicts)
    assert len({v.joint_id for v in verdicts}) == 1
    assert sum(not v.joint for v in verdicts) == 1  # one visit opened it, the rest joined
    later = _check(register_stub, 2, "另一执法主体", date(2026, 9, 1))
    assert later.allowed and later.yearly_count == 2  # the joint visit counted once


def test_one_authority_racing_itself_stops_at_two(register_stub) -> None:  # type: ignore[no-untyped-def]
    upsert(register_stub, profile(3, specialized_sme=False, standardization_grade=0))  # cap 6
    days = [date(2026, 1, 5) + timedelta(days=20 * i) for i in range(RACERS)]
    with ThreadPoolExecutor(RACERS) as pool:
        verdicts = list(
            pool.map(lambda i: _check(register_stub, 3, "义乌市应急管理局", days[i]), range(RACERS))
        )
    assert sum(v.allowed for v in verdicts) == 2
    assert {v.reason_code for v in verdicts if not v.allowed} == {"authority_cap"}
