"""What a firm reads of its order's history (review 54 D5), rendered from the history as
stored, which keeps the precise reasons for staff and is never rewritten.

- A dispatch (`messages.DISPATCHED_TO`, which names the expert by id) names the expert
  by name, as the signed-in firm's order page names its dispatched expert.
- An order taken from its expert (DISPATCHED → SUBMITTED: the expert stopped taking
  orders, withdrew the half-day, declared a conflict of interest with the firm, dropped
  a domain: `messages.TAKEN_FROM_EXPERT`) reads as a neutral reason: why an expert
  cannot come is the authority's to know, not the firm's.
- Who moved it (`actor`): the firm itself and the system (FIRM_ACTORS) as stored; every
  other actor, a service or staff caller's name (an expert's, an inspector's, an
  admin's, "staff:<id> <name>"), reads STAFF_ACTOR, as the page says 专家/工作人员
  (review 56: over gRPC the firm's session read them raw). The same for a ticket's
  history (`actors_for_firm`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from services.common.state_machine import Transition

from . import messages
from .orders import OrderStatus, OrderTransition


def _pattern(template: str) -> re.Pattern[str]:
    """A message template ("派单给专家 {expert}，{slot}") as a pattern with a group a field."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(f"(?P<{p}>.+?)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    )


# The actors a firm reads as stored: itself, and the system (dispatch, the sweep, a row
# written without a caller); every other one is STAFF_ACTOR.
FIRM_ACTORS = frozenset({"firm", "dispatcher", "sweep", ""})
STAFF_ACTOR = "staff"

T = TypeVar("T", bound=Transition)


def firm_actor(actor: str) -> str:
    """Who moved an order or ticket, as its firm reads it: "firm", the system's own
    names, or STAFF_ACTOR for any service or staff caller (no id, no name)."""
    return actor if actor in FIRM_ACTORS else STAFF_ACTOR


def actors_for_firm(history: Sequence[T]) -> list[T]:
    """A history (an order's or a ticket's) with its actors as the firm reads them; the
    stored rows are not changed."""
    return [r if r.actor in FIRM_ACTORS else replace(r, actor=STAFF_ACTOR) for r in history]


_DISPATCHED = _pattern(messages.DISPATCHED_TO)
_SUBMITTED = OrderStatus.SUBMITTED.value
_DISPATCHED_STATUS = OrderStatus.DISPATCHED.value


def _dispatch(row: OrderTransition) -> re.Match[str] | None:
    if row.to_status != _DISPATCHED_STATUS:
        return None
    return _DISPATCHED.fullmatch(row.reason)


def _taken(row: OrderTransition) -> bool:
    return row.from_status == _DISPATCHED_STATUS and row.to_status == _SUBMITTED


def experts_named(history: Sequence[OrderTransition]) -> set[str]:
    """The ids of the experts the history's dispatches name (whose names `for_firm`
    needs)."""
    return {m.group("expert") for row in history if (m := _dispatch(row))}


def for_firm(history: Sequence[OrderTransition], names: Mapping[str, str]) -> list[OrderTransition]:
    """The history as the firm reads it: a dispatch names the expert by `names` (expert
    id → name; an expert without one is not named), an order taken from its expert
    says only that the expert cannot come, and that it was dispatched again (the next
    row is a dispatch) or is being arranged; staff and service callers read
    STAFF_ACTOR (`firm_actor`). Every other row as stored."""
    shown = []
    for i, row in enumerate(history):
        if found := _dispatch(row):
            name, slot = names.get(found.group("expert"), ""), found.group("slot")
            reason = (
                messages.DISPATCHED_TO.format(expert=name, slot=slot)
                if name
                else messages.DISPATCHED_UNNAMED.format(slot=slot)
            )
            row = replace(row, reason=reason)
        elif _taken(row):
            again = i + 1 < len(history) and history[i + 1].to_status == _DISPATCHED_STATUS
            row = replace(row, reason=messages.TAKEN_FOR_FIRM["again" if again else "waiting"])
        shown.append(row)
    return actors_for_firm(shown)
