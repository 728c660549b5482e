"""The one state-machine helper: a transition table, the move it allows, and the history
each move leaves (shared kernel, pure).

A domain writes its whole machine as one table, (state, action) → state; anything not in
the table is FAILED_PRECONDITION. A record that moves by a table (booking's orders and
tickets) mixes in `Tracked`: `move(action, …)` applies one row, `enter(status, …)` records
a move into a state (the first one too, from ""), and each leaves a `Transition` naming
who, when, from, to and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from services.common.errors import PreconditionFailed

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


class StateMachine(Generic[S, A]):
    """A transition table over the states of `states`; `noun` names the record in errors
    ("an order")."""

    def __init__(self, noun: str, states: type[S], table: Mapping[tuple[S, A], S]) -> None:
        self.noun = noun
        self.states = states
        self.table = table

    def next(self, current: S, action: A) -> S:
        """The row (current, action) of the table; anything else is not allowed."""
        try:
            return self.table[(current, action)]
        except KeyError:
            raise PreconditionFailed(
                f"action {action.value} is not allowed for {self.noun} that is {current.value}"
            ) from None


@dataclass
class Transition:
    """One recorded move; a subclass adds the id of the record that moved."""

    at: datetime
    actor: str
    from_status: str
    to_status: str
    reason: str = ""
    id: int | None = None


T = TypeVar("T", bound=Transition)


class Tracked(Generic[A, T]):
    """Mixed into a record with a `status` and a `history` of transitions `T`."""

    status: str
    history: list[T]

    def machine(self) -> StateMachine[Any, A]:
        raise NotImplementedError

    def transition(
        self, at: datetime, actor: str, before: str, after: str, reason: str
    ) -> T:  # pragma: no cover - every record says how it records a move
        raise NotImplementedError

    def move(self, action: A, *, actor: str, at: datetime, reason: str = "") -> None:
        """Apply one row of the table and record who, when, from, to, why; a move the
        table does not allow raises PreconditionFailed and changes nothing."""
        machine = self.machine()
        after = machine.next(machine.states(self.status), action)
        self.enter(after.value, actor=actor, at=at, reason=reason)

    def enter(self, status: str, *, actor: str, at: datetime, reason: str = "") -> None:
        """Record a move into `status` (a new record's first, from "")."""
        self.history.append(self.transition(at, actor, self.status, status, reason))
        self.status = status
