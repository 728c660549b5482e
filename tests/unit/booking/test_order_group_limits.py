"""CreateOrder's group limits: what `serve` is given wins, field by field; the rest is the
database's default (order_groups.limits_for)."""

from __future__ import annotations

import pytest

from services.booking.entrypoints import cli
from services.booking.service_layer.order_groups import (
    POSTGRESQL_LIMITS,
    SQLITE_LIMITS,
    limits_for,
)
from services.common.call_groups import GroupLimits


def _asked(*flags: str) -> GroupLimits:
    parser = cli._parser()
    return cli._order_group_limits(parser.parse_args(["serve", *flags]))


@pytest.mark.parametrize("single_writer", [True, False])
def test_nothing_given_is_the_databases_default(single_writer: bool) -> None:
    default = SQLITE_LIMITS if single_writer else POSTGRESQL_LIMITS
    assert limits_for(_asked(), single_writer=single_writer) == default
    assert limits_for(None, single_writer=single_writer) == default


def test_what_is_given_wins_field_by_field() -> None:
    on_pg = limits_for(_asked("--order-group-size", "6"), single_writer=False)
    assert on_pg == GroupLimits(6, POSTGRESQL_LIMITS.max_wait, POSTGRESQL_LIMITS.groups)
    off = limits_for(_asked("--order-group-size", "1"), single_writer=True)
    assert not off.grouping
    asked = _asked("--order-group-wait-ms", "0", "--order-groups", "3")
    assert limits_for(asked, single_writer=True) == GroupLimits(SQLITE_LIMITS.max_size, 0.0, 3)


@pytest.mark.parametrize(
    "flags",
    [["--order-group-size", "0"], ["--order-groups", "0"], ["--order-group-wait-ms", "nan"]],
)
def test_out_of_range_settings_are_refused(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        _asked(*flags)
