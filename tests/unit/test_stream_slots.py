"""ReportEventStream's slots (services/common/stream_slots.py `StreamSlots`, `CallSlot`):
a writer that reconnects at once waits for the slot its cancelled stream gives back, one
stream at a time and only where a database worker is left for the unary calls; a slot is
given back when its call ends, unless a write is under way, then when the write is done."""

from __future__ import annotations

import threading

import pytest

from services.common.errors import RateLimited
from services.common.stream_slots import CallSlot, StreamSlots


def test_a_writer_reconnecting_at_once_waits_for_the_slot_it_gives_back() -> None:
    """Its cancel is heard a moment after its new stream: the new one waits for it (here
    as long as it takes: a busy machine may run the timer late)."""
    slots = StreamSlots("ReportEventStream", db_workers=8, most=4, grace=600)
    first, _second = slots.hold("a"), slots.hold("a")  # its share
    threading.Timer(0.05, first).start()
    slots.hold("a")  # admitted once the cancelled stream's slot is back
    assert slots.open_count() == 2


def test_one_stream_at_a_time_waits_and_the_others_are_refused_at_once() -> None:
    """A waiting stream holds a database worker: a second one asked for meanwhile is
    refused without waiting."""
    slots = StreamSlots("ReportEventStream", db_workers=8, most=4, grace=600)
    held = [slots.hold(caller) for caller in ("a", "a", "b", "b")]  # every slot taken
    waiting_entered = threading.Event()
    outcome: list[object] = []

    def wait_for_one() -> None:
        waiting_entered.set()
        try:
            outcome.append(slots.hold("c"))
        except RateLimited as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_one)
    waiter.start()
    assert waiting_entered.wait(10)
    for _ in range(3000):  # the first one is waiting (up to its grace)
        if slots._waiting or outcome:
            break
        threading.Event().wait(0.01)
    assert slots._waiting == 1, outcome
    with pytest.raises(RateLimited, match="per process"):
        slots.hold("d")  # refused at once: one waits already
    held[0]()  # a slot comes back: the waiting one takes it
    waiter.join(10)
    assert len(outcome) == 1 and callable(outcome[0])
    assert slots.open_count() == 4


def test_with_two_database_workers_a_stream_does_not_wait() -> None:
    """One stream there, and one worker for the unary calls: a waiting stream would take
    it, so the next stream is refused at once."""
    slots = StreamSlots("ReportEventStream", db_workers=2, most=4, grace=600)
    release = slots.hold("a")
    later = threading.Timer(2, release)  # a stream that waited would get this slot
    later.start()
    with pytest.raises(RateLimited):
        slots.hold("b")
    later.cancel()


def test_a_slot_comes_back_when_its_call_ends_or_its_write_is_done() -> None:
    slots = StreamSlots("ReportEventStream", db_workers=8, most=4, grace=0.0)
    idle = CallSlot(slots.hold("a"))
    woken = threading.Event()
    idle.waking(woken.set)
    idle.ended()  # cancelled while waiting for its client: back at once, handler woken
    assert slots.open_count() == 0 and woken.is_set()
    assert not idle.begin()  # nothing is written for a call that has ended
    idle.release()  # the handler returns: counted once
    assert slots.open_count() == 0

    writing = CallSlot(slots.hold("a"))
    assert writing.begin()
    writing.ended()  # cancelled during a group's write: its worker is still busy
    assert slots.open_count() == 1
    writing.done()  # the write is done: back now
    assert slots.open_count() == 0
    writing.release()
    assert slots.open_count() == 0

    finished = CallSlot(slots.hold("a"))
    assert finished.begin()
    finished.done()
    assert slots.open_count() == 1  # the call goes on
    finished.release()
    finished.ended()  # gRPC's callback after the handler returned
    assert slots.open_count() == 0
