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
