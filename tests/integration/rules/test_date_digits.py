"""Review 72 (an integrator's view): a date written with digits other than ASCII 0-9
(full-width ２０２６ from a Chinese input method, Arabic-Indic digits) or a day the
calendar does not have is refused naming the field in the project's own words, never
with Python's parser text ("Invalid isoformat string", "day is out of range for
month"), and a month's refusal quotes what was sent, not what the server made of it."""

from __future__ import annotations

import grpc
import pytest

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.integration.conftest import upsert, violations
from tests.support import profile

PYTHON_WORDS = ("isoformat", "out of range for month")


@pytest.mark.parametrize("as_of", ["２０２６-11-29", "٢٠٢٦-١١-٢٩", "2026-1１-29", "2026-02-30"])
def test_evaluate_refuses_a_date_of_other_digits_or_no_such_day_in_its_own_words(
    rules_stub: rules_pb2_grpc.RulesServiceStub, as_of: str
) -> None:
    request = pb.EvaluateRequest(profile=profile_from_json(profile(3)), as_of=as_of)
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(info.value)
    assert set(found) == {"as_of"}, found
    assert not any(words in found["as_of"] for words in PYTHON_WORDS), found
    assert "YYYY-MM-DD" in found["as_of"], found
    # an item of a batch: the same words in its own error
    batch = rules_stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[request]), timeout=10)
    assert batch.decisions[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not any(words in batch.decisions[0].error.message for words in PYTHON_WORDS)


@pytest.mark.parametrize("month", ["２０２６-11", "2026-１1", "2026-13"])
def test_whitelist_sizes_refuse_a_month_of_other_digits_quoting_what_was_sent(
    register_stub: rules_pb2_grpc.RulesServiceStub, month: str
) -> None:
    upsert(register_stub, profile(1))
    with pytest.raises(grpc.RpcError) as info:
        register_stub.ListWhitelistSizes(pb.ListWhitelistSizesRequest(from_month=month), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(info.value)
    assert set(found) == {"from_month"}, found
    assert "YYYY-MM" in found["from_month"], found
    assert not any(words in found["from_month"] for words in PYTHON_WORDS), found
    assert f"{month}-01" not in found["from_month"], found


@pytest.mark.parametrize("day", ["1900-01-01", "9999-12-31"])
def test_a_record_dated_outside_1949_to_2199_is_refused_naming_the_range(
    rules_stub: rules_pb2_grpc.RulesServiceStub, day: str
) -> None:
    """Review 72: an accident of 1900 was refused as "not a calendar date", which sends an
    integrator looking for a typo; the refusal names the range README documents."""
    message = profile_from_json(profile(3))
    message.accidents.add(occurred_on=day, level=pb.ACCIDENT_LEVEL_GENERAL)
    with pytest.raises(grpc.RpcError) as info:
        rules_stub.Evaluate(pb.EvaluateRequest(profile=message), timeout=10)
    found = violations(info.value)
    assert set(found) == {"profile.accidents[0].occurred_on"}, found
    assert "1949" in found["profile.accidents[0].occurred_on"], found
    assert "2199" in found["profile.accidents[0].occurred_on"], found
