"""The rule that turns database probes into health (services/common/server.py,
ProbeVerdict; review 61 R61-5), fed fixed sequences of probe outcomes: no database, no
clock. "S" a probe that answered, "F" one that failed (no answer, no connection, an
error), "R" one that found the database answering but unable to write."""

from __future__ import annotations

import pytest

from services.common.server import ProbeVerdict


def _health(probes: str, **rule: int) -> str:
    """What health reads after each probe: "S" SERVING, "N" NOT_SERVING."""
    verdict = ProbeVerdict(**rule)
    return "".join(
        "S" if verdict.record(each != "F" and each != "R", read_only=each == "R") else "N"
        for each in probes
    )


def test_a_dead_database_is_not_serving_after_three_failed_probes() -> None:
    assert _health("SSFFFFF") == "SSSSNNN"


def test_a_pool_busy_for_a_moment_is_load() -> None:
    """Review 57 N1: scattered failures, never three of the last four."""
    assert _health("SFFSSFSSFSFSSSFF") == "S" * 16


def test_a_flapping_database_is_not_serving_though_some_probes_answer() -> None:
    """Review 61 R61-5: a database down three quarters of the time. One probe that
    answered reset the count, so health read SERVING most of the time."""
    probes = "FFFS" * 6
    assert _health(probes) == "SSNN" + "N" * 20
    # not three in a row, ever: the old rule never turned it NOT_SERVING
    assert _health("FFSFFSFFSFFS") == "SSSNNNNNNNNN"


def test_serving_again_takes_answered_probes_in_a_row() -> None:
    assert _health("FFFSFSSS") == "SSNNNNSS"
    # and then the window starts afresh: two failures are not yet sickness
    assert _health("FFFSSFFS") == "SSNNSSSS"


def test_a_database_that_cannot_write_is_not_serving_at_once() -> None:
    assert _health("SRSS") == "SNNS"


@pytest.mark.parametrize(
    ("rule", "probes", "health"),
    [
        ({"failures": 1, "window": 1, "recovery": 1}, "SFSF", "SNSN"),
        ({"failures": 2, "window": 3, "recovery": 3}, "FSFSSS", "SSNNNS"),
    ],
)
def test_the_rule_is_configurable(rule: dict[str, int], probes: str, health: str) -> None:
    assert _health(probes, **rule) == health


def test_an_impossible_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        ProbeVerdict(failures=5, window=4)
