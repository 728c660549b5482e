"""The white list's size on a day, from its entries' dates (pure)."""

from __future__ import annotations

from datetime import date

from services.rules.domain.register import WhitelistEntry
from services.rules.domain.whitelist_sizes import months, sizes


def entry(granted: str, until: str, revoked: str | None = None) -> WhitelistEntry:
    return WhitelistEntry(
        id="w",
        enterprise_id="x",
        name="n",
        region="稠城街道",
        granted_on=date.fromisoformat(granted),
        valid_until=date.fromisoformat(until),
        decision_id="d",
        revoked_on=date.fromisoformat(revoked) if revoked else None,
    )


def test_an_entry_counts_from_its_grant_until_closed_or_lapsed() -> None:
    e = entry("2026-01-10", "2027-01-10")
    assert not e.listed_on(date(2026, 1, 9))
    assert e.listed_on(date(2026, 1, 10)) and e.listed_on(date(2027, 1, 10))
    assert not e.listed_on(date(2027, 1, 11))  # lapsed, no decision closed it yet
    closed = entry("2026-01-10", "2027-01-10", "2026-04-01")
    assert closed.listed_on(date(2026, 3, 31)) and not closed.listed_on(date(2026, 4, 1))


def test_sizes_per_month_stop_at_today() -> None:
    listed = [
        entry("2026-01-10", "2027-01-10"),
        entry("2026-02-01", "2027-02-01", "2026-02-20"),
        entry("2026-03-31", "2027-03-31"),
    ]
    span = months(date(2025, 12, 1), date(2026, 6, 1))
    assert span[0] == (2025, 12) and span[-1] == (2026, 6) and len(span) == 7
    got = sizes(listed, span, today=date(2026, 3, 31))
    assert [(m.month, m.size, m.granted, m.closed) for m in got] == [
        ("2025-12", 0, 0, 0),
        ("2026-01", 1, 1, 0),
        ("2026-02", 1, 1, 1),
        ("2026-03", 2, 1, 0),
    ]
    assert got[-1].as_of == date(2026, 3, 31)


def test_the_default_span_starts_no_earlier_than_the_first_month_of_record() -> None:
    """Review 47b N1: to_month 1949-01 with no from_month answered 1948-02 … 1949-01."""
    from services.rules.service_layer.whitelist_history import span

    assert span(date(2026, 6, 30), "", "1949-01") == [(1949, 1)]
    assert span(date(2026, 6, 30), "", "1949-03") == [(1949, 1), (1949, 2), (1949, 3)]
    assert len(span(date(2026, 6, 30), "", "")) == 12
