"""services/common/call_groups.py: what fails a whole group reaches each of its callers
as an exception of its own (the same type, values and gRPC status as the error alone,
the group's error as its cause), so that tracebacks raised in several threads at once do
not pile up in one object (review 27 N1), whatever kind of error it is (review 29 N3)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors as pe
import pytest
from sqlalchemy import exc as sa_exc

from services.common import errors
from services.common.call_groups import CallGroups, GroupLimits
from services.common.grpc_errors import abort_for


class _Aborted(Exception):
    pass


class _Context:
    """What abort_for calls on a servicer context: the status it would send."""

    def abort(self, code: Any, message: str) -> None:
        raise _Aborted(code, message, ())

    def abort_with_status(self, status: Any) -> None:
        raise _Aborted(status.code, status.details, tuple(status.trailing_metadata))


def _status(exc: Exception) -> tuple[Any, ...]:
    with pytest.raises(_Aborted) as aborted:
        abort_for(exc, _Context())  # type: ignore[arg-type]
    return aborted.value.args


def _busy(folder: Path) -> sqlite3.Error:
    """SQLite's own 'database is locked'."""
    path = folder / "busy.db"
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("create table t(x)")
    holder.execute("begin exclusive")
    try:
        sqlite3.connect(path, timeout=0).execute("insert into t values (1)")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("the second writer was let in")


KINDS: dict[str, Callable[[Path], Exception]] = {
    "sqlite busy": lambda tmp: sa_exc.OperationalError("INSERT", {}, _busy(tmp)),
    "connection lost": lambda _: sa_exc.OperationalError(
        "SELECT", {}, psycopg.OperationalError("server closed"), connection_invalidated=True
    ),
    "statement timeout in a pipeline": lambda _: pe.QueryCanceled("statement timeout"),
    "deadlock": lambda _: pe.DeadlockDetected("deadlock detected"),
    "connection closed": lambda _: psycopg.InterfaceError("the connection is closed"),
    "pool timeout": lambda _: sa_exc.TimeoutError("QueuePool limit"),
    "integrity": lambda _: sa_exc.IntegrityError("INSERT", {}, pe.UniqueViolation("dup")),
    "deadline": lambda _: errors.DeadlineExceeded("deadline"),
    "unavailable": lambda _: errors.Unavailable("rules down"),
    "conflict": lambda _: errors.Conflict("raced"),
    "validation": lambda _: errors.ValidationError([errors.FieldViolation("a.b", "bad")]),
    "rate limited": lambda _: errors.RateLimited("slow", 3.2),
    "other": lambda _: RuntimeError("commit refused"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_caller_of_a_failed_group_raises_its_own_copy_of_the_error(
    kind: str, tmp_path: Path
) -> None:
    failure = KINDS[kind](tmp_path)
    gate, first_in = threading.Event(), threading.Event()

    def apply_one(item: str) -> str:
        if item == "first":
            first_in.set()
            gate.wait(10)  # the others queue meanwhile and form one group after it
        return item

    def apply_group(items: Sequence[str], run: Callable[..., str]) -> list[str | Exception]:
        raise failure

    groups = CallGroups(apply_one, apply_group, GroupLimits(8, 0.5, 1))
    answers: dict[str, object] = {}

    def call(item: str) -> None:
        try:
            answers[item] = groups.call(item)
        except Exception as exc:
            answers[item] = exc

    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert first_in.wait(10)
    others = [threading.Thread(target=call, args=(name,)) for name in ("a", "b", "c")]
    for t in others:
        t.start()
    while groups.waiting() < 3:  # all three queued behind the leader
        threading.Event().wait(0.01)
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert answers["first"] == "first"
    got = [answers[name] for name in ("a", "b", "c")]
    assert len({id(e) for e in got}) == 3 and not any(e is failure for e in got)
    for error in got:
        assert type(error) is type(failure) and isinstance(error, Exception)
        assert error.args == failure.args and vars(error) == vars(failure)
        assert error.__cause__ is failure
        assert _status(error) == _status(failure)
