"""A recheck's conclusion is about the proof the person looked at (recheck-round): one
made on a proof the firm has since replaced (a new round's proof after a failed recheck
in another tab, or a better photo) is refused, nothing changed; a caller that does not
say which proof it looked at is served as before (fake unit of work and rules service)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.booking.domain import messages
from services.booking.domain.events import HazardVerified
from services.booking.domain.tickets import NOT_WAITING, PROOF_CHANGED, RecheckRefused
from services.booking.service_layer import tickets
from services.common.errors import ValidationError
from tests.unit.booking.fakes import FakeUnitOfWork
from tests.unit.booking.test_ticket_lateness import events_of, prove, visited


def recheck(
    uow: FakeUnitOfWork, ctx: Any, ticket_id: str, seen: int | None, *, passed: bool = True
) -> Any:
    later = (ctx.today() + timedelta(days=10)).isoformat()
    return tickets.recheck_ticket(
        uow, ctx, ticket_id, passed=passed, note="" if passed else "照片不清楚",
        new_due_on="" if passed else later, actor="inspector", proof_seen=seen,
    )  # fmt: skip


def test_a_pass_made_on_the_last_round_is_refused_after_new_proof(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    """The defect's scenario: tab A opened on round 1's proof; tab B failed it; the firm
    sent round 2's proof; tab A's pass would verify a proof nobody looked at."""
    t = visited(uow, ctx, token)
    prove(uow, ctx, token, t.id)
    opened_on = t.proof_number()  # tab A
    assert opened_on == 1
    recheck(uow, ctx, t.id, opened_on, passed=False)  # tab B
    ctx.today.advance(2)
    prove(uow, ctx, token, t.id)  # round 2
    assert t.proof_number() == 2

    with pytest.raises(RecheckRefused) as refused:
        recheck(uow, ctx, t.id, opened_on)  # tab A's pass
    assert refused.value.reason == PROOF_CHANGED
    assert refused.value.metadata == {"ticket_id": t.id, "status": "submitted", "proof_number": "2"}
    assert refused.value.message == messages.RECHECK_PROOF_CHANGED_API.format(seen=1, now=2)
    assert t.status == "submitted" and t.verified_on is None
    assert not events_of(uow, HazardVerified)

    # a recheck made on the proof the ticket holds now goes through
    assert recheck(uow, ctx, t.id, 2).status == "verified"
    assert len(events_of(uow, HazardVerified)) == 1


def test_a_better_photo_sent_while_the_page_was_open_refuses_a_fail_too(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    prove(uow, ctx, token, t.id)
    prove(uow, ctx, token, t.id)  # "a better photo", same round
    due = t.due_on
    with pytest.raises(RecheckRefused) as refused:
        recheck(uow, ctx, t.id, 1, passed=False)
    assert refused.value.reason == PROOF_CHANGED
    assert t.status == "submitted" and t.due_on == due  # no new deadline, nothing sent back


def test_a_ticket_no_longer_waiting_says_so_before_the_proof(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    prove(uow, ctx, token, t.id)
    recheck(uow, ctx, t.id, 1, passed=False)
    with pytest.raises(RecheckRefused) as refused:  # reopened, no proof since
        recheck(uow, ctx, t.id, 1)
    assert refused.value.reason == NOT_WAITING
    prove(uow, ctx, token, t.id)
    recheck(uow, ctx, t.id, 2)
    with pytest.raises(RecheckRefused) as refused:  # verified: whatever proof was seen
        recheck(uow, ctx, t.id, 1)
    assert refused.value.reason == NOT_WAITING


def test_without_the_proof_seen_a_recheck_applies_as_before(
    uow: FakeUnitOfWork, ctx: Any, token: str
) -> None:
    t = visited(uow, ctx, token)
    prove(uow, ctx, token, t.id)
    recheck(uow, ctx, t.id, None, passed=False)
    prove(uow, ctx, token, t.id)
    assert recheck(uow, ctx, t.id, None).status == "verified"


@pytest.mark.parametrize("seen", [0, -1])
def test_a_proof_number_below_one_names_the_field_with_the_others(
    uow: FakeUnitOfWork, ctx: Any, token: str, seen: int
) -> None:
    t = visited(uow, ctx, token)
    prove(uow, ctx, token, t.id)
    with pytest.raises(ValidationError) as bad:
        tickets.recheck_ticket(
            uow, ctx, t.id, passed=False, note="", new_due_on="", actor="inspector",
            proof_seen=seen,
        )  # fmt: skip
    assert [v.field for v in bad.value.violations] == ["note", "new_due_on", "proof_number"]
    assert t.status == "submitted"
