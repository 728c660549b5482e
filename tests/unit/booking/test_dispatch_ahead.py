"""Dispatch books only half-days still ahead; an order whose half-days have all passed is
cancelled by the system and the firm told to book again; an order whose expert can no
longer take it is taken from them and dispatched again in the transaction of the
expert's change (review 52 F3, silent items 3 and 4)."""

from __future__ import annotations

from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import HalfDaysPassed
from services.booking.domain.records import Expert
from services.booking.service_layer import dispatch as dispatch_use_case
from services.booking.service_layer import experts, orders, views
from services.booking.service_layer.order_entry import open_repeat
from services.common.errors import PreconditionFailed
from tests.unit.booking.fakes import FIRM, FakeUnitOfWork
from tests.unit.booking.test_use_cases import add_expert, place, slot


def stored(uow: FakeUnitOfWork, order_id: str) -> Any:
    return uow.register.orders_by_id[order_id]


# ---------------------------------------------------------------- half-days still ahead


def test_a_waiting_order_is_dispatched_to_a_half_day_ahead_not_one_passed_or_today(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """s3_dispatch 4: an expert whose offer includes past days (a month loaded mid-month)
    arrives while an order waits; today's half-days are not ahead either."""
    clock = ctx.today
    first, today_pm, later = slot(clock, 1), slot(clock, 2, "PM"), slot(clock, 3, "PM")
    order = place(uow, ctx, token, "k", first, today_pm, later)
    assert order.status == "submitted"
    clock.advance(2)  # `first` has passed, `today_pm` is today's afternoon
    add_expert(uow, ctx, slots=[first, today_pm, later])
    assert (stored(uow, order.id).status, stored(uow, order.id).slot) == ("dispatched", later)
    assert {a.slot for a in uow.register.assignments} == {later}


def test_a_cancellation_after_the_day_does_not_dispatch_a_waiting_order_into_the_past(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """s10: the expert's half-day freed by a cancellation days after it passed."""
    clock = ctx.today
    add_expert(uow, ctx, max_visits_per_day=1)
    days = (slot(clock, 1), slot(clock, 2))
    first = place(uow, ctx, token, "a", *days)
    place(uow, ctx, token, "b", *days)
    waiting = place(uow, ctx, token, "c", *days)
    assert waiting.status == "submitted"
    clock.advance(4)
    orders.cancel_order(
        uow, ctx, first.id, FirmAccess(token, FIRM), actor="firm", reason="专家没来"
    )
    after = stored(uow, waiting.id)
    assert (after.status, after.expert_id, after.slot) == ("cancelled", None, None)
    assert all(a.order_id != waiting.id for a in uow.register.assignments)


def test_an_order_with_a_half_day_still_ahead_keeps_waiting(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    clock = ctx.today
    order = place(uow, ctx, token, "k", slot(clock, 1), slot(clock, 3))
    clock.advance(2)
    assert dispatch_use_case.redispatch_waiting(uow, ctx) == 0
    assert stored(uow, order.id).status == "submitted"
    assert stored(uow, order.id).dispatch_note == messages.NO_EXPERT


# ---------------------------------------------------------------- every half-day passed


def test_an_order_whose_half_days_all_passed_is_cancelled_and_the_firm_told(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = place(uow, ctx, token)
    ctx.today.advance(2)  # the second half-day is today's morning: passed too
    assert dispatch_use_case.redispatch_waiting(uow, ctx) == 0  # the sweep's retry
    expired = stored(uow, order.id)
    assert expired.status == "cancelled" and expired.dispatch_note == messages.SLOTS_PASSED
    last = expired.history[-1]
    assert (last.from_status, last.actor, last.reason) == (
        "submitted",
        "dispatcher",
        messages.SLOTS_PASSED,
    )
    assert order.id not in uow.register.submitted_order_ids()  # no longer retried
    # the firm's own page lists it among the ended orders, with the note
    access = FirmAccess(token, session_firm=FIRM)
    page = views.landing(uow, ctx, access)
    assert [o.id for o in page["past_orders"]] == [order.id] and not page["orders"]
    # and the firm can book again: nothing open blocks the same items
    add_expert(uow, ctx)
    form = {
        "item_codes": ["fire_safety"],
        "preferred_slots": [slot(ctx.today, 1), slot(ctx.today, 2)],
        "contact_name": "联系人",
        "contact_phone": "13812345678",
    }
    assert open_repeat(uow, ctx, token, form, "again") is None
    again = orders.create_order(uow, ctx, token, form, "again")
    assert again.status == "dispatched"


def test_an_admins_dispatch_of_an_order_whose_half_days_passed_fails_naming_the_field(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = place(uow, ctx, token)
    ctx.today.advance(3)
    offered = [slot(ctx.today, d) for d in range(-3, 5)]  # past days too, stored directly
    uow.register.add(Expert("E1", "专家", "", ["fire_crowded"], [], offered, 2, True, []))
    with pytest.raises(HalfDaysPassed) as info:
        dispatch_use_case.dispatch_order(uow, ctx, order.id, actor="admin")
    assert isinstance(info.value, PreconditionFailed)
    assert [v.field for v in info.value.violations] == ["order_id"]
    assert "preferred_slots" in str(info.value)
    assert stored(uow, order.id).status == "submitted" and not uow.register.assignments


def test_a_firms_cancellation_clears_the_waiting_note(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = place(uow, ctx, token)
    assert order.dispatch_note == messages.NO_EXPERT
    orders.cancel_order(uow, ctx, order.id, FirmAccess(token, FIRM), actor="firm", reason="")
    assert stored(uow, order.id).dispatch_note == ""


# ---------------------------------------------------------------- the expert's change


def _change(ctx: Any, expert_id: str, **fields: Any) -> dict[str, Any]:
    clock = ctx.today
    return {
        "expert_id": expert_id,
        "name": f"专家{expert_id}",
        "domains": ["fire_crowded"],
        "regions": ["稠城街道"],
        "slots": [slot(clock, d, h) for d in range(1, 15) for h in ("AM", "PM")],
        **fields,
    }


@pytest.fixture
def no_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the retry after the commit: what the change's own transaction did."""
    monkeypatch.setattr(experts, "redispatch_after_commit", lambda _uow, _ctx: None)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"active": False}, "inactive"),
        ({"conflicts": [FIRM]}, "conflict"),
        ({"domains": ["gas"]}, "domains"),
        ("withdraw", "slot"),
    ],
)
def test_an_order_is_taken_from_an_expert_who_can_no_longer_take_it(
    uow: FakeUnitOfWork, ctx: Any, token: str, no_retry: None, change: Any, why: str
) -> None:
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2", regions=["北苑街道"])  # second choice: not local
    order = place(uow, ctx, token)
    assert order.expert_id == "E1"
    booked = order.slot
    if change == "withdraw":  # the order's half-days, the booked one among them
        kept = [s for s in _change(ctx, "E1")["slots"] if s not in order.preferred_slots]
        fields = {"slots": kept}
    else:
        fields = change
    experts.upsert_expert(uow, ctx, _change(ctx, "E1", **fields))
    after = stored(uow, order.id)
    assert (after.status, after.expert_id, after.slot) == ("dispatched", "E2", booked)
    assert [a.expert_id for a in uow.register.assignments if a.order_id == order.id] == ["E2"]
    moves = [(m.from_status, m.to_status, m.reason) for m in after.history[-2:]]
    label = "6月2日上午"
    assert moves[0] == (
        "dispatched",
        "submitted",
        messages.TAKEN_FROM_EXPERT[why].format(expert="E1", slot=label),
    )
    assert moves[1][:2] == ("submitted", "dispatched") and "E2" in moves[1][2]


def test_a_withdrawn_half_day_moves_the_order_to_the_experts_next_free_one(
    uow: FakeUnitOfWork, ctx: Any, token: str, no_retry: None
) -> None:
    add_expert(uow, ctx, "E1")
    order = place(uow, ctx, token)
    first, second = order.preferred_slots
    remaining = [s for s in _change(ctx, "E1")["slots"] if s != first]
    experts.upsert_expert(uow, ctx, _change(ctx, "E1", slots=remaining))
    after = stored(uow, order.id)
    assert (after.status, after.expert_id, after.slot) == ("dispatched", "E1", second)


def test_with_nobody_free_the_order_waits_with_the_reason_then_is_dispatched(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx, "E1")
    order = place(uow, ctx, token)
    experts.upsert_expert(uow, ctx, _change(ctx, "E1", active=False))
    after = stored(uow, order.id)
    assert (after.status, after.expert_id, after.slot) == ("submitted", None, None)
    assert after.dispatch_note == messages.NO_EXPERT
    assert not uow.register.assignments
    add_expert(uow, ctx, "E3")  # availability changed: it is dispatched again
    assert stored(uow, order.id).expert_id == "E3"


def test_an_order_of_a_half_day_passed_or_today_stays_with_its_expert(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Its visit may have taken place, to be recorded still."""
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2")
    order = place(uow, ctx, token)
    ctx.today.advance(1)  # the booked half-day is today's
    experts.upsert_expert(uow, ctx, _change(ctx, "E1", active=False))
    after = stored(uow, order.id)
    assert (after.status, after.expert_id) == ("dispatched", "E1")
    assert len(after.history) == 2


def test_an_expert_upserted_unchanged_keeps_their_orders(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2")
    order = place(uow, ctx, token)
    add_expert(uow, ctx, "E1", phone="13900000000")
    assert stored(uow, order.id).expert_id == "E1" and len(stored(uow, order.id).history) == 2


def test_the_change_does_not_wait_for_an_expert_another_dispatch_holds(
    uow: FakeUnitOfWork, ctx: Any, token: str, no_retry: None
) -> None:
    """The change holds its expert's row; a dispatch holding the other expert may wait
    for it: the order waits instead, and the retry after the commit takes it."""
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2", regions=["北苑街道"])
    order = place(uow, ctx, token)
    uow.register.locked_by_others.add("E2")
    experts.upsert_expert(uow, ctx, _change(ctx, "E1", active=False))
    assert stored(uow, order.id).status == "submitted"
    assert dispatch_use_case.redispatch_waiting(uow, ctx) == 1  # the retry waits for E2
    assert stored(uow, order.id).expert_id == "E2"
