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


TODAY = date(2030, 1, 1)  # the server's day: after every decision's below unless given


def move(  # type: ignore[no-untyped-def]
    status: Status,
    as_of: date,
    entry: OpenEntry | None = ENTRY,
    *,
    today: date = TODAY,
    by_event: bool = False,
):
    return move_entry(
        decision(status, as_of),
        "D1",
        entry,
        "甲厂",
        "稠城街道",
        FIRM,
        lambda: "W2",
        today=today,
        by_event=by_event,
    )


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


def test_a_closure_is_never_dated_after_the_day_it_is_made() -> None:
    """Review 53 N5: a decision as of tomorrow (a record dated tomorrow) revoked the entry
    as of tomorrow, and ListWhitelistSizes counted the firm as listed today while
    ListWhitelist and the gate did not. It closes the entry today, the first day off."""
    _, _, moved, _ = move(Status.PRIORITY, date(2026, 12, 2), today=date(2026, 12, 1))
    assert moved is not None and moved.revoked_on == date(2026, 12, 1)
    # an expiry seen by a decision for a later day: closed no later than today either
    far = move(Status.ROUTINE, date(2027, 9, 1), today=date(2027, 7, 5))
    assert far[1] is not None and far[1].revoked_on == date(2027, 7, 5)
    # granted as of tomorrow, revoked today: closed on its grant day, never listed
    ahead = OpenEntry("W1", FIRM, "甲厂", "稠城街道", date(2026, 12, 2), date(2027, 12, 2), "D0")
    _, _, early, _ = move(Status.ROUTINE, date(2026, 12, 2), ahead, today=date(2026, 12, 1))
    assert early is not None and early.revoked_on == ahead.granted_on


def test_a_revoking_event_revokes_an_entry_that_lapsed_before_its_decision() -> None:
    """Review 53 N4: an event dated while the entry was valid, decided after its end,
    revokes it (dated on its last day, the list as it stood is kept), not expires it."""
    change, expired, moved, granted = move(Status.ROUTINE, date(2027, 7, 20), by_event=True)
    assert (change, expired, granted) == ("revoked", None, None)
    assert moved is not None and moved.kind == "revoked"
    assert moved.revoked_on == ENTRY.valid_until
    # without the event it expires, as before
    assert move(Status.ROUTINE, date(2027, 7, 20))[0] == "expired"
