"""services/common/grpc_errors.py: a failed stream or batch item (`item_status`) and a
failed unary call (`abort_for`) answer one error the same way, from one classification
(`classify`): the same code, message and details; a retry hint both as a RetryInfo detail
and, on a unary call, as a `retry-after` trailer; a passed deadline as a bare
DEADLINE_EXCEEDED."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common import errors
from services.common.context import deadline_in
from services.common.grpc_errors import abort_for, item_status
from tests.unit.test_call_groups import KINDS


class _Aborted(Exception):
    pass


class _Context:
    """What abort_for calls on a servicer context."""

    def abort(self, code: Any, message: str) -> None:
        raise _Aborted(code.value[0], message, None, ())

    def abort_with_status(self, status: Any) -> None:
        trailers = dict(status.trailing_metadata)
        sent = status_pb2.Status.FromString(trailers.pop("grpc-status-details-bin"))
        assert sent.code == status.code.value[0] and sent.message == status.details
        raise _Aborted(status.code.value[0], status.details, sent, tuple(trailers.items()))


def _call(exc: Exception) -> tuple[Any, ...]:
    with pytest.raises(_Aborted) as aborted:
        abort_for(exc, _Context())  # type: ignore[arg-type]
    return aborted.value.args


def _retry_seconds(status: status_pb2.Status) -> list[int]:
    found = []
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            found.append(info.retry_delay.seconds)
    return found


EXPECTED = {
    "sqlite busy": code_pb2.UNAVAILABLE,
    "connection lost": code_pb2.UNAVAILABLE,
    "statement timeout in a pipeline": code_pb2.UNAVAILABLE,
    "deadlock": code_pb2.UNAVAILABLE,
    "connection closed": code_pb2.UNAVAILABLE,
    "pool timeout": code_pb2.UNAVAILABLE,
    "integrity": code_pb2.INTERNAL,
    "deadline": code_pb2.DEADLINE_EXCEEDED,
    "unavailable": code_pb2.UNAVAILABLE,
    "conflict": code_pb2.ABORTED,
    "validation": code_pb2.INVALID_ARGUMENT,
    "rate limited": code_pb2.RESOURCE_EXHAUSTED,
    "other": code_pb2.INTERNAL,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_item_and_a_unary_call_answer_an_error_alike(kind: str, tmp_path: Path) -> None:
    exc = KINDS[kind](tmp_path)
    item = item_status(exc)
    code, message, sent, trailers = _call(exc)
    assert item.code == code == EXPECTED[kind]
    assert sent == item  # code, message and every detail, RetryInfo included
    retry = _retry_seconds(item)
    assert trailers == ((("retry-after", str(retry[0])),) if retry else ())
    if kind == "rate limited":
        assert retry == [4]  # 3.2 s told as whole seconds, never early
    if EXPECTED[kind] == code_pb2.UNAVAILABLE and kind != "unavailable":
        assert retry == [1] and message == "the database is unavailable; try again"


def test_a_validation_error_names_its_field_in_both() -> None:
    exc = errors.ValidationError([errors.FieldViolation("profile.name", "控制字符")])
    for status in (item_status(exc), _call(exc)[2]):
        bad = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad)
        assert [v.field for v in bad.field_violations] == ["profile.name"]


@pytest.mark.parametrize("kind", ["sqlite busy", "pool timeout", "deadlock"])
def test_a_database_error_after_the_deadline_is_a_bare_deadline_exceeded(
    kind: str, tmp_path: Path
) -> None:
    exc = KINDS[kind](tmp_path)
    with deadline_in(-1):
        item = item_status(exc)
        code, message, sent, trailers = _call(exc)
    assert item.code == code == code_pb2.DEADLINE_EXCEEDED
    assert item.message == message == "the deadline passed"
    assert not item.details and sent is None and trailers == ()


def test_a_domain_deadline_error_keeps_its_details_after_the_deadline() -> None:
    exc = errors.DeadlineExceeded("rules did not answer in time")
    with deadline_in(-1):
        code, message, sent, _ = _call(exc)
    assert code == code_pb2.DEADLINE_EXCEEDED and sent == item_status(exc)
    assert message == "rules did not answer in time"


def test_a_unary_database_error_binds_its_cause_for_the_call_log_line(tmp_path: Path) -> None:
    """Review 39 N3: the per-RPC line says why (the `error` binding); INTERNAL is logged
    with its traceback; grpc's own abort passes through untouched."""
    structlog.contextvars.clear_contextvars()
    _call(KINDS["sqlite busy"](tmp_path))
    assert "locked" in structlog.contextvars.get_contextvars()["error"]
    structlog.contextvars.clear_contextvars()
    _call(errors.Unavailable("rules down"))  # a domain error: its own message says why
    assert "error" not in structlog.contextvars.get_contextvars()
    with structlog.testing.capture_logs() as logged:
        _call(RuntimeError("commit refused"))
        item_status(RuntimeError("commit refused"))
    assert [e["event"] for e in logged] == [
        "unhandled error in RPC handler",
        "unhandled error in an item of a stream or batch",
    ]
    aborted = Exception()  # what grpc's context.abort raises
    with pytest.raises(Exception) as passed:
        abort_for(aborted, _Context())  # type: ignore[arg-type]
    assert passed.value is aborted
