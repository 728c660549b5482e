"""Review 54 D5: what a firm reads of its order's history (domain/order_history.py). The
stored rows keep the expert's id and the precise reason an order was taken from them
(for staff); the firm reads the expert by name and a neutral reason."""

from __future__ import annotations

from datetime import datetime

from services.booking.domain import messages
from services.booking.domain.order_history import (
    actors_for_firm,
    experts_named,
    firm_actor,
    for_firm,
)
from services.booking.domain.orders import OrderTransition

AT = datetime(2026, 6, 1, 9, 0)
SLOT = "6月2日上午"


def row(before: str, after: str, reason: str, actor: str = "dispatcher") -> OrderTransition:
    return OrderTransition(AT, actor, before, after, reason=reason, order_id="B1")


def dispatch(expert: str) -> OrderTransition:
    return row("submitted", "dispatched", messages.DISPATCHED_TO.format(expert=expert, slot=SLOT))


def taken(key: str, expert: str) -> OrderTransition:
    reason = messages.TAKEN_FROM_EXPERT[key].format(expert=expert, slot=SLOT)
    return row("dispatched", "submitted", reason, actor="admin")


def test_experts_by_name_and_a_neutral_reason_for_every_cause() -> None:
    for key in messages.TAKEN_FROM_EXPERT:
        stored = [
            row("", "submitted", messages.ORDER_TAKEN, actor="firm"),
            dispatch("E-FIRE-01"),
            taken(key, "E-FIRE-01"),
            dispatch("E-FIRE-02"),
            taken(key, "E-FIRE-02"),  # nobody else free: it waits
        ]
        assert experts_named(stored) == {"E-FIRE-01", "E-FIRE-02"}
        shown = for_firm(stored, {"E-FIRE-01": "王专家", "E-FIRE-02": "李专家"})
        assert [r.reason for r in shown] == [
            messages.ORDER_TAKEN,
            f"派单给专家 王专家，{SLOT}",
            messages.TAKEN_FOR_FIRM["again"],
            f"派单给专家 李专家，{SLOT}",
            messages.TAKEN_FOR_FIRM["waiting"],
        ]
        assert "E-FIRE" not in repr([r.reason for r in shown])
        assert [(r.at, r.actor, r.to_status) for r in shown] == [
            (r.at, firm_actor(r.actor), r.to_status) for r in stored
        ]
        assert [r.actor for r in shown] == ["firm", "dispatcher", "staff", "dispatcher", "staff"]
        assert stored[2].reason.startswith("专家E-FIRE-01")  # the stored row is unchanged


def test_an_expert_without_a_name_is_not_named_and_other_rows_stay() -> None:
    cancelled = row("dispatched", "cancelled", "企业已停产", actor="admin")
    shown = for_firm([dispatch("E9"), cancelled], {})
    assert [r.reason for r in shown] == [
        messages.DISPATCHED_UNNAMED.format(slot=SLOT),
        "企业已停产",
    ]


def test_the_firm_reads_itself_and_the_system_by_name_and_every_caller_as_staff() -> None:
    """Review 56: a caller's name (an expert's id, an inspector's, "staff:7 张三") is the
    authority's to know; the firm reads "staff" (the page's 专家/工作人员)."""
    actors = ["firm", "dispatcher", "sweep", "", "expert-E1", "booking-admin", "staff:7 张三"]
    assert [firm_actor(a) for a in actors] == [
        "firm",
        "dispatcher",
        "sweep",
        "",
        "staff",
        "staff",
        "staff",
    ]
    stored = [row("", "submitted", "x", actor=a) for a in actors]
    assert [r.actor for r in actors_for_firm(stored)] == [firm_actor(a) for a in actors]
    assert [r.actor for r in stored] == actors  # the stored rows are unchanged
