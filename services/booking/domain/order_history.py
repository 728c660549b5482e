"""What a firm reads of its order's history (review 54 D5), rendered from the history as
stored, which keeps the precise reasons for staff and is never rewritten.

- A dispatch (`messages.DISPATCHED_TO`, which names the expert by id) names the expert
  by name, as the signed-in firm's order page names its dispatched expert.
- An order taken from its expert (DISPATCHED → SUBMITTED: the expert stopped taking
  orders, withdrew the half-day, declared a conflict of interest with the firm, dropped
  a domain: `messages.TAKEN_FROM_EXPERT`) reads as a neutral reason: why an expert
  cannot come is the authority's to know, not the firm's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from . import messages
from .orders import OrderStatus, OrderTransition


def _pattern(template: str) -> re.Pattern[str]:
    """A message template ("派单给专家 {expert}，{slot}") as a pattern with a group a field."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(f"(?P<{p}>.+?)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
    )


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
    row is a dispatch) or is being arranged. Every other row as stored."""
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
    return shown
