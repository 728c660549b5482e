"""Bad values sent to rules: INVALID_ARGUMENT on SQLite and PostgreSQL alike, nothing
stored, and the refusal quotes at most a short prefix of what was sent (issue 13)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.conftest import upsert
from tests.support import profile, uscc

HUGE = "x" * (1 << 20)


def fields_of(error: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    out: set[str] = set()
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad)
        out.update(v.field for v in bad.field_violations)
    return out


def assert_small(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details()[:200])
    assert len(error.details() or "") < 1000
    trailers = dict(error.trailing_metadata() or ())
    assert len(trailers.get("grpc-status-details-bin", b"")) < 4000


@pytest.mark.parametrize(
    "bad", ["\x00", "\x1f", "\x7f", "\n", "\x85", "\u202e", "\u2028", "\ufeff"]
)
def test_control_characters_in_a_firm_name_are_refused_on_both_databases(
    register_stub: rules_pb2_grpc.RulesServiceStub, bad: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        upsert(register_stub, profile(1, name=f"企业{bad}名称"))
    assert_small(info.value)
    assert "profile.name" in fields_of(info.value)
    with pytest.raises(grpc.RpcError) as info:
        register_stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1)), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("name", ["\u200b\u200b", "\u3000\u200b", "\u2060"])
def test_a_firm_name_of_nothing_visible_is_refused(
    register_stub: rules_pb2_grpc.RulesServiceStub, name: str
) -> None:
    """Review 47b N3 / 47a F6: zero-width characters alone passed as a name."""
    with pytest.raises(grpc.RpcError) as info:
        upsert(register_stub, profile(1, name=name))
    assert_small(info.value)
    assert "profile.name" in fields_of(info.value)


def test_control_characters_in_an_event_are_refused(
    register_stub: rules_pb2_grpc.RulesServiceStub,
) -> None:
    upsert(register_stub, profile(2))
    event = pb.EnterpriseEvent(
        event_id="ev\x00il",
        enterprise_id=uscc(2),
        kind=pb.EVENT_KIND_COMPLAINT,
        occurred_on="2026-06-01",
    )
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=10)
    assert_small(info.value)
    assert fields_of(info.value) == {"event.event_id"}


def test_a_huge_fact_key_enum_or_date_is_quoted_only_in_part(
    rules_stub: rules_pb2_grpc.RulesServiceStub,
) -> None:
    message = profile_from_json(profile(3))
    message.facts[HUGE].bool_value = True
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(pb.EvaluateRequest(profile=message), timeout=30)
    assert_small(info.value)
    for as_of in (HUGE, "9" * 5000):
        with pytest.raises(grpc.RpcError) as info:
            rules_stub.Evaluate(
                pb.EvaluateRequest(profile=profile_from_json(profile(3)), as_of=as_of), timeout=30
            )
        assert_small(info.value)
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.GetStandard(pb.GetStandardRequest(standard_id=HUGE), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(info.value.details() or "") < 1000


def test_a_control_character_in_a_streamed_profile_answers_that_item_alone(
    rules_stub: rules_pb2_grpc.RulesServiceStub,
) -> None:
    items = [profile(4), profile(5, name="企业\x00"), profile(6)]
    requests = [
        pb.EvaluateRequest(profile=profile_from_json(p), request_id=str(i), as_of="2026-06-30")
        for i, p in enumerate(items)
    ]
    answers = list(rules_stub.EvaluateStream(iter(requests), timeout=30))
    assert [a.request_id for a in answers] == ["0", "1", "2"]
    assert [a.HasField("error") for a in answers] == [False, True, False]
    assert answers[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
