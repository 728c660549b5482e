"""Visit photos a killed web process left in the spool are removed when a process starts
(review 60 F5): a process killed mid-upload (an OOM kill, kill -9, power lost) removes
nothing, and its visit's photos (personal data from site visits) stayed in TMPDIR for
good. Several processes may share the spool root, so only what no live process owns is
removed: each process spools in a directory of its own, flocked while it lives.

Real processes: a booking web server (uvicorn, real rules and booking servers) killed
with SIGKILL while an upload is in its spool; small processes that hold a spool while
the test's own starts and sweeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.booking.entrypoints.web.uploads import SPOOL_PREFIX, UploadLimits, Uploads
from tests.support import ROOT

# a web server with a visit upload stalled in its spool, reported by "ready"
SERVER = """
import socket, sys, time
from pathlib import Path
from services.booking.entrypoints.web.uploads import UploadLimits, Uploads
from tests.booking_env import running_pair
from tests.e2e.test_staff_pages import dispatched
from tests.integration.booking.test_visit_uploads import _serve
from tests.integration.booking.test_web_review_47a import jpeg, visit_form

tmp, spool = Path(sys.argv[1]), Path(sys.argv[2])
MB = 1024 * 1024
with running_pair(tmp) as pair:
    for web in _serve(pair, uploads=Uploads(UploadLimits(directory=str(spool)))):
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        web.user("zhuanjia", "expert", expert_id="E1")
        order_id, _ = dispatched(pair, 61, "稠城街道")
        c, tok = web.signed_in("zhuanjia")
        b = "----crash"
        body = b"".join(
            f'--{b}\\r\\nContent-Disposition: form-data; name="{k}"\\r\\n\\r\\n{v}\\r\\n'.encode()
            for k, v in visit_form(c, order_id, tok, 1).items()
        ) + (
            f'--{b}\\r\\nContent-Disposition: form-data; name="photo_0"; filename="p.jpg"'
            f'\\r\\nContent-Type: image/jpeg\\r\\n\\r\\n'
        ).encode() + jpeg(2 * MB, 0)
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        s = socket.create_connection(("127.0.0.1", web.http.port))
        s.sendall(
            (
                f"POST /staff/orders/{order_id}/visit HTTP/1.1\\r\\nHost: x\\r\\n"
                f"Cookie: {cookie}\\r\\nContent-Type: multipart/form-data; boundary={b}\\r\\n"
                f"Content-Length: {len(body) + MB}\\r\\n\\r\\n"
            ).encode() + body
        )
        while sum(p.stat().st_size for p in spool.rglob("*.photo")) < 2 * MB:
            time.sleep(0.05)
        print("ready", flush=True)
        time.sleep(600)
"""

# a process holding a spool of its own, a visit's photo in it, reported by "ready"
HOLDER = """
import sys, tempfile, time
from pathlib import Path
from services.booking.entrypoints.web.uploads import UploadLimits, Uploads
uploads = Uploads(UploadLimits(directory=sys.argv[1]))
visit = Path(tempfile.mkdtemp(prefix="visit-", dir=uploads.spool))
(visit / "1.photo").write_bytes(b"photo")
print("ready", flush=True)
time.sleep(600)
"""


@contextmanager
def _running(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # its log lines, then "ready"
            if line.strip() == "ready":
                break
        else:
            raise AssertionError(f"the process ended: {proc.wait(30)}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def _photos(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.photo"))


def test_a_web_process_killed_mid_upload_leaves_nothing_after_the_next_start(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    with _running(SERVER, str(tmp_path), str(spool)) as server:
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    assert _photos(spool)  # the crash left its upload's photo behind
    Uploads(UploadLimits(directory=str(spool)))  # the next process starts
    assert _photos(spool) == []


def test_only_what_no_live_process_owns_is_removed(tmp_path: Path) -> None:
    """Processes sharing a spool root: a live one's visit survives another's start; once
    it is killed, the next start removes it. A visit directory of the layout before
    (right under the root) is removed only once untouched for an hour, and only when it
    holds nothing but photos as the page names them; anything else is left alone."""
    root = tmp_path / "spool"
    root.mkdir()
    fresh_legacy, old_legacy, foreign = (
        root / "visit-abc123_x",
        root / "visit-old0000z",
        root / "visit-of-someone",
    )
    for where in (fresh_legacy, old_legacy, foreign):
        where.mkdir()
        (where / "1.photo").write_bytes(b"photo")
    (foreign / "notes.txt").write_text("not ours")
    hours_ago = time.time() - 2 * 3600
    for path in (old_legacy / "1.photo", old_legacy, foreign / "1.photo", foreign):
        os.utime(path, (hours_ago, hours_ago))
    with _running(HOLDER, str(root)) as holder:
        [live] = _photos(root / holder_dir(root))
        mine = Uploads(UploadLimits(directory=str(root)))
        assert live.exists()  # its process lives: kept
        assert (fresh_legacy / "1.photo").exists()  # may be an older process's, at work
        assert not old_legacy.exists()  # untouched for hours: left behind
        assert (foreign / "notes.txt").exists() and (foreign / "1.photo").exists()
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    Uploads(UploadLimits(directory=str(root)))  # another start
    assert not live.exists()
    assert mine.spool.is_dir()  # the live process's own, kept


def holder_dir(root: Path) -> str:
    """The one process directory under `root` (the holder's)."""
    [found] = [p.name for p in root.iterdir() if p.name.startswith(SPOOL_PREFIX)]
    return found
