"""WatchChanges' slots (service_layer/feed.py `Followers`, review 58 F4): one caller at
most half of them; a slot given back once however often it is released; a follower
that reconnects at once waits for the slot its cancelled stream gives back."""

from __future__ import annotations

import threading

import pytest

from services.common.errors import RateLimited
from services.rules.service_layer import feed
from services.rules.service_layer.feed import Followers


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
