"""How one decision moves a firm's open white-list entry (domain/reevaluation.move_entry),
the one rule the per-call handlers and the bulk re-evaluation both apply; in particular
that an entry never moves back in time (review hunt 3)."""

from __future__ import annotations

from datetime import date

from services.rules.domain.decision import Blocker, Decision, RiskLevel, Status
from services.rules.domain.reevaluation import OpenEntry, move_entry

FIRM = "91330782MA2000001K"
ENTRY = OpenEntry("W1", FIRM, "甲厂", "稠城街道", date(2026, 7, 10), date(2027, 7, 10), "D0")


def decision(status: Status, as_of: date) -> Decision:
    blockers = () if status is Status.WHITELIST else (Blocker("credit", "信用等级不足"),)
    return Decision(
        enterprise_id=FIRM,
        status=status,
        risk_level=RiskLevel.BLUE,
        findings=(),
        whitelist_blockers=blockers,
        inspection_cap_per_year=0,
        recommended_services=(),
        ruleset_version="rs-test",
        as_of=as_of,
        valid_until=as_of.replace(year=as_of.year + 1),
    )


def move(status: Status, as_of: date, entry: OpenEntry | None = ENTRY):  # type: ignore[no-untyped-def]
    return move_entry(decision(status, as_of), "D1", entry, "甲厂", "稠城街道", FIRM, lambda: "W2")


def test_a_later_white_list_decision_extends_the_entry() -> None:
    change, expired, moved, granted = move(Status.WHITELIST, date(2026, 12, 1))
    assert (change, expired, granted) == ("extended", None, None)
    assert moved is not None and moved.valid_until == date(2027, 12, 1)


def test_an_earlier_white_list_decision_never_shortens_the_entry() -> None:
    change, _, moved, _ = move(Status.WHITELIST, date(2026, 6, 30))
    assert change == "extended"
    assert moved is not None and moved.valid_until == ENTRY.valid_until


def test_a_revocation_closes_the_entry_on_the_decision_day() -> None:
    change, _, moved, _ = move(Status.ROUTINE, date(2026, 12, 1))
    assert change == "revoked"
    assert moved is not None and moved.revoked_on == date(2026, 12, 1)
    assert "信用等级不足" in moved.revoked_reason


def test_a_revocation_dated_before_the_grant_closes_it_on_its_grant_day() -> None:
    _, _, moved, _ = move(Status.PRIORITY, date(2026, 6, 30))  # granted ahead, on 07-10
    assert moved is not None and moved.revoked_on == ENTRY.granted_on


def test_an_entry_past_its_end_expires_and_a_new_one_is_granted() -> None:
    change, expired, moved, granted = move(Status.WHITELIST, date(2027, 7, 11))
    assert (change, moved) == ("granted", None)
    assert expired is not None and expired.revoked_on == ENTRY.valid_until
    assert granted is not None and (granted.id, granted.granted_on) == ("W2", date(2027, 7, 11))


def test_no_entry_and_no_white_list_moves_nothing() -> None:
    assert move(Status.ROUTINE, date(2026, 12, 1), entry=None) == ("", None, None, None)
