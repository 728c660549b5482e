"""The reports' rounding: "消除隐患 700 余处"."""

from __future__ import annotations

import pytest

from services.booking.domain.headline import about


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (7, "7"),
        (99, "99"),
        (100, "100"),
        (145, "100 余"),
        (700, "700"),
        (738, "700 余"),
        (999, "900 余"),
        (1000, "1000"),
        (1234, "1200 余"),
        (9999, "9900 余"),
        (10000, "1万"),
        (12345, "1.2万 余"),
        (15000, "1.5万"),
        (230000, "23万"),
    ],
)
def test_counts_round_down_with_yu_like_the_reports(count: int, text: str) -> None:
    assert about(count) == text


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        about(-1)
