"""EventGroups (service_layer/event_groups.py) with a fake register: a caller queued
behind a group that does not finish gives up at its own deadline, unapplied, and the
group's callers are still answered when it ends."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from services.common.context import deadline_in
from services.common.errors import DeadlineExceeded
from services.rules.entrypoints import grpc_server
from services.rules.service_layer.event_groups import EventGroups, GroupLimits


class _Stuck:
    """A register whose first unit of work hangs until released, then fails; counts
    how many were asked for (each one is an attempt to apply)."""

    def __init__(self) -> None:
        self.asked = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Any:
        self.asked += 1
        self.entered.set()
        self.release.wait(60)
        raise RuntimeError("the database went away (fake)")


def _event(n: int) -> dict[str, Any]:
    return {
        "event_id": f"u-{n}",
        "enterprise_id": "91330782MA2000001K",
        "kind": "complaint",
        "occurred_on": "2026-06-30",
        "complaint": {"text": "投诉"},
    }


def test_a_caller_queued_past_its_deadline_leaves_unapplied(rulebook: Any) -> None:
    stuck = _Stuck()
    groups = EventGroups(stuck, grpc_server.context_from(rulebook), GroupLimits(8, 0.0, 1))
    first: dict[str, Any] = {}

    def lead() -> None:
        try:
            groups.report(_event(1), "x")
        except Exception as exc:
            first["error"] = exc

    leader = threading.Thread(target=lead)
    leader.start()
    assert stuck.entered.wait(30)  # the leader's group holds the database
    with deadline_in(0.2), pytest.raises(DeadlineExceeded, match="not applied"):
        groups.report(_event(2), "x")
    stuck.release.set()
    leader.join(30)
    assert isinstance(first.get("error"), RuntimeError)  # answered when its group ended
    assert stuck.asked == 1  # the second event was never tried
