"""`serve --processes N` says `listening` only once every child marked itself ready
(review 49 N4: a wait that ran out, or a stop asked for during the start, fell through to
`listening`)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import processes


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)
    ]
    yield started
    for child in started:
        child.kill()
        child.wait()


def test_every_child_marked_is_ready(tmp_path: Path, children: list) -> None:  # type: ignore[type-arg]
    for child in children:
        (tmp_path / str(child.pid)).touch()
    assert processes._wait_ready(tmp_path, children, threading.Event())


def test_a_wait_that_runs_out_is_not_ready(
    tmp_path: Path,
    children: list,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    monkeypatch.setattr(processes, "READY_SECONDS", 0.3)
    (tmp_path / str(children[0].pid)).touch()  # one of two
    assert not processes._wait_ready(tmp_path, children, threading.Event())


def test_a_stop_asked_during_the_start_is_not_ready(tmp_path: Path, children: list) -> None:  # type: ignore[type-arg]
    stopping = threading.Event()
    stopping.set()
    assert not processes._wait_ready(tmp_path, children, stopping)


def test_a_child_that_ends_during_the_start_is_not_ready(tmp_path: Path, children: list) -> None:  # type: ignore[type-arg]
    children[1].kill()
    children[1].wait()
    assert not processes._wait_ready(tmp_path, children, threading.Event())
