"""A request body that stops arriving is cut (review 60 F4): uvicorn has no body read
timeout, so a visit upload that stalled mid-body (a phone that lost its signal, whose
connection may stay half-open for hours, or a client that stalls on purpose) held its
photos' share of the spool (`--visit-photo-spool-mb`) and their files for as long as its
socket lived, and other experts' photos were refused "spool full". Now a body that sends
nothing for `--upload-idle-seconds`, or averages less than `--upload-min-rate-kb` past
them, is answered 408, and what it held is given back; a client that goes away mid-body
is one warning line, no error-level traceback.

Real rules and booking servers, uvicorn on a real port (SQLite); the stalled client is a
raw socket that sends part of its body and then nothing. The waits are the server's (a
pace of about a second); nothing here asserts a time.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from services.booking.domain import messages
from services.booking.entrypoints.web.middleware import BodyPace
from services.booking.entrypoints.web.uploads import UploadLimits, Uploads
from tests.booking_env import Pair
from tests.e2e.test_staff_pages import dispatched
from tests.integration.booking.test_staff_fixes import Web
from tests.integration.booking.test_visit_uploads import (
    _serve,
    photo_error,
    photo_files,
    post_visit,
)
from tests.integration.booking.test_web_review_47a import jpeg, visit_form

MB = 1024 * 1024
BOUNDARY = "----stall"


def _web(pair: Pair, spool: Path, pace: BodyPace) -> Iterator[Web]:
    uploads = Uploads(UploadLimits(spool_bytes=12 * MB, directory=str(spool), pace=pace))
    for site in _serve(pair, uploads=uploads):
        pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        site.user("zhuanjia", "expert", expert_id="E1")
        yield site


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    made = tmp_path / "spool"
    made.mkdir()
    return made


@pytest.fixture
def web(sqlite_pair: Pair, spool: Path) -> Iterator[Web]:
    yield from _web(sqlite_pair, spool, BodyPace(idle_seconds=1.0, min_rate=0))


def _start_visit(web: Web, firm: int, photos: list[int]) -> tuple[socket.socket, bytes]:
    """A visit posted on a raw socket: the form, then photos of `photos` MB (the last
    one cut short of what the body declares); the socket, kept open, sending nothing
    more; and the rest of the body, for a caller that trickles it."""
    order_id, _ = dispatched(web.pair, firm, "稠城街道", key=f"k{firm}")
    c, tok = web.signed_in("zhuanjia")
    parts = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in visit_form(c, order_id, tok, len(photos)).items()
    )
    for i, size in enumerate(photos):
        parts += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="photo_{i}"; '
            f'filename="p{i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode() + jpeg(size * MB, i)
        if i < len(photos) - 1:
            parts += b"\r\n"
    rest = b"x" * (MB // 2)
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    sock = socket.create_connection(("127.0.0.1", web.http.port))
    sock.sendall(
        (
            f"POST /staff/orders/{order_id}/visit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(parts) + len(rest)}\r\n\r\n"
        ).encode()
        + parts
    )
    return sock, rest


def _answer(sock: socket.socket) -> bytes:
    """What the server sends back, up to its closing the connection (at most 60 s)."""
    sock.settimeout(60)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        pass
    return got


def _spooled(spool: Path) -> list[str]:
    """The visits' files under the spool root (the process's own directory aside)."""
    return sorted(str(p.relative_to(spool)) for p in spool.rglob("visit-*"))


def test_a_stalled_visit_upload_is_cut_and_its_spool_room_given_back(
    web: Web, spool: Path, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logged:
        sock, _ = _start_visit(web, 61, [5, 5, 1])  # 11 MB of the 12 MB spool, then stalls
        with sock:
            answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert messages.VISIT_UPLOAD_STALLED.encode() in answer  # the form again, as received
    assert "描述0号".encode() in answer
    assert _spooled(spool) == []  # its files gone, its room given back:
    other, _ = dispatched(web.pair, 62, "稠城街道", key="k62")
    c, tok = web.signed_in("zhuanjia")
    taken = post_visit(c, other, tok, photo_files(tmp_path, 1, 2 * MB))
    assert taken.status_code == 303, photo_error(taken.text, 0)
    cut = [e for e in logged if e["event"].startswith("request body")]
    assert [(e["event"], e["log_level"]) for e in cut] == [("request body stalled: cut", "warning")]
    assert not [e for e in logged if e["log_level"] in ("error", "critical")]


def test_a_trickle_below_the_minimum_rate_is_cut_too(sqlite_pair: Pair, spool: Path) -> None:
    """A client that sends a byte now and then, never idle for the whole idle time."""
    for site in _web(sqlite_pair, spool, BodyPace(idle_seconds=1.0, min_rate=512 * 1024)):
        sock, rest = _start_visit(site, 63, [1])
        with sock:
            sock.settimeout(0.3)
            answer = b""
            for byte in rest[:200]:  # one byte every 0.3 s at most
                try:
                    answer = sock.recv(65536)
                except TimeoutError:
                    sock.sendall(bytes([byte]))
                    continue
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert _spooled(spool) == []


def test_a_client_gone_mid_upload_is_one_warning_line(web: Web, spool: Path) -> None:
    """The phone's connection dropped mid-body: the request was logged at error level,
    "unexpected error", with a whole traceback."""
    with structlog.testing.capture_logs() as logged:
        sock, _ = _start_visit(web, 64, [5, 1])
        time.sleep(0.2)  # let the server start reading it
        sock.close()
        for _ in range(200):  # until the server has seen it go
            if any(e["event"].startswith("request body") for e in logged):
                break
            time.sleep(0.05)
    cut = [e for e in logged if e["event"].startswith("request body")]
    assert [(e["event"], e["log_level"]) for e in cut] == [
        ("request body dropped by the client", "warning")
    ]
    assert not [e for e in logged if e["log_level"] in ("error", "critical")]
    assert all("exc_info" not in e for e in logged)
    for _ in range(100):
        if not _spooled(spool):
            break
        time.sleep(0.05)
    assert _spooled(spool) == []
