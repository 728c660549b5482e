"""Booking asks rules within its own caller's deadline, over real gRPC: the rules call of
IssueQrCode (is the firm registered?) and of RecordVisit (a clause booking has not seen)
is given the smaller of the client's 5 s timeout and the time booking's caller has left
(it was always 5 s: booking kept working for a caller that had given up). Whoever calls
without a deadline shorter than that gets the 5 s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from services.booking.adapters.rules_client import RulesClient
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair

TIMEOUT = 5.0  # running_pair's rules client
CALLER = 2.0  # booking's caller's timeout: the server sees a deadline a little past it


class Recording:
    """A rules replica's stub that records the timeout of every call, then makes it."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.timeouts: list[float] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        real = getattr(self.stub, method)

        def call(request: Any, timeout: float, metadata: Any) -> Any:
            self.timeouts.append(timeout)
            return real(request, timeout=timeout, metadata=metadata)

        return call


def recording(pair: Pair) -> Recording:
    client = pair.ctx.rules
    assert isinstance(client, RulesClient)
    [replica] = client._replicas
    spy = Recording(replica.stub)
    replica.stub = spy  # type: ignore[assignment]
    return spy


def test_issue_qr_code_asks_rules_within_its_callers_deadline(pair: Pair) -> None:
    firm = pair.register_firm(1)
    spy = recording(pair)
    pair.booking.IssueQrCode(bpb.IssueQrCodeRequest(enterprise_id=firm), timeout=CALLER)
    assert spy.timeouts and all(0 < t < TIMEOUT - 1 for t in spy.timeouts), spy.timeouts
    for patient in ({"timeout": 60}, {}):  # a later deadline, none at all
        spy.timeouts.clear()
        pair.booking.IssueQrCode(bpb.IssueQrCodeRequest(enterprise_id=firm), **patient)
        assert spy.timeouts and set(spy.timeouts) == {TIMEOUT}, spy.timeouts


def test_record_visit_asks_rules_within_its_callers_deadline(pair: Pair) -> None:
    firm = pair.register_firm(2)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token = pair.issue(firm).token
    placed = pair.booking.CreateOrder(pair.order_request(token, key="k2"), timeout=10)
    spy = recording(pair)
    visit = bpb.RecordVisitRequest(
        order_id=placed.order_id,
        findings=[
            bpb.FindingInput(
                clause_ref="GEN:not-seen-yet", severity=bpb.SEVERITY_GENERAL, description="无台账"
            )
        ],
    )
    with pytest.raises(grpc.RpcError) as info:  # booking asks rules: no such clause
        pair.booking.RecordVisit(visit, timeout=CALLER)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert spy.timeouts and all(0 < t < TIMEOUT - 1 for t in spy.timeouts), spy.timeouts
