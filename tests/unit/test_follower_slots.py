"""WatchChanges' slots (service_layer/feed.py `Followers`, review 58 F4): one caller at
most half of them; a slot given back once however often it is released; a follower
that reconnects at once waits for the slot its cancelled stream gives back."""

from __future__ import annotations

import threading

import pytest

from services.common.errors import RateLimited
from services.rules.service_layer import feed
from services.rules.service_layer.feed import Followers
from tests.faults import wait_until


def test_one_caller_at_most_half_and_a_release_counts_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "SLOT_GRACE_SECONDS", 0.0)
    slots = Followers(4)
    mine = [slots.hold("a"), slots.hold("a")]
    with pytest.raises(RateLimited, match="per caller"):
        slots.hold("a")
    theirs = [slots.hold("b"), slots.hold(None)]
    with pytest.raises(RateLimited, match="per process"):
        slots.hold("c")
    for release in mine:
        release()
        release()  # the call's end and the handler's return: the slot given back once
    assert slots.open_count() == 2
    for release in theirs:
        release()
    assert slots.open_count() == 0


def test_a_follower_reconnecting_at_once_waits_for_the_slot_it_gives_back() -> None:
    """Its cancel is heard a moment after its new stream: the new one waits for it."""
    slots = Followers(4)
    first, _second = slots.hold("a"), slots.hold("a")
    threading.Timer(0.05, first).start()
    slots.hold("a")  # admitted once the cancelled stream's slot is back
    assert slots.open_count() == 2


def test_only_a_caller_holding_a_slot_waits_for_one_and_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review 61 R61-3: every stream refused for want of a slot waited for one on a call
    thread. Now a caller that holds no slot (it cannot be reconnecting) is refused at
    once, and only one stream of a slot holder waits at a time (the wait made long
    here: a stream that waited would not be refused before the test's join gives up)."""
    monkeypatch.setattr(feed, "SLOT_GRACE_SECONDS", 600.0)
    slots = Followers(4)
    releases = [slots.hold(c) for c in ("a", "a", "b", "b")]
    refused: list[str] = []
    admitted: list[str] = []

    def ask(caller: str) -> None:
        try:
            slots.hold(caller)
            admitted.append(caller)
        except RateLimited:
            refused.append(caller)

    askers = [threading.Thread(target=ask, args=(c,)) for c in ("c", "c", "a", "a", "a")]
    for t in askers:
        t.start()
    wait_until(lambda: len(refused) == 4, 30)  # at once, not after the grace
    assert sorted(refused) == ["a", "a", "c", "c"]  # "c" holds no slot; one "a" waits
    assert slots.waiting_count() == 1
    releases[0]()  # "a" gives a slot back: its waiting stream takes it
    for t in askers:
        t.join(30)
    assert admitted == ["a"] and slots.waiting_count() == 0
