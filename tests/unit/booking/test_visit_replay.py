"""RecordVisit's idempotency key (reviews 67 and 68), with the in-memory fakes: a visit
recorded with a key while another call with the same key was checking its findings is
that call's answer too, found again under the order's lock (its first look, before the
findings, saw none); another expert's call with the key is not answered with it."""

from __future__ import annotations

from typing import Any

import pytest

from services.booking.service_layer import visits
from services.common.errors import NotFound, PreconditionFailed
from tests.unit.booking.fakes import FakeUnitOfWork
from tests.unit.booking.test_use_cases import add_expert, finding, place


def _record(uow: FakeUnitOfWork, ctx: Any, order_id: str, **more: Any) -> visits.VisitResult:
    return visits.record_visit(
        uow, ctx, order_id, [finding(), finding("general")], visited_on="", minutes=30,
        actor="E1", idempotency_key="form-1", **more,
    )  # fmt: skip


def test_a_visit_recorded_meanwhile_is_found_under_the_lock(
    uow: FakeUnitOfWork, ctx: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_expert(uow, ctx)
    order = place(uow, ctx, token)
    first = _record(uow, ctx, order.id)
    r = uow.register
    written = (len(r.visits), len(r.tickets_by_id), len(r.events), uow.commits)
    monkeypatch.setattr(visits, "_replay", lambda *_: None)  # the first look saw none
    again = _record(uow, ctx, order.id)
    assert again.visit.id == first.visit.id
    assert [t.id for t in again.tickets] == [t.id for t in first.tickets]
    assert (len(r.visits), len(r.tickets_by_id), len(r.events), uow.commits) == written


def test_the_key_answers_only_its_own_expert(uow: FakeUnitOfWork, ctx: Any, token: str) -> None:
    add_expert(uow, ctx)
    order = place(uow, ctx, token)
    _record(uow, ctx, order.id, expert_id="E1")
    with pytest.raises(NotFound):  # another expert's order reads as unknown
        _record(uow, ctx, order.id, expert_id="E2")
    with pytest.raises(PreconditionFailed):
        visits.record_visit(
            uow, ctx, order.id, [], visited_on="", minutes=30, actor="E1",
            idempotency_key="form-2",
        )  # fmt: skip
