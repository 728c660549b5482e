"""Long log lines of `serve --processes N` do not interleave (review 50 N4).

The processes of a set share one stderr. A write of more than PIPE_BUF bytes to a pipe is
not atomic: two processes' long lines (tracebacks) could come out cut into each other, and
a JSON-lines reader would lose both. Here several real processes log long lines through
the project's logging set-up into one pipe at once, with and without the set's lock file;
with it, every line must be one whole JSON object."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from services.common.processes import LOG_LOCK

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import structlog
    from services.common import logging as project_logging

    project_logging.configure(json=True)
    log = structlog.get_logger("test")
    Path(sys.argv[2], f"ready-{sys.argv[1]}").touch()
    go = Path(sys.argv[2], "go")
    while not go.exists():  # every writer starts at once (each takes ~0.2 s to start)
        time.sleep(0.002)
    for i in range(60):
        log.error("long line", writer=sys.argv[1], n=i, detail="长" * 20000)
    """
)


def _run_writers(env: dict[str, str], folder: Path) -> list[str]:
    """Three real processes' long lines into one pipe, all released at once (a writer
    that started late would otherwise find the others done: nothing to interleave with)."""
    read, write = os.pipe()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n), str(folder)],
            stderr=write,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        for n in range(3)
    ]
    os.close(write)
    deadline = time.monotonic() + 60
    while not all((folder / f"ready-{n}").exists() for n in range(3)):
        assert time.monotonic() < deadline, "the writers did not start"
        time.sleep(0.01)
    (folder / "go").touch()
    with os.fdopen(read, "rb") as pipe:
        out = pipe.read()
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    return out.decode("utf-8", errors="replace").splitlines()


def _whole(lines: list[str]) -> int:
    count = 0
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        count += event.get("detail") == "长" * 20000
    return count


def test_long_lines_from_a_process_set_stay_whole(tmp_path: Path):
    lock = tmp_path / "log.lock"
    lock.touch()
    lines = _run_writers({**os.environ, LOG_LOCK: str(lock)}, tmp_path)
    assert _whole(lines) == 3 * 60
    assert len(lines) == 3 * 60


def test_without_the_lock_such_lines_can_interleave(tmp_path: Path):
    """The failure the lock prevents is real on this machine (else the test above
    proves nothing): without it, some lines come out broken."""
    env = {k: v for k, v in os.environ.items() if k != LOG_LOCK}
    broken = 0
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        lines = _run_writers(env, folder)
        broken = 3 * 60 - _whole(lines)
        if broken:
            break
    assert broken > 0


LONG_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import structlog
    from services.common import logging as project_logging

    project_logging.configure(json=True)
    log = structlog.get_logger("test")
    lock = Path(os.environ["LOCK_PATH"])
    log.error("long line", n=1, detail="长" * 20000)
    print("first", lock.exists())
    lock.unlink()  # a /tmp cleaner, while the process serves
    log.error("long line", n=2, detail="长" * 20000)
    print("again", lock.exists())
    """
)


def test_a_lock_file_removed_while_serving_is_created_again(tmp_path: Path):
    """The lock file was opened once and its descriptor (or its absence) kept for the
    process's life: once removed, each process locked a file of its own (or none) and
    the set's long lines could interleave again. It is now created again and opened
    anew, at the path the other processes open too."""
    lock = tmp_path / "log.lock"
    lock.touch()  # as `serve --processes N`'s parent does
    env = {**os.environ, LOG_LOCK: str(lock), "LOCK_PATH": str(lock)}
    done = subprocess.run(
        [sys.executable, "-c", LONG_WRITER],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["first True", "again True"]
    assert sum('"long line"' in line for line in done.stderr.splitlines()) == 2
