"""services/common/call_groups.py: what fails a whole group reaches each of its callers
as an exception of its own (the same type and values, the group's error as its cause),
so that tracebacks raised in several threads at once do not pile up in one object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from services.common.call_groups import CallGroups, GroupLimits


class GroupFailed(RuntimeError):
    pass


def test_each_caller_of_a_failed_group_raises_its_own_copy_of_the_error() -> None:
    gate, first_in = threading.Event(), threading.Event()
    failure = GroupFailed("the database went away", 7)

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
        except GroupFailed as exc:
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
    errors = [answers[name] for name in ("a", "b", "c")]
    assert all(isinstance(e, GroupFailed) and e.args == failure.args for e in errors), errors
    assert len({id(e) for e in errors}) == 3 and failure not in errors
    assert all(e.__cause__ is failure for e in errors if isinstance(e, GroupFailed))
