"""派单: choose the expert and slot for an order (docs/booking.md, Cal.com round-robin fairness).

Pure: the caller supplies the experts, who is booked when, and recent visit counts;
the database's unique (expert, slot) constraint is what finally prevents a double booking
when two dispatches race, and the caller then tries the next candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from . import messages
from .orders import Order
from .records import Expert
from .slots import Slot, parse_slot

FAIRNESS_WINDOW_DAYS = 30


@dataclass(frozen=True)
class ExpertView:
    expert_id: str
    domains: frozenset[str]
    regions: frozenset[str]
    slots: frozenset[Slot]  # half-days the expert offers
    max_visits_per_day: int
    active: bool
    conflicts: frozenset[str] = frozenset()
    booked: frozenset[Slot] = frozenset()  # half-days already assigned
    visits_per_day: Mapping[date, int] = field(default_factory=dict)
    recent_visits: int = 0  # in the fairness window
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    expert_id: str
    slot: Slot


def needed_domains(
    item_codes: Sequence[str], item_domains: Mapping[str, str | None]
) -> frozenset[str]:
    """The domains an expert must cover: one per item that names a domain."""
    return frozenset(d for code in item_codes if (d := item_domains.get(code)))


def first_free_slot(expert: ExpertView, preferred: Sequence[Slot]) -> Slot | None:
    for slot in preferred:
        if (
            slot in expert.slots
            and slot not in expert.booked
            and expert.visits_per_day.get(slot.day, 0) < expert.max_visits_per_day
        ):
            return slot
    return None


def candidates(
    *,
    enterprise_id: str,
    region: str,
    needed: frozenset[str],
    preferred: Sequence[Slot],
    experts: Sequence[ExpertView],
    any_region: bool = False,
) -> list[Candidate]:
    """Every eligible (expert, slot), best first.

    Eligible: active, covers every needed domain, no conflict of interest with the firm,
    free in one of the preferred slots. Order: experts serving the firm's region first (if
    any is free, only those, unless `any_region`: the fallback when every local one was
    lost to a concurrent dispatch), then fewest visits in the last 30 days, then least
    recently assigned (never assigned first), then id.
    """
    eligible = []
    for e in experts:
        if not e.active or not needed <= e.domains or enterprise_id in e.conflicts:
            continue
        slot = first_free_slot(e, preferred)
        if slot is not None:
            eligible.append((e, slot))
    local = [(e, s) for e, s in eligible if region in e.regions]
    pool = eligible if any_region else (local or eligible)
    pool.sort(
        key=lambda pair: (
            pair[0].recent_visits,
            pair[0].last_assigned_at is not None,
            pair[0].last_assigned_at or datetime.min,
            pair[0].expert_id,
        )
    )
    return [Candidate(e.expert_id, s) for e, s in pool]


def unfit(expert: Expert, order: Order, needed: frozenset[str]) -> str | None:
    """Why `expert`, as they now stand, can no longer take `order`, which was dispatched
    to them (the reason its history keeps, messages.TAKEN_FROM_EXPERT); None when they
    still can. The hard conditions of dispatch, checked against the booked half-day:
    active, that half-day still offered, no conflict of interest with the firm, every
    `needed` domain covered. The region is not one (any region is dispatch's fallback),
    nor the visits a day (which of a day's visits would go is not the expert's to say)."""
    if not expert.active:
        key = "inactive"
    elif order.slot not in expert.slots:
        key = "slot"
    elif order.enterprise_id in expert.conflicts:
        key = "conflict"
    elif not needed <= set(expert.domains):
        key = "domains"
    else:
        return None
    slot = parse_slot(order.slot).label if order.slot else ""
    return messages.TAKEN_FROM_EXPERT[key].format(expert=expert.id, slot=slot)
