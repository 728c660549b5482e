"""`evaluate --server`'s dispatch (batch_client.py) against a real server: every line
comes back once, in file order, with small batches over several connections answered
in whatever order the server finishes them, lines that are not JSON or not a profile
answered without being sent (a batch of only those sends nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import batch_client, grpc_server
from tests.support import RULESETS, profile, uscc


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server, port = grpc_server.create_server(load_rulebook(RULESETS))
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def _lines(count: int) -> list[tuple[int, Any]]:
    lines: list[tuple[int, Any]] = []
    for n in range(1, count + 1):
        if n % 13 == 0:
            lines.append((n, batch_client.Unreadable("not JSON")))
        elif n % 17 == 0:
            lines.append((n, {**profile(n), "industry": "no_such_industry"}))
        else:
            lines.append((n, profile(n)))
    # a whole batch of lines that are not JSON: nothing of it is sent
    lines.extend((n, batch_client.Unreadable("x")) for n in range(count + 1, count + 6))
    lines.append((count + 6, profile(count + 6)))
    return lines


def test_every_line_once_in_file_order(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_client, "BATCH", 5)
    monkeypatch.setattr(batch_client, "CHANNELS", 3)
    monkeypatch.setattr(batch_client, "WINDOW", 4)
    lines = _lines(300)
    batches = list(batch_client.remote_batches(iter(lines), address, "", "2026-06-30"))
    assert all(len(b) <= 5 for b in batches)
    results = [r for b in batches for r in b]
    assert [where for where, _, _ in results] == [where for where, _ in lines]
    for (where, data, decision), (_, sent) in zip(results, lines, strict=True):
        assert data is sent
        if isinstance(sent, batch_client.Unreadable):
            assert decision is None
        elif sent["industry"] == "no_such_industry":
            assert decision is not None and decision.error.code == 3  # answered here
        else:
            assert decision is not None and not decision.HasField("error")
            assert decision.enterprise_id == uscc(where)


def test_answers_larger_than_grpcs_default_limit_come_back(address: str) -> None:
    """Review hunt 6: 500 firms with 30 open hazards each make an answer of about 6 MB,
    which the client's default 4 MB limit refused for all 500 lines."""
    hazard = {"clause_ref": "GM2023:3(1)", "severity": "general", "status": "open"}
    dates = {"found_on": "2026-03-01", "due_on": "2026-04-01"}
    hazards = [{"hazard_id": f"h{n}", **hazard, **dates} for n in range(30)]
    lines = [(n, profile(n, hazards=hazards)) for n in range(1, 501)]
    batches = list(batch_client.remote_batches(iter(lines), address, "", "2026-06-30"))
    results = [r for b in batches for r in b]
    assert len(results) == 500
    assert sum(len(d.SerializeToString()) for _, _, d in results if d) > 4 * 1024 * 1024
    assert all(d is not None and not d.HasField("error") for _, _, d in results)


@pytest.mark.parametrize("whole", [False, True], ids=["per-item server", "whole-batch server"])
def test_a_line_with_a_control_character_is_rejected_alone(
    whole: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 2: one name with U+0001 cost every line of its batch. The server
    now answers that item alone; a server that checks the batch's text as a whole (as
    before; here with no method in ITEMS_CHECKED) refuses it naming `items[k]`, and the
    client rejects those lines alone and sends the others again."""
    if whole:
        monkeypatch.setattr(grpc_server, "ITEMS_CHECKED", frozenset())
    monkeypatch.setattr(batch_client, "BATCH", 4)
    server, port = grpc_server.create_server(load_rulebook(RULESETS))
    server.start()
    lines: list[tuple[int, Any]] = [(n, profile(n)) for n in range(1, 11)]
    for n in (3, 4, 6):
        lines[n - 1] = (n, profile(n, name=f"企业{n}\u0007"))
    try:
        batches = batch_client.remote_batches(iter(lines), f"127.0.0.1:{port}", "", "2026-06-30")
        results = [r for b in batches for r in b]
    finally:
        server.stop(None)
    assert [where for where, _, _ in results] == list(range(1, 11))
    for where, _, decision in results:
        assert decision is not None and decision.enterprise_id == uscc(where)
        if where in (3, 4, 6):
            assert decision.error.code == 3
            assert decision.error.message == (
                "invalid request: profile.name: must not contain control characters (U+0007 at 3)"
            )
        else:
            assert not decision.HasField("error") and decision.status


def test_an_error_of_the_whole_call_is_every_line_s(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch refused for what it is as a whole (more than 1,000 items: `items`, no
    item named) is every line's rejection."""
    monkeypatch.setattr(batch_client, "BATCH", 1001)
    lines: list[tuple[int, Any]] = [(n, profile(n)) for n in range(1, 1002)]
    [batch] = batch_client.remote_batches(iter(lines), address, "", "2026-06-30")
    errors = {(d.error.code, d.error.message) for _, _, d in batch if d is not None}
    assert len(batch) == 1001 and len(errors) == 1
    [(code, message)] = errors
    assert code == 3 and "items" in message
