"""CheckInspection and VerifyInspectionCode (docs/policy.md §4 and §6) on SQLite and
PostgreSQL: every step of the verdict order, with the dates at their edges."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import date, timedelta
from typing import Any

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from tests.integration.conftest import upsert, violations
from tests.support import profile, uscc

ROUTINE = pb.INSPECTION_KIND_ROUTINE
CAMPAIGN = pb.INSPECTION_KIND_CAMPAIGN
TRIGGERED = [
    pb.INSPECTION_KIND_COMPLAINT,
    pb.INSPECTION_KIND_REFERRAL,
    pb.INSPECTION_KIND_DATA_MONITORING,
    pb.INSPECTION_KIND_ACCIDENT,
    pb.INSPECTION_KIND_RECHECK,
    pb.INSPECTION_KIND_ENTERPRISE_REQUEST,
    pb.INSPECTION_KIND_LICENSING,
]
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


# ---------------------------------------------------------------- helpers


def check(
    stub: RulesServiceStub, n: int, authority: str, kind: Any, planned_on: str, grounds: str = ""
) -> pb.InspectionVerdict:
    return stub.CheckInspection(
        pb.CheckInspectionRequest(
            enterprise_id=uscc(n),
            authority=authority,
            kind=kind,
            planned_on=planned_on,
            grounds=grounds,
        ),
        timeout=30,
    )


def verify(stub: RulesServiceStub, code: str) -> pb.Inspection:
    return stub.VerifyInspectionCode(pb.VerifyInspectionCodeRequest(code=code), timeout=10)


def ordinary_firm(stub: RulesServiceStub, n: int = 1, **fields: Any) -> pb.EnterpriseStatus:
    """A clean firm that is not on the white list (not 专精特新)."""
    status = upsert(stub, profile(n, specialized_sme=False, **fields))
    assert status.decision.status != pb.STATUS_WHITELIST
    assert not status.HasField("whitelist_entry")
    return status


def whitelisted_firm(stub: RulesServiceStub, n: int = 1) -> pb.EnterpriseStatus:
    status = upsert(stub, profile(n))
    assert status.decision.status == pb.STATUS_WHITELIST
    assert (status.whitelist_entry.granted_on, status.whitelist_entry.valid_until) == (
        "2026-06-30",
        "2027-06-30",
    )
    return status


def assert_allowed(v: pb.InspectionVerdict, reason_code: str, count: int, cap: int) -> None:
    assert v.allowed, v
    assert v.reason_code == reason_code, v
    assert v.joint == (reason_code == "joint"), v
    assert v.joint_id, v
    assert v.inspection_code, v
    assert (v.yearly_count, v.yearly_cap) == (count, cap), v


def assert_denied(v: pb.InspectionVerdict, reason_code: str) -> None:
    assert not v.allowed, v
    assert v.reason_code == reason_code, v
    assert not v.joint, v
    assert v.joint_id == "", v
    assert v.inspection_code == "", v
    assert v.reason, v


def shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


# ---------------------------------------------------------------- the worked example


def test_policy_worked_example(register_stub: RulesServiceStub) -> None:
    status = ordinary_firm(register_stub)  # grade 2, ordinary: cap 2
    assert status.decision.inspection_cap_per_year == 2
    a = check(register_stub, 1, "A", ROUTINE, "2027-03-01")
    assert_allowed(a, "allowed", count=1, cap=2)
    j1 = a.joint_id
    b = check(register_stub, 1, "B", ROUTINE, "2027-03-10")
    assert_allowed(b, "joint", count=1, cap=2)
    assert b.joint_id == j1
    c = check(register_stub, 1, "C", ROUTINE, "2027-09-01")
    assert_allowed(c, "allowed", count=2, cap=2)
    j2 = c.joint_id
    assert j2 != j1
    d = check(register_stub, 1, "D", ROUTINE, "2027-10-01")
    assert_denied(d, "yearly_cap")
    assert (d.yearly_count, d.yearly_cap) == (2, 2)
    # names the cap and the planned year, not "本年度" (today is 2026-06-30; review 51 C4)
    assert d.reason == "该企业2027年现场检查已达上限2次"
    e = check(register_stub, 1, "B", pb.INSPECTION_KIND_COMPLAINT, "2027-10-02")
    assert_allowed(e, "triggered", count=2, cap=2)
    assert e.joint_id not in (j1, j2)
    codes = [x.inspection_code for x in (a, b, c, e)]
    assert len(set(codes)) == 4


def test_an_inspection_joins_a_joined_one_within_its_window(
    register_stub: RulesServiceStub,
) -> None:
    """Review 51 D3, policy.md §6 step 4: "another authority already has an allowed
    counted inspection of this firm within ±14 days of the planned date" joins its visit.
    C on 03-22 is 21 days after A opened J1 but 12 after B joined it: C joins J1 (it was
    a second visit), so the grade-2 firm's cap leaves room for D on 05-01 (it was
    refused)."""
    ordinary_firm(register_stub)  # grade 2, ordinary: cap 2
    a = check(register_stub, 1, "A", ROUTINE, "2027-03-01")
    assert_allowed(a, "allowed", count=1, cap=2)
    b = check(register_stub, 1, "B", ROUTINE, "2027-03-10")
    assert_allowed(b, "joint", count=1, cap=2)
    c = check(register_stub, 1, "C", ROUTINE, "2027-03-22")
    assert_allowed(c, "joint", count=1, cap=2)
    assert c.joint_id == a.joint_id
    assert c.reason == "综合查一次：与B 2027-03-10 的检查合并为一次联合检查"
    assert list(verify(register_stub, c.inspection_code).joint_authorities) == ["A", "B", "C"]
    d = check(register_stub, 1, "D", ROUTINE, "2027-05-01")
    assert_allowed(d, "allowed", count=2, cap=2)
    assert d.joint_id != a.joint_id


def test_a_visit_spans_at_most_28_days_however_its_joins_chain(
    register_stub: RulesServiceStub,
) -> None:
    """Review 53 N2: joins chained without limit, each authority 14 days after the one
    before it joining the same visit (26 on 26 days of a year counted once for a firm
    capped at 1). A grade-1 ordinary firm (cap 1): the second and third join (the visit
    then spans 28 days, one day within ±14 of each); the fourth would stretch it to 42,
    so it opens a visit of its own and is refused for the cap, as is every later one."""
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    verdicts = [
        check(register_stub, 1, f"执法主体{i:02d}", ROUTINE, shift("2027-01-04", 14 * i))
        for i in range(8)
    ]
    assert_allowed(verdicts[0], "allowed", count=1, cap=1)
    for joined in verdicts[1:3]:
        assert_allowed(joined, "joint", count=1, cap=1)
        assert joined.joint_id == verdicts[0].joint_id
    for refused in verdicts[3:]:
        assert_denied(refused, "yearly_cap")
    code = verdicts[0].inspection_code
    assert len(verify(register_stub, code).joint_authorities) == 3


# ---------------------------------------------------------------- step 1: triggered kinds


def test_triggered_kinds_go_ahead_for_a_white_listed_firm(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    verdicts = [check(register_stub, 1, "A", kind, "2026-08-03") for kind in TRIGGERED]
    for v in verdicts:
        assert_allowed(v, "triggered", count=0, cap=v.yearly_cap)
    assert len({v.joint_id for v in verdicts}) == 7  # each its own joint id
    assert len({v.inspection_code for v in verdicts}) == 7
    # never counted, and a routine one is still refused (无事不扰)
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2026-08-03"), "whitelist")


def test_triggered_kinds_go_ahead_for_a_firm_over_its_caps(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub)  # cap 2
    j1 = check(register_stub, 1, "A", ROUTINE, "2027-03-01").joint_id
    j2 = check(register_stub, 1, "A", CAMPAIGN, "2027-06-01").joint_id
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2027-09-01"), "authority_cap")
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2027-09-01"), "yearly_cap")
    seen = {j1, j2}
    for kind in TRIGGERED:
        for authority, day in (("A", "2027-03-01"), ("B", "2027-03-05")):
            v = check(register_stub, 1, authority, kind, day)
            assert_allowed(v, "triggered", count=2, cap=2)
            assert v.joint_id not in seen  # never joined, not even within ±14 days
            seen.add(v.joint_id)
    # never counted: the caps are where they were
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2027-09-01"), "yearly_cap")
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2027-11-01"), "authority_cap")


@pytest.mark.parametrize("kind", TRIGGERED, ids=lambda k: pb.InspectionKind.Name(k))
def test_a_triggered_inspection_is_never_counted_nor_joined(
    register_stub: RulesServiceStub, kind: int
) -> None:
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    t = check(register_stub, 1, "A", kind, "2027-03-01")
    assert_allowed(t, "triggered", count=0, cap=1)
    # a counted one by another authority right after neither joins it nor is refused
    r = check(register_stub, 1, "B", ROUTINE, "2027-03-02")
    assert_allowed(r, "allowed", count=1, cap=1)
    assert r.joint_id != t.joint_id


# ---------------------------------------------------------------- step 2: white list


@pytest.mark.parametrize("kind", [ROUTINE, CAMPAIGN], ids=["routine", "campaign"])
def test_white_listed_firm_is_denied_counted_inspections(
    register_stub: RulesServiceStub, kind: int
) -> None:
    whitelisted_firm(register_stub)
    first = check(register_stub, 1, "A", kind, "2026-06-30")  # the day it was granted
    assert_denied(first, "whitelist")
    assert "无事不扰" in first.reason
    assert first.yearly_count == 0
    last = check(register_stub, 1, "B", kind, "2027-06-30")  # valid_until, inclusive
    assert_denied(last, "whitelist")


def test_planned_after_valid_until_is_not_treated_as_white_listed(
    register_stub: RulesServiceStub,
) -> None:
    whitelisted_firm(register_stub)
    v = check(register_stub, 1, "A", ROUTINE, "2027-07-01")
    assert_allowed(v, "allowed", count=1, cap=2)
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2027-06-30"), "whitelist")


def test_planned_before_the_entry_was_granted_is_not_treated_as_white_listed(
    register_stub: RulesServiceStub,
) -> None:
    granted = upsert(register_stub, profile(1), as_of="2026-07-10")  # decided ahead
    assert granted.whitelist_entry.granted_on == "2026-07-10"
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2026-07-09"), "allowed", 1, 2)
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2026-07-10"), "whitelist")


def test_a_revoked_entry_no_longer_shields_the_firm(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2026-08-01"), "whitelist")
    revoked = register_stub.ReportEvent(
        pb.ReportEventRequest(
            event=pb.EnterpriseEvent(
                event_id="p-1",
                enterprise_id=uscc(1),
                kind=pb.EVENT_KIND_PENALTY,
                occurred_on="2026-06-30",
                penalty=pb.PenaltyDetail(amount_yuan=1000.0),
            )
        ),
        timeout=30,
    )
    assert not revoked.HasField("whitelist_entry")
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2026-08-01"), "allowed", 1, 2)


def test_white_list_comes_before_the_authority_and_yearly_caps(
    register_stub: RulesServiceStub, clock: Any
) -> None:
    ordinary_firm(register_stub)  # cap 2, not yet white-listed
    clock.today = date(2026, 1, 2)  # the two visits were asked for early in the year
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2026-02-01"), "allowed", 1, 2)
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2026-04-01"), "allowed", 2, 2)
    clock.today = date(2026, 6, 30)
    whitelisted_firm(register_stub)  # now 专精特新: white-listed from 2026-06-30
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2026-08-01"), "whitelist")
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2026-08-01"), "whitelist")


# ---------------------------------------------------------------- step 3: 2 a year per authority


def test_third_inspection_by_the_same_authority_is_denied(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, standardization_grade=3)  # cap 4
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2027-01-10"), "allowed", 1, 4)
    assert_allowed(check(register_stub, 1, "A", CAMPAIGN, "2027-04-01"), "allowed", 2, 4)
    third = check(register_stub, 1, "A", ROUTINE, "2027-08-01")
    assert_denied(third, "authority_cap")
    # names the cap and the planned year, not "今年" (today is 2026-06-30; review 51 C4)
    assert third.reason == "同一执法主体每年对同一企业现场检查不超过2次，A 2027年已检查2次"
    assert (third.yearly_count, third.yearly_cap) == (2, 4)
    # another authority still may, and A again next year
    assert_allowed(check(register_stub, 1, "B", ROUTINE, "2027-10-01"), "allowed", 3, 4)
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2028-01-10"), "allowed", 1, 4)


def test_a_joint_participation_counts_for_the_joining_authority(
    register_stub: RulesServiceStub,
) -> None:
    ordinary_firm(register_stub, standardization_grade=3)  # cap 4
    j1 = check(register_stub, 1, "A", ROUTINE, "2027-03-01").joint_id
    joined = check(register_stub, 1, "B", ROUTINE, "2027-03-10")
    assert_allowed(joined, "joint", count=1, cap=4)
    assert joined.joint_id == j1
    assert_allowed(check(register_stub, 1, "B", ROUTINE, "2027-06-01"), "allowed", 2, 4)
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2027-09-01"), "authority_cap")


def test_authority_cap_comes_before_a_joint(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, standardization_grade=3)  # cap 4
    check(register_stub, 1, "A", ROUTINE, "2027-02-01")
    check(register_stub, 1, "A", ROUTINE, "2027-04-01")
    assert_allowed(check(register_stub, 1, "B", ROUTINE, "2027-06-01"), "allowed", 3, 4)
    # A could join B's visit by date, but A's own 2 a year are used up
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2027-06-05"), "authority_cap")


# ---------------------------------------------------------------- step 4: joint inspections


@pytest.mark.parametrize(
    ("offset", "joins"),
    [(14, True), (-14, True), (15, False), (-15, False), (0, True)],
    ids=["+14", "-14", "+15", "-15", "same-day"],
)
def test_joint_window_is_14_days_either_side(
    register_stub: RulesServiceStub, offset: int, joins: bool
) -> None:
    ordinary_firm(register_stub, standardization_grade=3)  # cap 4
    first = check(register_stub, 1, "A", ROUTINE, "2027-05-01")
    second = check(register_stub, 1, "B", CAMPAIGN, shift("2027-05-01", offset))
    if joins:
        assert_allowed(second, "joint", count=1, cap=4)
        assert second.joint_id == first.joint_id
    else:
        assert_allowed(second, "allowed", count=2, cap=4)
        assert second.joint_id != first.joint_id


def test_the_same_authority_does_not_join_its_own_visit(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, standardization_grade=3)
    first = check(register_stub, 1, "A", ROUTINE, "2027-05-01")
    again = check(register_stub, 1, "A", ROUTINE, "2027-05-03")
    assert_allowed(again, "allowed", count=2, cap=4)
    assert again.joint_id != first.joint_id


@pytest.mark.parametrize(
    ("first_day", "second_day"),
    [("2026-12-31", "2027-01-02"), ("2027-01-02", "2026-12-31")],
    ids=["forward", "backward"],
)
def test_no_joint_across_a_calendar_year_boundary(
    register_stub: RulesServiceStub, first_day: str, second_day: str
) -> None:
    ordinary_firm(register_stub)  # cap 2
    first = check(register_stub, 1, "A", ROUTINE, first_day)
    assert_allowed(first, "allowed", count=1, cap=2)
    second = check(register_stub, 1, "B", ROUTINE, second_day)
    assert_allowed(second, "allowed", count=1, cap=2)  # first visit of its own year
    assert second.joint_id != first.joint_id


def test_a_joint_is_allowed_when_the_yearly_cap_is_used_up(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    first = check(register_stub, 1, "A", ROUTINE, "2027-03-01")
    assert_allowed(first, "allowed", count=1, cap=1)
    joined = check(register_stub, 1, "B", ROUTINE, "2027-03-15")
    assert_allowed(joined, "joint", count=1, cap=1)  # one visit: the count does not grow
    assert joined.joint_id == first.joint_id
    assert_denied(check(register_stub, 1, "C", ROUTINE, "2027-06-01"), "yearly_cap")


def test_a_denied_inspection_is_no_partner_for_a_joint(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    check(register_stub, 1, "A", ROUTINE, "2027-03-01")
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2027-06-01"), "yearly_cap")
    assert_denied(check(register_stub, 1, "C", ROUTINE, "2027-06-02"), "yearly_cap")


# ---------------------------------------------------------------- step 5: yearly caps


CAP_CASES = [
    ([], 1, 1),
    ([], 2, 2),
    ([], 3, 4),
    ([], 0, 6),
    (["hazardous_chemicals"], 1, 2),
    (["hazardous_chemicals"], 2, 4),
    (["hazardous_chemicals"], 3, 8),
    (["hazardous_chemicals"], 0, 12),
    (["metal_smelting"], 1, 2),
    (["metal_smelting"], 0, 12),
    (["dust_explosion"], 2, 2),  # a high-risk domain, but not one with the higher caps
    (["dust_explosion", "metal_smelting"], 3, 8),
]


@pytest.mark.parametrize(
    ("domains", "grade", "cap"),
    CAP_CASES,
    ids=[f"{'+'.join(d) or 'ordinary'}-grade{g}" for d, g, _ in CAP_CASES],
)
def test_yearly_cap_by_grade_and_domain(
    register_stub: RulesServiceStub, domains: list[str], grade: int, cap: int
) -> None:
    status = ordinary_firm(register_stub, standardization_grade=grade, high_risk_domains=domains)
    assert status.decision.inspection_cap_per_year == cap
    for i in range(cap):  # one visit a month, each by another authority: no joints
        v = check(register_stub, 1, f"执法主体{i}", ROUTINE, f"2027-{i + 1:02d}-01")
        assert_allowed(v, "allowed", count=i + 1, cap=cap)
    over = check(register_stub, 1, "最后一个执法主体", CAMPAIGN, "2027-12-20")
    assert_denied(over, "yearly_cap")
    assert (over.yearly_count, over.yearly_cap) == (cap, cap)
    assert str(cap) in over.reason


def test_caps_reset_with_the_calendar_year(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2026-12-01"), "allowed", 1, 1)
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2026-12-31"), "yearly_cap")
    assert_allowed(check(register_stub, 1, "B", ROUTINE, "2027-01-01"), "allowed", 1, 1)
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2027-02-15"), "yearly_cap")


def test_authority_cap_resets_with_the_calendar_year(
    register_stub: RulesServiceStub, clock: Any
) -> None:
    ordinary_firm(register_stub, standardization_grade=3)
    clock.today = date(2026, 1, 2)
    check(register_stub, 1, "A", ROUTINE, "2026-01-15")
    check(register_stub, 1, "A", ROUTINE, "2026-12-31")
    assert_denied(check(register_stub, 1, "A", ROUTINE, "2026-12-30"), "authority_cap")
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2027-01-01"), "allowed", 1, 4)


def test_caps_are_per_firm(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, 1, standardization_grade=1)
    ordinary_firm(register_stub, 2, standardization_grade=1)
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2027-03-01"), "allowed", 1, 1)
    assert_allowed(check(register_stub, 2, "B", ROUTINE, "2027-03-05"), "allowed", 1, 1)
    assert_denied(check(register_stub, 1, "C", ROUTINE, "2027-06-01"), "yearly_cap")


def test_concurrent_checks_never_exceed_the_cap(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub)  # cap 2
    barrier = threading.Barrier(8)
    results: list[Any] = [None] * 8

    def run(i: int) -> None:
        barrier.wait()
        try:  # eight authorities, a month apart: no joints, no authority cap
            results[i] = check(register_stub, 1, f"执法主体{i}", ROUTINE, f"2027-{i + 1:02d}-10")
        except Exception as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r.allowed for r in results) == 2
    assert {r.reason_code for r in results if not r.allowed} == {"yearly_cap"}
    assert_denied(check(register_stub, 1, "X", ROUTINE, "2027-12-25"), "yearly_cap")


# ---------------------------------------------------------------- inspection codes


def test_a_genuine_code_shows_who_inspects_when_and_why(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, 7)
    a = check(register_stub, 7, "义乌市应急管理局", ROUTINE, "2027-03-01", grounds="双随机抽查")
    b = check(
        register_stub, 7, "义乌市消防救援大队", CAMPAIGN, "2027-03-10", grounds="消防专项检查"
    )
    assert b.joint and b.joint_id == a.joint_id
    shown_a = verify(register_stub, a.inspection_code)
    assert shown_a.inspection_code == a.inspection_code
    assert shown_a.enterprise_id == uscc(7)
    assert shown_a.enterprise_name == "测试企业7"
    assert shown_a.authority == "义乌市应急管理局"
    assert shown_a.kind == ROUTINE
    assert shown_a.planned_on == "2027-03-01"
    assert shown_a.joint_id == a.joint_id
    assert shown_a.grounds == "双随机抽查"
    assert sorted(shown_a.joint_authorities) == sorted(["义乌市应急管理局", "义乌市消防救援大队"])
    shown_b = verify(register_stub, b.inspection_code)
    assert (shown_b.authority, shown_b.kind, shown_b.planned_on, shown_b.grounds) == (
        "义乌市消防救援大队",
        CAMPAIGN,
        "2027-03-10",
        "消防专项检查",
    )
    assert shown_b.joint_id == a.joint_id
    assert sorted(shown_b.joint_authorities) == sorted(shown_a.joint_authorities)


def test_a_code_of_a_single_or_triggered_inspection(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub, 3)
    t = check(
        register_stub,
        3,
        "义乌市市场监管局",
        pb.INSPECTION_KIND_COMPLAINT,
        "2026-07-02",
        grounds="投诉举报核查",
    )
    shown = verify(register_stub, t.inspection_code)
    assert (shown.authority, shown.kind, shown.planned_on, shown.grounds) == (
        "义乌市市场监管局",
        pb.INSPECTION_KIND_COMPLAINT,
        "2026-07-02",
        "投诉举报核查",
    )
    assert shown.joint_id == t.joint_id
    assert list(shown.joint_authorities) == ["义乌市市场监管局"]
    assert shown.enterprise_name == "测试企业3"


def _edited(code: str, index: int) -> str:
    replacement = "A" if code[index] != "A" else "B"
    return code[:index] + replacement + code[index + 1 :]


def test_anything_but_a_genuine_code_is_not_found(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub)
    code = check(register_stub, 1, "A", ROUTINE, "2027-03-01").inspection_code
    assert verify(register_stub, code).inspection_code == code
    bad = [
        secrets.token_urlsafe(24),
        code[: len(code) - 32] + secrets.token_urlsafe(24) if len(code) > 32 else "x" * 35,
        _edited(code, len(code) - 1),
        _edited(code, len(code) // 2),
        _edited(code, 0),
        code[:-1],
        code + "A",
        code.lower() if code.lower() != code else code.upper(),
        " " + code,
    ]
    for candidate in bad:
        assert candidate != code
        with pytest.raises(grpc.RpcError) as info:
            verify(register_stub, candidate)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, candidate
    with pytest.raises(grpc.RpcError) as info:  # no code at all (review 47b N4)
        verify(register_stub, "")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(info.value)) == ["code"]


def test_denied_verdicts_have_no_code(register_stub: RulesServiceStub) -> None:
    whitelisted_firm(register_stub)
    v = check(register_stub, 1, "A", ROUTINE, "2026-08-01")
    assert not v.allowed
    assert v.inspection_code == ""


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    return first[:i]


def test_codes_are_distinct_and_long(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, 1)
    ordinary_firm(register_stub, 2)
    codes = []
    for n in (1, 2):
        for i, kind in enumerate(TRIGGERED):
            codes.append(check(register_stub, n, "A", kind, f"2027-0{i + 1}-01").inspection_code)
        codes.append(check(register_stub, n, "A", ROUTINE, "2027-09-01").inspection_code)
    assert all(codes)
    assert len(set(codes)) == len(codes)
    common = _common_prefix(codes)
    for code in codes:
        varying = code[len(common) :]
        assert len(varying) >= 22, code
        assert URL_SAFE.match(varying), code
        assert URL_SAFE.match(code.replace("-", "")), code  # safe in /verify/<code>


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"authority": ""}, {"authority"}),
        ({"kind": pb.INSPECTION_KIND_UNSPECIFIED}, {"kind"}),
        ({"planned_on": "2027-02-30"}, {"planned_on"}),
        ({"planned_on": "2027/03/01"}, {"planned_on"}),
        ({"planned_on": ""}, {"planned_on"}),
        ({"enterprise_id": ""}, {"enterprise_id"}),
        (
            {"authority": "", "kind": pb.INSPECTION_KIND_UNSPECIFIED, "planned_on": "03-01"},
            {"authority", "kind", "planned_on"},
        ),
    ],
    ids=[
        "no-authority",
        "kind-unspecified",
        "not-a-date",
        "slashes",
        "no-date",
        "no-enterprise",
        "all-three",
    ],
)
def test_invalid_requests_name_the_field_and_record_nothing(
    register_stub: RulesServiceStub, changes: dict[str, Any], fields: set[str]
) -> None:
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    request = pb.CheckInspectionRequest(
        enterprise_id=uscc(1), authority="A", kind=ROUTINE, planned_on="2027-03-01"
    )
    for key, value in changes.items():
        setattr(request, key, value)
    with pytest.raises(grpc.RpcError) as info:
        register_stub.CheckInspection(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    named = violations(info.value)
    assert fields <= set(named), named
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2027-03-01"), "allowed", 1, 1)


def test_unknown_firm_is_not_found(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub, 1)
    for kind in (ROUTINE, pb.INSPECTION_KIND_COMPLAINT):
        with pytest.raises(grpc.RpcError) as info:
            check(register_stub, 2, "A", kind, "2027-03-01")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- past dates, safe retries


def _request(n: int = 1, planned_on: str = "2027-03-01", **fields: Any) -> Any:
    return pb.CheckInspectionRequest(
        enterprise_id=uscc(n), authority="A", kind=ROUTINE, planned_on=planned_on, **fields
    )


@pytest.mark.parametrize("kind", [ROUTINE, pb.INSPECTION_KIND_ACCIDENT])
def test_a_planned_on_in_the_past_is_invalid_and_records_nothing(
    register_stub: RulesServiceStub, kind: Any
) -> None:
    """CheckInspection gates visits still to come: a past date (the server's today is
    2026-06-30 in Asia/Shanghai) is refused, not counted against the cap."""
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    for day in ("2020-01-05", "2026-06-29"):
        with pytest.raises(grpc.RpcError) as info:
            check(register_stub, 1, "A", kind, day)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "in the past" in violations(info.value)["planned_on"]
    assert_allowed(check(register_stub, 1, "A", ROUTINE, "2026-06-30"), "allowed", 1, 1)  # today


def test_the_same_idempotency_key_again_returns_the_first_verdict(
    register_stub: RulesServiceStub,
) -> None:
    ordinary_firm(register_stub, standardization_grade=1)  # cap 1
    first = register_stub.CheckInspection(_request(idempotency_key="k-1"), timeout=10)
    assert_allowed(first, "allowed", 1, 1)
    assert not first.duplicate
    again = register_stub.CheckInspection(_request(idempotency_key="k-1"), timeout=10)
    assert again.duplicate
    again.duplicate = False
    assert again == first  # the same code, the same joint id, the same counts
    # the retry took no second slot: another authority's visit a month later is the cap
    assert_denied(check(register_stub, 1, "B", ROUTINE, "2027-05-01"), "yearly_cap")
    assert verify(register_stub, first.inspection_code).authority == "A"


def test_a_retry_after_the_planned_day_passed_still_returns_the_first_verdict(
    register_stub: RulesServiceStub, clock: Any
) -> None:
    ordinary_firm(register_stub)
    first = register_stub.CheckInspection(
        _request(planned_on="2026-07-01", idempotency_key="k-1"), timeout=10
    )
    clock.today = date(2026, 7, 2)
    again = register_stub.CheckInspection(
        _request(planned_on="2026-07-01", idempotency_key="k-1"), timeout=10
    )
    assert again.duplicate and again.inspection_code == first.inspection_code


@pytest.mark.parametrize(
    "changes",
    [
        {"planned_on": "2027-03-02"},
        {"authority": "B"},
        {"kind": CAMPAIGN},
        {"grounds": "另一个理由"},
        {"enterprise_id": uscc(2)},
    ],
    ids=["planned_on", "authority", "kind", "grounds", "firm"],
)
def test_the_same_idempotency_key_with_another_request_is_already_exists(
    register_stub: RulesServiceStub, changes: dict[str, Any]
) -> None:
    ordinary_firm(register_stub, 1, standardization_grade=1)
    ordinary_firm(register_stub, 2, standardization_grade=1)
    first = register_stub.CheckInspection(_request(idempotency_key="k-1"), timeout=10)
    other = _request(idempotency_key="k-1")
    for key, value in changes.items():
        setattr(other, key, value)
    with pytest.raises(grpc.RpcError) as info:
        register_stub.CheckInspection(other, timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "'k-1'" in (info.value.details() or "")
    assert first.allowed
    assert_allowed(check(register_stub, 2, "A", ROUTINE, "2027-03-01"), "allowed", 1, 1)


def test_concurrent_retries_with_one_key_record_one_inspection(
    register_stub: RulesServiceStub,
) -> None:
    ordinary_firm(register_stub)  # cap 2
    barrier = threading.Barrier(6)
    results: list[Any] = [None] * 6

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = register_stub.CheckInspection(_request(idempotency_key="k-1"), timeout=30)
        except Exception as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len({r.inspection_code for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 5
    assert_allowed(check(register_stub, 1, "B", ROUTINE, "2027-09-01"), "allowed", 2, 2)


def test_an_idempotency_key_is_at_most_128_characters(register_stub: RulesServiceStub) -> None:
    ordinary_firm(register_stub)
    with pytest.raises(grpc.RpcError) as info:
        register_stub.CheckInspection(_request(idempotency_key="k" * 129), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations(info.value)
