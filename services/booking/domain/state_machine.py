"""The one lookup both state machines use: a transition table, or FAILED_PRECONDITION."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from services.common.errors import PreconditionFailed

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


def next_state(table: Mapping[tuple[S, A], S], current: S, action: A, noun: str) -> S:
    """The row (current, action) of `table`; anything else is not allowed."""
    try:
        return table[(current, action)]
    except KeyError:
        raise PreconditionFailed(
            f"action {action.value} is not allowed for {noun} that is {current.value}"
        ) from None
