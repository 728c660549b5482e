"""The booking use cases with a fake unit of work and a fake rules service (no servers):
QR codes, orders and dispatch, visits, rechecks, the sweep, the outbox."""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta
from typing import Any

import pytest
import structlog

from services.booking.domain import messages, qr
from services.booking.domain.events import HazardFound, HazardVerified, RectificationOverdue
from services.booking.domain.findings import FindingInput
from services.booking.domain.firm_access import STAFF, FirmAccess
from services.booking.domain.photos import Upload
from services.booking.domain.rules_service import RulesRejected, RulesUnavailable
from services.booking.domain.staff import EVERY
from services.booking.service_layer import (
    dispatch as dispatch_use_case,
)
from services.booking.service_layer import (
    experts,
    orders,
    outbox,
    qr_codes,
    tickets,
    views,
    visits,
)
from services.common.errors import (
    DeadlineExceeded,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unavailable,
    ValidationError,
)
from services.common.instants import as_utc
from services.common.vocabulary import Severity
from tests.support import uscc
from tests.unit.booking.fakes import (
    FIRM,
    REGION,
    Clock,
    FakeUnitOfWork,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


def slot(clock: Clock, days: int, half: str = "AM") -> str:
    return f"{(clock.today + timedelta(days=days)).isoformat()} {half}"


def add_expert(uow: FakeUnitOfWork, ctx: Any, expert_id: str = "E1", **fields: Any) -> None:
    clock = ctx.today
    data = {
        "expert_id": expert_id,
        "name": f"专家{expert_id}",
        "domains": ["fire_crowded"],
        "regions": [REGION],
        "slots": [slot(clock, d, h) for d in range(1, 15) for h in ("AM", "PM")],
        **fields,
    }
    experts.upsert_expert(uow, ctx, data)


def place(uow: FakeUnitOfWork, ctx: Any, token: str, key: str = "k", *slots: str) -> Any:
    """An order for fire safety on `slots` (else tomorrow and the day after, mornings)."""
    form = {
        "item_codes": ["fire_safety"],
        "preferred_slots": list(slots) or [slot(ctx.today, 1), slot(ctx.today, 2)],
        "contact_name": "联系人",
        "contact_phone": "13812345678",
    }
    return orders.create_order(uow, ctx, token, form, key)


# ---------------------------------------------------------------- QR codes


def test_issuing_a_code_copies_the_firm_and_a_reissue_revokes_the_old_code(
    uow: FakeUnitOfWork, ctx: Any
) -> None:
    first = qr_codes.issue_qr_code(uow, ctx, FIRM)
    assert uow.register.firms[FIRM].name == "义乌市示例五金厂"
    assert first.url == f"https://example.org/q/{first.token}" and "<svg" in first.poster_svg
    second = qr_codes.issue_qr_code(uow, ctx, FIRM)
    with uow:
        assert qr_codes.firm_for_token(uow, ctx, second.token).enterprise_id == FIRM
        with pytest.raises(PermissionDenied):
            qr_codes.firm_for_token(uow, ctx, first.token)


def test_a_code_needs_a_valid_credit_code_and_a_registered_firm(
    uow: FakeUnitOfWork, ctx: Any
) -> None:
    wrong_check = FIRM[:17] + ("0" if FIRM[17] != "0" else "1")
    with pytest.raises(ValidationError) as info:
        qr_codes.issue_qr_code(uow, ctx, wrong_check)
    assert info.value.violations[0].field == "enterprise_id"
    with pytest.raises(NotFound):
        qr_codes.issue_qr_code(uow, ctx, uscc(2))
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    with pytest.raises(Unavailable):
        qr_codes.issue_qr_code(uow, ctx, FIRM)


def test_a_forged_token_is_refused(uow: FakeUnitOfWork, ctx: Any) -> None:
    _, forged = qr.issue(qr.Keyring({"k1": b"x" * 32}, active="k1"), FIRM)
    with pytest.raises(PermissionDenied):
        place(uow, ctx, forged)


# ---------------------------------------------------------------- orders and dispatch


def test_an_order_is_dispatched_to_a_free_expert_and_the_same_key_returns_it(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx)
    order = place(uow, ctx, token)
    assert order.status == "dispatched" and order.expert_id == "E1"
    assert order.slot == slot(ctx.today, 1)
    assert [t.to_status for t in order.history] == ["submitted", "dispatched"]
    assert place(uow, ctx, token).id == order.id
    assert len(uow.register.orders_by_id) == 1


def test_without_a_free_expert_the_order_waits_and_is_dispatched_later(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = place(uow, ctx, token)
    assert order.status == "submitted" and order.dispatch_note == messages.NO_EXPERT
    add_expert(uow, ctx)  # availability changed: waiting orders are dispatched again
    assert uow.register.orders_by_id[order.id].status == "dispatched"


def test_a_committed_expert_change_is_answered_as_done_when_the_retry_fails(
    uow: FakeUnitOfWork, ctx: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying waiting orders runs after the expert's change is committed: a database
    that fails then does not turn the committed change into an error; the periodic sweep
    (redispatch_waiting) dispatches the order later."""
    order = place(uow, ctx, token)
    assert order.status == "submitted"
    register = type(uow.register)

    def gone(self: Any) -> list[str]:
        raise OSError("the database went away between the two transactions")

    with monkeypatch.context() as patched:
        patched.setattr(register, "submitted_order_ids", gone)
        add_expert(uow, ctx)  # no exception: the change stands
    assert "E1" in {e.id for e in uow.register.experts()}
    assert uow.register.orders_by_id[order.id].status == "submitted"
    assert dispatch_use_case.redispatch_waiting(uow, ctx) == 1  # the sweep's retry
    assert uow.register.orders_by_id[order.id].status == "dispatched"


def test_a_slot_lost_to_a_concurrent_dispatch_moves_on_to_the_next_expert(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2", regions=["北苑街道"])  # not local: second choice
    uow.register.taken_slots.add(("E1", slot(ctx.today, 1)))  # the unique index says no
    order = place(uow, ctx, token)
    assert order.expert_id == "E2" and order.slot == slot(ctx.today, 1)


def test_an_expert_a_concurrent_dispatch_holds_is_passed_over_for_the_next_one(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2", regions=["北苑街道"])  # not local: second choice
    uow.register.locked_by_others.add("E1")  # being booked by another order right now
    order = place(uow, ctx, token)
    assert order.expert_id == "E2" and order.slot == slot(ctx.today, 1)


def test_a_held_expert_is_waited_for_when_no_one_else_is_free(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx, "E1")
    add_expert(uow, ctx, "E2", domains=["gas"])  # cannot serve the order
    uow.register.locked_by_others.add("E1")
    order = place(uow, ctx, token)
    assert order.expert_id == "E1" and order.status == "dispatched"


def test_an_order_that_lost_a_race_to_its_own_key_is_taken_again(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    uow.conflicts = 1
    order = place(uow, ctx, token)
    assert order.status == "submitted" and len(uow.register.orders_by_id) == 1


def test_cancelling_frees_the_slot_for_a_waiting_order(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    add_expert(uow, ctx, max_visits_per_day=1)
    tomorrow = (slot(ctx.today, 1, "AM"), slot(ctx.today, 1, "PM"))
    first = place(uow, ctx, token, "a", *tomorrow)
    waiting = place(uow, ctx, token, "b", *tomorrow)  # one visit a day: it waits
    assert first.status == "dispatched" and waiting.status == "submitted"
    signed_in = FirmAccess(token, FIRM)  # the firm's session (the phone page sends both)
    cancelled = orders.cancel_order(uow, ctx, first.id, signed_in, actor="firm", reason="")
    assert cancelled.status == "cancelled" and cancelled.history[-1].reason == "企业取消"
    assert uow.register.orders_by_id[waiting.id].status == "dispatched"
    with pytest.raises(ValidationError) as info:  # the authority must say why
        orders.cancel_order(uow, ctx, waiting.id, STAFF, actor="admin", reason=" ")
    assert info.value.violations[0].description == messages.CANCEL_NEEDS_REASON


def test_a_firm_cancels_only_with_its_session_and_a_clean_short_reason(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 52 F1: cancelling is one of the firm's own actions (api.md Auth): the QR
    token alone, which anyone who scans the poster has, is refused; the reason the firm
    may type is at most REASON_MAX characters without control characters."""
    add_expert(uow, ctx)
    order = place(uow, ctx, token)
    with pytest.raises(PermissionDenied):
        orders.cancel_order(uow, ctx, order.id, FirmAccess(token), actor="firm", reason="")
    signed_in = FirmAccess(token, FIRM)
    for reason, said in (
        ("不要了\x1b[2J", messages.CONTROL_CHARACTERS),
        ("字" * (orders.REASON_MAX + 1), messages.CANCEL_REASON_TOO_LONG.format(n=500)),
    ):
        with pytest.raises(ValidationError) as info:
            orders.cancel_order(uow, ctx, order.id, signed_in, actor="firm", reason=reason)
        assert [(v.field, v.description) for v in info.value.violations] == [("reason", said)]
    assert uow.register.orders_by_id[order.id].status == "dispatched"
    done = orders.cancel_order(
        uow, ctx, order.id, signed_in, actor="firm", reason=" 搬迁了，\n以后再约 "
    )
    assert done.history[-1].reason == "搬迁了，\n以后再约" and done.history[-1].actor == "firm"
    with pytest.raises(PreconditionFailed):  # cancelled already
        orders.cancel_order(uow, ctx, order.id, signed_in, actor="firm", reason="")


def test_orders_are_listed_a_page_at_a_time(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    for n in range(3):
        place(uow, ctx, token, f"k{n}")
    page, next_token = orders.list_orders(uow, FIRM, "", 2, "", EVERY)
    rest, last = orders.list_orders(uow, FIRM, "", 2, next_token, EVERY)
    assert len(page) == 2 and len(rest) == 1 and last == ""
    assert {o.id for o in page} | {o.id for o in rest} == set(uow.register.orders_by_id)
    with pytest.raises(ValidationError):
        orders.list_orders(uow, uscc(3), "", 2, next_token, EVERY)  # other filters


def test_an_expert_must_be_valid_field_by_field(uow: FakeUnitOfWork, ctx: Any) -> None:
    with pytest.raises(ValidationError) as info:
        add_expert(uow, ctx, domains=["mining"], phone="12345", conflicts=[FIRM[:17] + "X"])
    assert {v.field for v in info.value.violations} == {
        "expert.domains[0]",  # each bad item by its index as sent (review 72)
        "expert.phone",
        "expert.conflicts[0]",
    }
    assert not uow.register.experts_by_id


# ---------------------------------------------------------------- visits and tickets


def dispatched(uow: FakeUnitOfWork, ctx: Any, token: str) -> Any:
    add_expert(uow, ctx)
    return place(uow, ctx, token)


def finding(severity: str = "major", **change: Any) -> FindingInput:
    return FindingInput(
        change.get("clause_ref", "GEN:ledger"),
        severity,
        "无台账",
        change.get("due_on", ""),
        change.get("photos", ()),
    )


def test_each_finding_becomes_a_ticket_and_a_hazard_found_event(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = dispatched(uow, ctx, token)
    result = visits.record_visit(
        uow,
        ctx,
        order.id,
        [finding("major", photos=(Upload.of(PNG),)), finding("general")],
        visited_on="",
        minutes=60,
        actor="expert",
    )
    major, general = result.tickets
    assert (major.due_on - ctx.today()).days == 15 and (general.due_on - ctx.today()).days == 30
    assert [type(e) for e in uow.register.events] == [HazardFound, HazardFound]
    assert uow.register.events[0] == HazardFound(
        f"booking-{major.id}-found",
        FIRM,
        ctx.today(),
        major.id,
        clause_ref="GEN:ledger",
        severity=Severity.MAJOR,
        due_on=major.due_on,
    )
    assert [p.purpose for p in uow.register.photos.values()] == ["finding"]
    assert uow.register.orders_by_id[order.id].status == "visited"


def test_a_visit_cites_only_clauses_rules_knows_and_waits_for_rules(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = dispatched(uow, ctx, token)
    with pytest.raises(ValidationError) as info:
        visits.record_visit(
            uow, ctx, order.id, [finding(clause_ref="GM2023:99")], visited_on="",
            minutes=60, actor="expert",
        )  # fmt: skip
    assert info.value.violations[0].field == "findings[0].clause_ref"
    ctx.rules.failure = RulesUnavailable("UNAVAILABLE", "down")
    with pytest.raises(Unavailable):
        visits.record_visit(
            uow, ctx, order.id, [finding()], visited_on="", minutes=60, actor="expert"
        )
    assert uow.register.orders_by_id[order.id].status == "dispatched"


def test_a_refused_visit_names_every_bad_field_at_once(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 59 F5: the visit's day, the on-site mobile and the minutes were refused one
    at a time, before the findings were looked at (three rounds on the expert's page)."""
    order = dispatched(uow, ctx, token)
    tomorrow = (ctx.today() + timedelta(days=1)).isoformat()
    with pytest.raises(ValidationError) as info:
        visits.record_visit(
            uow, ctx, order.id, [finding(clause_ref="GM2023:99")], visited_on=tomorrow,
            minutes=-5, actor="expert", on_site_mobile="138",
        )  # fmt: skip
    assert {v.field for v in info.value.violations} == {
        "visited_on",
        "on_site_mobile",
        "minutes_on_site",
        "findings[0].clause_ref",
    }
    assert uow.register.orders_by_id[order.id].status == "dispatched"


def test_only_the_dispatched_expert_records_and_no_findings_close_the_order(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = dispatched(uow, ctx, token)
    # another expert's order reads as an unknown one (reach-notfound)
    with pytest.raises(NotFound, match=re.escape(messages.no_such("order", order.id))):
        visits.record_visit(
            uow, ctx, order.id, [], visited_on="", minutes=5, actor="x", expert_id="E9"
        )
    visits.record_visit(uow, ctx, order.id, [], visited_on="", minutes=5, actor="E1")
    assert uow.register.orders_by_id[order.id].status == "closed"


def test_proof_then_recheck_verifies_and_closes_the_order(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = dispatched(uow, ctx, token)
    ticket = visits.record_visit(
        uow, ctx, order.id, [finding()], visited_on="", minutes=60, actor="E1"
    ).tickets[0]
    with pytest.raises(ValidationError):
        tickets.submit_rectification(
            uow, ctx, ticket.id, FirmAccess(token), note="", photo=b"GIF89a"
        )
    tickets.submit_rectification(uow, ctx, ticket.id, FirmAccess(token), note="已整改", photo=PNG)
    with pytest.raises(PermissionDenied):
        tickets.recheck_ticket(
            uow, ctx, ticket.id, passed=True, note="", new_due_on="", actor="x",
            allowed=lambda t: False,
        )  # fmt: skip
    done = tickets.recheck_ticket(
        uow, ctx, ticket.id, passed=True, note="", new_due_on="", actor="inspector"
    )
    assert done.status == "verified" and not done.closed_late
    assert isinstance(uow.register.events[-1], HazardVerified)
    assert uow.register.orders_by_id[order.id].status == "closed"
    with pytest.raises(PreconditionFailed):
        tickets.submit_rectification(uow, ctx, ticket.id, FirmAccess(token), note="", photo=PNG)


def test_the_same_proof_form_twice_stores_one_proof(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 62: without JavaScript a double tap sent the proof form twice, and two proofs
    were stored (each counted against the round's cap). The form's key: stored once."""
    order = dispatched(uow, ctx, token)
    ticket = visits.record_visit(
        uow, ctx, order.id, [finding()], visited_on="", minutes=60, actor="E1"
    ).tickets[0]
    send = functools.partial(
        tickets.submit_rectification, uow, ctx, ticket.id, FirmAccess(token), photo=PNG
    )
    first = send(note="已整改", idempotency_key="form-1")
    again = send(note="已整改", idempotency_key="form-1")
    assert again.proof_photo_id == first.proof_photo_id
    assert [p.idempotency_key for p in uow.register.photos.values()] == ["form-1"]
    assert again.proofs_this_round() == 1
    # another form (drawn again: a better photo) is a proof of its own; no key, as before
    send(note="更清楚的照片", idempotency_key="form-2")
    send(note="", idempotency_key="")
    assert len(uow.register.photos) == 3
    with pytest.raises(ValidationError) as refused:  # a key no form draws: named
        send(note="", idempotency_key="k" * 65)
    assert [v.field for v in refused.value.violations] == ["idempotency_key"]


def test_a_failed_recheck_needs_a_new_deadline(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    order = dispatched(uow, ctx, token)
    ticket = visits.record_visit(
        uow, ctx, order.id, [finding()], visited_on="", minutes=60, actor="E1"
    ).tickets[0]
    tickets.submit_rectification(uow, ctx, ticket.id, FirmAccess(token), note="", photo=PNG)
    with pytest.raises(ValidationError):
        tickets.recheck_ticket(
            uow, ctx, ticket.id, passed=False, note="", new_due_on="", actor="inspector"
        )
    later = (ctx.today() + timedelta(days=10)).isoformat()
    failed = tickets.recheck_ticket(
        uow, ctx, ticket.id, passed=False, note="照片不清楚", new_due_on=later, actor="inspector"
    )
    assert failed.status == "open" and failed.due_on.isoformat() == later
    assert failed.history[-1].reason == "照片不清楚"


def test_the_sweep_reports_an_overdue_ticket_once_per_deadline(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    order = dispatched(uow, ctx, token)
    visits.record_visit(uow, ctx, order.id, [finding()], visited_on="", minutes=60, actor="E1")
    assert tickets.sweep(uow, ctx) == 0
    ctx.today.advance(16)
    assert tickets.sweep(uow, ctx) == 1
    assert tickets.sweep(uow, ctx) == 0
    assert isinstance(uow.register.events[-1], RectificationOverdue)


def test_pages_read_the_firms_own_records(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    order = dispatched(uow, ctx, token)
    landing = views.landing(uow, ctx, FirmAccess(token, FIRM))  # the firm's session
    assert landing["orders"] == [order] and landing["names"] == {"E1": "专家E1"}
    guide = views.Guidance(ctx.rules)
    page = views.order_page(uow, ctx, FirmAccess(token, FIRM), order.id, guide)
    assert page["phone"] == "138****5678" and page["items"] == ["消防安全检查指导"]
    # the QR token alone: the firm's name and the menu; an order's number and status
    public = views.landing(uow, ctx, FirmAccess(token))
    assert not public["signed_in"] and "orders" not in public and "open_tickets" not in public
    confirmation = views.order_page(uow, ctx, FirmAccess(token), order.id, guide)
    assert not confirmation["signed_in"] and "phone" not in confirmation
    other = qr_codes.issue_qr_code(uow, ctx, FIRM)  # reissued: the old token opens nothing
    with pytest.raises(PermissionDenied):
        views.order_page(uow, ctx, FirmAccess(token), order.id, guide)
    with pytest.raises(NotFound):
        views.order_page(uow, ctx, FirmAccess(other.token), "B000000NOPE", guide)


# ---------------------------------------------------------------- the outbox


def queued(uow: FakeUnitOfWork, ctx: Any, token: str, n: int = 2) -> Any:
    order = dispatched(uow, ctx, token)
    return visits.record_visit(
        uow, ctx, order.id, [finding()] * n, visited_on="", minutes=60, actor="E1"
    )


def test_delivery_marks_messages_delivered_in_order(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    queued(uow, ctx, token)
    report = outbox.deliver_pending(uow, ctx.rules)
    assert report.delivered == 2 and not report.waiting
    assert [p["event_id"] for p in ctx.rules.reported] == [e.event_id for e in uow.register.events]
    assert all(m.claimed_until is None and m.claimed_by == "" for m in uow.register.outbox)


@pytest.mark.parametrize(
    ("error", "failed", "stops"),
    [
        (RulesUnavailable("UNAVAILABLE", "down"), 0, True),  # unreachable: all stop
        (RulesUnavailable("RESOURCE_EXHAUSTED", "slow down"), 0, False),  # backoff, retried
        (RulesRejected("INVALID_ARGUMENT", "bad event"), 1, False),  # parked for good
    ],
)
def test_failures_are_told_apart_by_status_code(
    uow: FakeUnitOfWork,
    ctx: Any,
    token: str,
    error: Exception,
    failed: int,
    stops: bool,
) -> None:
    """Whatever the failure, the firm's second event does not overtake its first: a
    retried one waits out its backoff, a parked one holds the firm (review 49 N5)."""
    queued(uow, ctx, token)
    first = uow.register.outbox[0]
    ctx.rules.refuse[first.event_id] = error
    report = outbox.deliver_pending(uow, ctx.rules)
    assert (report.delivered, report.failed) == (0, failed)
    assert first.attempts == 1 and first.last_error.startswith(str(error).split(":")[0])
    assert (first.next_attempt_at is not None) == isinstance(error, RulesUnavailable)
    assert report.waiting is isinstance(error, RulesUnavailable)
    assert not ctx.rules.reported
    assert uow.register.outbox[1].attempts == 0
    assert first.claimed_until is None and first.claimed_by == ""  # the claim released


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        # the rules call cut at CALL_SECONDS (several rules replicas each timing out)
        (DeadlineExceeded("time is up"), "DEADLINE_EXCEEDED: time is up"),
        (ValueError("a bug"), "INTERNAL: ValueError: a bug"),  # not rules' answer
    ],
)
def test_a_delivery_that_fails_here_backs_its_firm_off_and_releases_its_claim(
    uow: FakeUnitOfWork, ctx: Any, token: str, error: Exception, recorded: str
) -> None:
    """Review 57 D4: the claim is committed before rules is asked, so whatever ends the
    call is recorded: the firm waits out a backoff (an error of booking's own no longer
    ends the pass for every firm), and nothing stays claimed."""
    queued(uow, ctx, token)
    first, second = uow.register.outbox
    ctx.rules.refuse[first.event_id] = error
    with structlog.testing.capture_logs():
        report = outbox.deliver_pending(uow, ctx.rules)
    assert (report.delivered, report.failed, report.waiting) == (0, 0, True)
    assert first.last_error == recorded and first.next_attempt_at is not None
    assert first.failed_at is None and first.claimed_until is None and not first.claimed_by
    assert second.attempts == 0 and not ctx.rules.reported


def test_a_parked_event_holds_its_firm_and_the_worker_says_so(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 49 N5: the firm's second event waits behind its first, refused for good;
    the refusal is logged with how many wait behind it, and the worker's reminder names
    the firm held (and no phone number)."""
    queued(uow, ctx, token)
    first, second = uow.register.outbox
    ctx.rules.refuse[first.event_id] = RulesRejected("NOT_FOUND", "no such firm")
    worker = outbox.OutboxWorker(lambda: uow, ctx.rules)
    with structlog.testing.capture_logs() as logged:
        assert outbox.deliver_pending(uow, ctx.rules).failed == 1
        assert outbox.deliver_pending(uow, ctx.rules).delivered == 0  # held, pass after pass
        worker.remind()
        worker.remind()  # once in a while, not on every pass
    assert second.attempts == 0 and not ctx.rules.reported
    (parked,) = [e for e in logged if e["log_level"] == "error"]
    assert (parked["event_id"], parked["enterprise_id"], parked["held_behind"]) == (
        first.event_id,
        FIRM,
        1,
    )
    (reminder,) = [e for e in logged if e["event"].startswith("firms held")]
    assert reminder["held"] == [
        {
            "enterprise_id": FIRM,
            "event_id": first.event_id,
            "refused": "NOT_FOUND",
            "parked": True,
            "since": as_utc(first.failing_since).isoformat(timespec="seconds"),
            "behind": 1,
        }
    ]
    assert (reminder["firms"], reminder["parked"], reminder["failing"]) == (1, 1, 0)
    assert "13812345678" not in repr(logged)
    del ctx.rules.refuse[first.event_id]
    assert outbox.requeue_failed(uow) == [first.event_id]
    assert [d[0] for d in uow.register.outbox_decisions] == [first.event_id]  # audited
    assert outbox.deliver_pending(uow, ctx.rules).delivered == 2
    assert [p["event_id"] for p in ctx.rules.reported] == [first.event_id, second.event_id]


def test_a_firm_refused_for_now_for_long_is_in_the_worker_s_reminder(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """Review 60 F6: rules answers RESOURCE_EXHAUSTED to the firm's first event at every
    try; once that has lasted HELD_AFTER_SECONDS the firm is held like one behind a parked
    event: the reminder names it (not parked, since its first failure), before that not."""
    queued(uow, ctx, token)
    first = uow.register.outbox[0]
    ctx.rules.refuse[first.event_id] = RulesUnavailable("RESOURCE_EXHAUSTED", "slow down")
    with structlog.testing.capture_logs() as logged:
        assert outbox.deliver_pending(uow, ctx.rules).waiting
        outbox.OutboxWorker(lambda: uow, ctx.rules).remind()
        began = first.failing_since
        assert began is not None and outbox.held_firms(uow) == []  # a moment: a hiccup
        first.failing_since = began - timedelta(seconds=outbox.HELD_AFTER_SECONDS + 1)
        first.next_attempt_at = None  # its backoff is over: tried, refused again
        assert outbox.deliver_pending(uow, ctx.rules).waiting
        outbox.OutboxWorker(lambda: uow, ctx.rules).remind()
    assert first.attempts == 2 and first.failing_since < began  # kept from the first failure
    (reminder,) = [e for e in logged if e["event"].startswith("firms held")]
    assert reminder["held"] == [
        {
            "enterprise_id": FIRM,
            "event_id": first.event_id,
            "refused": "RESOURCE_EXHAUSTED",
            "parked": False,
            "since": as_utc(first.failing_since).isoformat(timespec="seconds"),
            "behind": 1,
        }
    ]
    assert (reminder["parked"], reminder["failing"]) == (0, 1)
    del ctx.rules.refuse[first.event_id]
    first.next_attempt_at = None
    assert outbox.deliver_pending(uow, ctx.rules).delivered == 2
    assert first.failing_since is None and outbox.held_firms(uow) == []


@pytest.mark.parametrize(
    ("error", "maybe_applied"),
    [
        (RulesUnavailable("DEADLINE_EXCEEDED", "no answer in time"), True),
        (RulesUnavailable("UNAVAILABLE", "down"), True),
        (RulesUnavailable("RESOURCE_EXHAUSTED", "slow down"), False),
        (RulesRejected("NOT_FOUND", "no such firm"), False),
    ],
)
def test_a_discard_says_whether_rules_may_have_applied_the_event(
    uow: FakeUnitOfWork, ctx: Any, token: str, error: Exception, maybe_applied: bool
) -> None:
    """Review 60 (minor): an event whose last try got no answer may have been applied by
    rules; discarding it must not say "never sent" (now that every held firm is listed,
    such an event is one an operator may be tempted to drop)."""
    queued(uow, ctx, token)
    first = uow.register.outbox[0]
    ctx.rules.refuse[first.event_id] = error
    with structlog.testing.capture_logs():
        outbox.deliver_pending(uow, ctx.rules)
    with structlog.testing.capture_logs() as logged:
        done = outbox.discard(uow, first.event_id, "已人工核对")
    assert (done.maybe_applied, done.freed) == (maybe_applied, 1)
    (line,) = [e for e in logged if e["event"].startswith("event discarded")]
    assert ("may have applied it" in line["event"]) is maybe_applied


def test_a_booking_number_is_b_the_day_and_six_characters_each_drawn_from_all_32() -> None:
    """Every position of the random part takes each of the 32 characters (one 30-bit draw
    split five bits a character must reach all of them, and nothing else)."""
    ids = [orders.new_order_id(date(2026, 11, 28)) for _ in range(4000)]
    assert all(len(i) == 13 and i.startswith("B261128") for i in ids)
    for position in range(7, 13):
        assert {i[position] for i in ids} == set(orders._ORDER_ID_ALPHABET)
    assert len(set(ids)) > 3990
