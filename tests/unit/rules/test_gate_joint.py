"""The joint window is anchored on the visit's own day (review finding: joins chained)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from services.rules.domain import gate

RULES = gate.GateRules(
    frozenset({"ROUTINE", "CAMPAIGN"}), per_authority_per_year=2, joint_window_days=14
)


def _run(requests: list[tuple[str, date]], cap: int) -> list[gate.Verdict]:
    ids = (f"J{i}" for i in itertools.count(1))
    past: list[gate.PastInspection] = []
    out = []
    for authority, day in requests:
        verdict = gate.check(
            authority=authority,
            kind=gate.InspectionKind.ROUTINE,
            planned_on=day,
            whitelisted=False,
            yearly_cap=cap,
            past=past,
            rules=RULES,
            new_joint_id=lambda: next(ids),
        )
        if verdict.allowed:
            past.append(gate.PastInspection(authority, day, verdict.joint_id, verdict.joint))
        out.append(verdict)
    return out


def test_joins_do_not_chain_past_the_window_of_the_opening_visit() -> None:
    start = date(2026, 1, 5)
    verdicts = _run([(f"主体{i}", start + timedelta(days=14 * i)) for i in range(20)], cap=1)
    assert [v.reason_code for v in verdicts[:3]] == ["allowed", "joint", "yearly_cap"]
    assert sum(v.allowed for v in verdicts) == 2  # one visit, one authority joining it


def test_an_authority_already_in_a_visit_does_not_join_it_again() -> None:
    verdicts = _run(
        [("A", date(2026, 3, 1)), ("B", date(2026, 3, 10)), ("B", date(2026, 3, 12))], cap=2
    )
    assert [(v.reason_code, v.joint_id) for v in verdicts] == [
        ("allowed", "J1"),
        ("joint", "J1"),
        ("allowed", "J2"),
    ]
    assert verdicts[-1].yearly_count == 2


def test_the_window_edge_is_measured_from_the_opening_day() -> None:
    verdicts = _run(
        [("A", date(2026, 3, 1)), ("B", date(2026, 3, 15)), ("C", date(2026, 3, 16))], cap=4
    )
    assert [v.reason_code for v in verdicts] == ["allowed", "joint", "allowed"]
