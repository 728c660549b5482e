"""Step 4 of the gate (docs/policy.md §6): a planned counted inspection joins the visit of
the nearest allowed counted inspection by another authority within ±14 days, each
inspection measured from its own day, a joined one too (review 51 D3: the window was
measured from the day the visit was opened), of a visit that then spans at most 28 days
(review 53 N2: joins chained without limit)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from services.rules.domain import gate

RULES = gate.GateRules(
    frozenset({"ROUTINE", "CAMPAIGN"}), per_authority_per_year=2, joint_window_days=14
)


def _run(
    requests: list[tuple[str, date]], cap: int, past: list[gate.PastInspection] | None = None
) -> list[gate.Verdict]:
    ids = (f"J{i}" for i in itertools.count(1))
    past = past if past is not None else []
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
            past.append(gate.PastInspection(authority, day, verdict.joint_id))
        out.append(verdict)
    return out


def test_the_reviewers_example_joins_a_joined_inspection() -> None:
    """A 03-01 opens J1, B 03-10 joins it; C 03-22 is 21 days after A but 12 after B's
    inspection: it joins J1 too, so the grade-2 firm (cap 2) has one visit, and D 05-01
    is allowed (it was refused for the cap)."""
    verdicts = _run(
        [
            ("A", date(2027, 3, 1)),
            ("B", date(2027, 3, 10)),
            ("C", date(2027, 3, 22)),
            ("D", date(2027, 5, 1)),
        ],
        cap=2,
    )
    assert [(v.reason_code, v.joint_id, v.yearly_count) for v in verdicts] == [
        ("allowed", "J1", 1),
        ("joint", "J1", 1),
        ("joint", "J1", 1),
        ("allowed", "J2", 2),
    ]
    assert verdicts[2].reason == "综合查一次：与B 2027-03-10 的检查合并为一次联合检查"


def test_a_chain_of_joins_ends_where_the_visit_would_span_more_than_28_days() -> None:
    """Review 53 N2: each authority within 14 days of the one before it joined the same
    visit without limit: 26 authorities on 26 days of a year were "one joint visit" of a
    firm capped at 1. A visit spans at most 28 days (one day then lies within ±14 days of
    each of its inspections): the third authority, 28 days after the first, joins; the
    fourth would stretch it to 42 days, opens a visit of its own, and with cap 1 is
    refused; so is every later one (no allowed inspection within 14 days)."""
    start = date(2027, 1, 4)
    plans = [(f"执法主体{i:02d}", start + timedelta(days=14 * i)) for i in range(26)]
    verdicts = _run(plans, cap=1)
    assert [v.reason_code for v in verdicts] == [
        "allowed",
        "joint",
        "joint",
        *["yearly_cap"] * 23,
    ]
    assert {v.joint_id for v in verdicts if v.allowed} == {"J1"}
    # with cap 2 the fourth opens the second visit, which the next two join
    two = _run(plans[:7], cap=2)
    assert [(v.reason_code, v.joint_id) for v in two] == [
        ("allowed", "J1"),
        ("joint", "J1"),
        ("joint", "J1"),
        ("allowed", "J2"),
        ("joint", "J2"),
        ("joint", "J2"),
        ("yearly_cap", ""),
    ]


def test_the_span_bound_is_28_days_from_the_first_to_the_last_planned_date() -> None:
    """A 03-01; B 03-15 joins (14 days); C 03-29 joins (28 days from A, 14 from B). D on
    02-28, 1 day before A, would make that visit span 29 days: a visit of its own."""
    verdicts = _run(
        [("A", date(2027, 3, 1)), ("B", date(2027, 3, 15)), ("C", date(2027, 3, 29))], cap=2
    )
    assert [(v.reason_code, v.joint_id) for v in verdicts] == [
        ("allowed", "J1"),
        ("joint", "J1"),
        ("joint", "J1"),
    ]
    # one day earlier than A, a joiner would make the visit span 29 days
    past = [
        gate.PastInspection("A", date(2027, 3, 1), "J1"),
        gate.PastInspection("B", date(2027, 3, 15), "J1"),
        gate.PastInspection("C", date(2027, 3, 29), "J1"),
    ]
    [before] = _run([("D", date(2027, 2, 28))], cap=2, past=list(past))
    assert (before.reason_code, before.yearly_count) == ("allowed", 2)


def test_a_nearer_inspection_in_a_visit_too_long_to_join_gives_way_to_another() -> None:
    """F on 03-30: the nearest inspection is C's (03-29) of J1, which already spans
    03-01..03-29 (joining would make it 29 days); E's J2 on 04-10 is 11 days away and
    qualifies: F joins J2."""
    past = [
        gate.PastInspection("A", date(2027, 3, 1), "J1"),
        gate.PastInspection("C", date(2027, 3, 29), "J1"),
        gate.PastInspection("E", date(2027, 4, 10), "J2"),
    ]
    for order in (past, past[::-1]):
        [verdict] = _run([("F", date(2027, 3, 30))], cap=4, past=list(order))
        assert (verdict.reason_code, verdict.joint_id) == ("joint", "J2")
        assert verdict.reason == "综合查一次：与E 2027-04-10 的检查合并为一次联合检查"


def test_the_window_edge_is_measured_from_each_inspection() -> None:
    verdicts = _run(
        [("A", date(2026, 3, 1)), ("B", date(2026, 3, 15)), ("C", date(2026, 3, 30))], cap=4
    )
    assert [v.reason_code for v in verdicts] == ["allowed", "joint", "allowed"]  # 15 days


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


def test_the_nearest_inspection_wins_and_a_tie_goes_to_the_earlier_one() -> None:
    """Two visits, A's J1 on 03-01 and B's J2 on 03-21: F on 03-11, 10 days from each,
    joins the earlier (J1). With B's J2 on 03-20, C on 03-12 (11 days from A, 8 from B)
    joins the nearer (J2)."""
    past = [
        gate.PastInspection("A", date(2027, 3, 1), "J1"),
        gate.PastInspection("B", date(2027, 3, 21), "J2"),
    ]
    [tie] = _run([("F", date(2027, 3, 11))], cap=4, past=list(past))
    assert (tie.reason_code, tie.joint_id) == ("joint", "J1")
    later = [gate.PastInspection("B", date(2027, 3, 20), "J2"), past[0]]
    [nearer] = _run([("C", date(2027, 3, 12))], cap=4, past=later)
    assert (nearer.reason_code, nearer.joint_id) == ("joint", "J2")


def test_a_tie_on_the_same_day_goes_to_the_visit_whose_id_sorts_first() -> None:
    """A opened two visits on 03-10 (J7, then J9): B on 03-12 joins J7 whatever the order
    the inspections are read in."""
    one = gate.PastInspection("A", date(2027, 3, 10), "J7")
    two = gate.PastInspection("A", date(2027, 3, 10), "J9")
    for past in ([one, two], [two, one]):
        [verdict] = _run([("B", date(2027, 3, 12))], cap=4, past=list(past))
        assert (verdict.reason_code, verdict.joint_id) == ("joint", "J7")


def test_refusals_name_the_planned_year() -> None:
    """Review 51 C4: a 2027 plan refused said "今年"/"本年度" (the server's year then)."""
    past = [
        gate.PastInspection("B", date(2027, 3, 1), "J1"),
        gate.PastInspection("B", date(2027, 6, 1), "J2"),
    ]
    [by_b] = _run([("B", date(2027, 9, 1))], cap=4, past=list(past))
    assert by_b.reason_code == "authority_cap"
    assert by_b.reason == "同一执法主体每年对同一企业现场检查不超过2次，B 2027年已检查2次"
    [capped] = _run([("C", date(2027, 9, 1))], cap=2, past=list(past))
    assert capped.reason_code == "yearly_cap"
    assert capped.reason == "该企业2027年现场检查已达上限2次"
