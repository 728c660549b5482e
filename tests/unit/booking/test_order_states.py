"""Order and ticket state machines: every table row, every pair outside it, and history."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from services.booking.domain.orders import (
    ENDED_ORDERS,
    ORDER_TRANSITIONS,
    Order,
    OrderAction,
    OrderStatus,
    next_order_status,
)
from services.booking.domain.tickets import (
    TICKET_TRANSITIONS,
    Ticket,
    TicketAction,
    TicketStatus,
    next_ticket_status,
)
from services.common.errors import PreconditionFailed

AT = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
LATER = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)

# The spec's tables (docs/booking.md "Order states" and "Visit, findings and tickets"), written
# out independently of the code so that an edit to the code's table is noticed. An order
# taken from an expert who can no longer take it goes back to SUBMITTED (review 52).
EXPECTED_ORDER_TABLE = {
    (OrderStatus.SUBMITTED, OrderAction.DISPATCH): OrderStatus.DISPATCHED,
    (OrderStatus.SUBMITTED, OrderAction.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.DISPATCHED, OrderAction.CANCEL): OrderStatus.CANCELLED,
    (OrderStatus.DISPATCHED, OrderAction.UNASSIGN): OrderStatus.SUBMITTED,
    (OrderStatus.DISPATCHED, OrderAction.RECORD_VISIT): OrderStatus.VISITED,
    (OrderStatus.VISITED, OrderAction.CLOSE): OrderStatus.CLOSED,
}
EXPECTED_TICKET_TABLE = {
    (TicketStatus.OPEN, TicketAction.SUBMIT_PROOF): TicketStatus.SUBMITTED,
    (TicketStatus.SUBMITTED, TicketAction.SUBMIT_PROOF): TicketStatus.SUBMITTED,
    (TicketStatus.SUBMITTED, TicketAction.RECHECK_PASS): TicketStatus.VERIFIED,
    (TicketStatus.SUBMITTED, TicketAction.RECHECK_FAIL): TicketStatus.OPEN,
}

ORDER_ILLEGAL = [
    pair for pair in itertools.product(OrderStatus, OrderAction) if pair not in ORDER_TRANSITIONS
]
TICKET_ILLEGAL = [
    pair for pair in itertools.product(TicketStatus, TicketAction) if pair not in TICKET_TRANSITIONS
]


def make_order(status: OrderStatus = OrderStatus.SUBMITTED) -> Order:
    return Order(
        id="O1",
        enterprise_id="91330782MA20000013",
        enterprise_name="测试企业",
        region="稠城街道",
        item_codes=["fire_safety"],
        preferred_slots=["2026-06-02 AM", "2026-06-03 PM"],
        contact_name="张三",
        contact_phone="13812345678",
        note="",
        idempotency_key="k1",
        status=status.value,
        created_at=AT,
    )


def make_ticket(status: TicketStatus = TicketStatus.OPEN) -> Ticket:
    return Ticket(
        id="T1",
        order_id="O1",
        visit_id="V1",
        enterprise_id="91330782MA20000013",
        clause_ref="GM2023:11(1)",
        severity="general",
        description="消防通道堵塞",
        found_on=date(2026, 6, 1),
        due_on=date(2026, 7, 1),
        status=status.value,
        expert_id="E1",
        created_at=AT,
    )


# ---- orders -------------------------------------------------------------------------------


def test_order_table_is_the_spec_table() -> None:
    assert ORDER_TRANSITIONS == EXPECTED_ORDER_TABLE


def test_terminal_order_states_have_no_way_out() -> None:
    sources = {frm for frm, _ in ORDER_TRANSITIONS}
    assert OrderStatus.CLOSED not in sources
    assert OrderStatus.CANCELLED not in sources
    assert {OrderStatus.CLOSED, OrderStatus.CANCELLED} == ENDED_ORDERS  # the phone page's fold


def test_enumeration_covers_every_pair() -> None:
    assert len(ORDER_ILLEGAL) + len(ORDER_TRANSITIONS) == len(OrderStatus) * len(OrderAction)
    assert len(TICKET_ILLEGAL) + len(TICKET_TRANSITIONS) == len(TicketStatus) * len(TicketAction)


@pytest.mark.parametrize(
    ("current", "action", "after"), [(c, a, t) for (c, a), t in EXPECTED_ORDER_TABLE.items()]
)
def test_each_order_row_moves(
    current: OrderStatus, action: OrderAction, after: OrderStatus
) -> None:
    assert next_order_status(current, action) is after
    order = make_order(current)
    order.move(action, actor="inspector:li", at=LATER, reason="为什么")
    assert order.status == after.value
    assert order.updated_at == LATER


@pytest.mark.parametrize(("current", "action"), ORDER_ILLEGAL)
def test_every_order_pair_outside_the_table_fails_precondition(
    current: OrderStatus, action: OrderAction
) -> None:
    with pytest.raises(PreconditionFailed) as info:
        next_order_status(current, action)
    assert info.value.code == "failed_precondition"
    order = make_order(current)
    with pytest.raises(PreconditionFailed):
        order.move(action, actor="firm", at=LATER)
    # a refused move changes nothing
    assert order.status == current.value
    assert order.history == []
    assert order.updated_at is None


def test_order_move_records_who_when_from_to_why() -> None:
    order = make_order()
    order.move(OrderAction.DISPATCH, actor="system:dispatch", at=AT)
    order.move(OrderAction.CANCEL, actor="authority:wang", at=LATER, reason="企业停产")
    assert [
        (t.order_id, t.at, t.actor, t.from_status, t.to_status, t.reason) for t in order.history
    ] == [
        ("O1", AT, "system:dispatch", "submitted", "dispatched", ""),
        ("O1", LATER, "authority:wang", "dispatched", "cancelled", "企业停产"),
    ]
    assert order.status == "cancelled"
    assert order.updated_at == LATER


def test_order_full_happy_path_history() -> None:
    order = make_order()
    for action in (OrderAction.DISPATCH, OrderAction.RECORD_VISIT, OrderAction.CLOSE):
        order.move(action, actor="x", at=AT)
    assert [(t.from_status, t.to_status) for t in order.history] == [
        ("submitted", "dispatched"),
        ("dispatched", "visited"),
        ("visited", "closed"),
    ]


# ---- tickets ------------------------------------------------------------------------------


def test_ticket_table_is_the_expected_table() -> None:
    assert TICKET_TRANSITIONS == EXPECTED_TICKET_TABLE


def test_verified_is_terminal() -> None:
    assert TicketStatus.VERIFIED not in {frm for frm, _ in TICKET_TRANSITIONS}


@pytest.mark.parametrize(
    ("current", "action", "after"), [(c, a, t) for (c, a), t in EXPECTED_TICKET_TABLE.items()]
)
def test_each_ticket_row_moves(
    current: TicketStatus, action: TicketAction, after: TicketStatus
) -> None:
    assert next_ticket_status(current, action) is after
    ticket = make_ticket(current)
    ticket.move(action, actor="expert:E1", at=LATER, reason="r")
    assert ticket.status == after.value
    assert len(ticket.history) == 1


@pytest.mark.parametrize(("current", "action"), TICKET_ILLEGAL)
def test_every_ticket_pair_outside_the_table_fails_precondition(
    current: TicketStatus, action: TicketAction
) -> None:
    with pytest.raises(PreconditionFailed) as info:
        next_ticket_status(current, action)
    assert info.value.code == "failed_precondition"
    ticket = make_ticket(current)
    with pytest.raises(PreconditionFailed):
        ticket.move(action, actor="firm", at=LATER)
    assert ticket.status == current.value
    assert ticket.history == []


def test_ticket_move_records_who_when_from_to_why() -> None:
    ticket = make_ticket()
    ticket.move(TicketAction.SUBMIT_PROOF, actor="firm:91330782MA20000013", at=AT)
    ticket.move(TicketAction.RECHECK_FAIL, actor="expert:E1", at=LATER, reason="灭火器仍过期")
    assert [
        (t.ticket_id, t.at, t.actor, t.from_status, t.to_status, t.reason) for t in ticket.history
    ] == [
        ("T1", AT, "firm:91330782MA20000013", "open", "submitted", ""),
        ("T1", LATER, "expert:E1", "submitted", "open", "灭火器仍过期"),
    ]
    assert ticket.status == "open"


def test_ticket_can_cycle_until_verified() -> None:
    ticket = make_ticket()
    for action in (
        TicketAction.SUBMIT_PROOF,
        TicketAction.RECHECK_FAIL,
        TicketAction.SUBMIT_PROOF,
        TicketAction.SUBMIT_PROOF,
        TicketAction.RECHECK_PASS,
    ):
        ticket.move(action, actor="a", at=AT)
    assert ticket.status == "verified"
    assert [t.to_status for t in ticket.history] == [
        "submitted",
        "open",
        "submitted",
        "submitted",
        "verified",
    ]
