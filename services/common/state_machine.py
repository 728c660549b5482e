"""The one state-machine helper: a transition table, the move it allows, and the history
each move leaves (shared kernel, pure).

A domain writes its whole machine as one table, (state, action) → state; anything not in
the table is FAILED_PRECONDITION. A record that moves by a table (booking's orders and
tickets) mixes in `Tracked`: `move(action, …)` applies one row, `enter(status, …)` records
a move into a state (the first one too, from ""), and each leaves a `Transition` naming
who, when, from, to and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from services.common.errors import PreconditionFailed

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)


class StateMachine(Generic[S, A]):
    """A transition table over the states of `states`; `noun` names the record in errors
    ("an order"). `refusal`: the message of a move the table does not allow, (current,
    action) → text, in the words of the domain's callers (booking's are Chinese, from its
    messages module: README "Errors and retries"); none: the English default."""

    def __init__(
        self,
        noun: str,
        states: type[S],
        table: Mapping[tuple[S, A], S],
        refusal: Callable[[S, A], str] | None = None,
    ) -> None:
        self.noun = noun
        self.states = states
        self.table = table
        self.refusal = refusal

    def next(self, current: S, action: A) -> S:
        """The row (current, action) of the table; anything else is not allowed."""
        try:
            return self.table[(current, action)]
        except KeyError:
            if self.refusal is not None:
                raise PreconditionFailed(self.refusal(current, action)) from None
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
    id: int | None = None  # given by the database
    reason: str = ""


T = TypeVar("T", bound=Transition)


class Tracked(Generic[A, T]):
    """Mixed into a record with a `status` and a `history` of transitions `T`."""

    machine: ClassVar[StateMachine[Any, Any]]  # the record's table
    status: str
    history: list[T]

    def transition(self, **moved: Any) -> T:
        """The record of a move (`moved`: Transition's fields) naming this record."""
        raise NotImplementedError

    def move(self, action: A, *, actor: str, at: datetime, reason: str = "") -> None:
        """Apply one row of the table and record who, when, from, to, why; a move the
        table does not allow raises PreconditionFailed and changes nothing."""
        after = self.machine.next(self.machine.states(self.status), action)
        self.enter(after.value, actor=actor, at=at, reason=reason)

    def enter(self, status: str, *, actor: str, at: datetime, reason: str = "") -> None:
        """Record a move into `status` (a new record's first, from "")."""
        moved = {"at": at, "actor": actor, "from_status": self.status, "to_status": status}
        self.history.append(self.transition(**moved, reason=reason))
        self.status = status
