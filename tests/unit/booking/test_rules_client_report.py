"""The rules client's ReportEvent: an event it cannot encode (review 60 F3)."""

from __future__ import annotations

import pytest

from services.booking.adapters.rules_client import RulesClient
from services.booking.domain.rules_service import EventUnreadable, RulesRejected


def test_an_event_booking_cannot_encode_is_parked_saying_so() -> None:
    """Review 60 F3: the rules client turns a stored event it cannot put into rules' form
    into EventUnreadable (a refusal for good, status UNREADABLE), before sending anything."""
    client = RulesClient("127.0.0.1:9", timeout=1)  # nothing listens: never reached
    for payload in (
        {"event_id": "e", "hazard": {"photo_count": 2}},  # a field of a newer version
        {"event_id": "e", "kind": "EVENT_KIND_OF_THE_FUTURE"},
        {"event_id": "e", "occurred_on": 20261201},
    ):
        with pytest.raises(EventUnreadable) as caught:
            client.report(payload)
        assert caught.value.status == "UNREADABLE" and isinstance(caught.value, RulesRejected)
        assert "another version of booking" in str(caught.value)
        assert "\n" not in str(caught.value)  # one line in the listing and the log
