"""A visit's photos on the expert's page are not held in memory whole (review 48 N1, N2):
the form's files stream to disk as they arrive, each cut off past 5 MB and the visit's
past 100 MB, its text fields past their own limit; the photos are written to the
database one at a time; and a bounded number of visits write theirs at once, one more
waiting for a slot, then told to send again with everything typed kept, while the other
pages are served (uvicorn on real ports, httpx, SQLite).

Memory is measured with tracemalloc (Python's allocations, in the server's threads and
the test's alike): the test's own uploads are read from files in chunks, so what it
counts is what the server holds.
"""

from __future__ import annotations

import http.client
import re
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import select

from services.booking.adapters.orm import audit_log, photos, visits
from services.booking.domain import messages
from services.booking.domain.photos import MAX_PHOTO_BYTES
from services.booking.entrypoints.web import create_web_app
from services.booking.entrypoints.web.middleware import HEAD_ROOM, VISIT_BODY_LIMIT
from services.booking.entrypoints.web.uploads import UploadLimits, Uploads
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common.http_server import start_http
from tests.booking_env import Pair, ledger_visit
from tests.e2e.test_staff_pages import dispatched
from tests.integration.booking.test_staff_fixes import Web, _tokens
from tests.integration.booking.test_web_review_47a import jpeg, visit_form
from tests.integration.conftest import violations

MB = 1024 * 1024


def _serve(pair: Pair, **options: Any) -> Iterator[Web]:
    http = start_http(create_web_app(pair.ctx, pair.booking_engine, staff=_tokens(), **options))
    try:
        yield Web(pair, http)
    finally:
        http.stop()


@pytest.fixture
def expert_web(sqlite_pair: Pair) -> Iterator[Web]:
    """The staff pages with expert E1 (user zhuanjia) of 稠城街道."""
    for site in _serve(sqlite_pair):
        sqlite_pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        site.user("zhuanjia", "expert", expert_id="E1")
        yield site


def photo_error(page: str, i: int) -> str:
    """The error shown beside the visit form's photo field `i` ("" for none)."""
    field = page.partition(f'id="photo_{i}"')[2].partition("</div>")[0]
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', field)
    return found.group(1) if found else ""


def photo_files(where: Path, n: int, size: int) -> list[Path]:
    """`n` JPEGs of `size` bytes on disk (sent from there, never held by the test)."""
    made = []
    for i in range(n):
        path = where / f"p{i}.jpg"
        path.write_bytes(jpeg(size, i))
        made.append(path)
    return made


def post_visit(
    c: httpx.Client, order_id: str, tok: str, files: list[Path], **extra: str
) -> httpx.Response:
    form = visit_form(c, order_id, tok, len(files)) | extra
    opened = [path.open("rb") for path in files]
    try:
        sent = {f"photo_{i}": (f"p{i}.jpg", f, "image/jpeg") for i, f in enumerate(opened)}
        return c.post(f"/staff/orders/{order_id}/visit", data=form, files=sent)
    finally:
        for f in opened:
            f.close()


def peak_while(work: Callable[[], None]) -> int:
    """The most memory Python held during `work()` beyond what it held before."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def test_concurrent_visits_with_many_photos_are_not_held_in_memory(
    expert_web: Web, tmp_path: Path
) -> None:
    """Three experts send a visit with ten 4 MB photos each at the same moment (120 MB of
    photos): the server held them all in memory (each visit's photos read whole, then
    written in one flush), now at most a photo a visit writing them."""
    pair = expert_web.pair
    files = photo_files(tmp_path, 10, 4 * MB)
    sends = []
    for n in (61, 62, 63):
        order_id, _ = dispatched(pair, n, "稠城街道")
        c, tok = expert_web.signed_in("zhuanjia")
        sends.append((c, order_id, tok))
    answers: list[httpx.Response] = []

    def send_all() -> None:
        threads = [
            threading.Thread(
                target=lambda c=c, o=o, t=t: answers.append(post_visit(c, o, t, files))
            )
            for c, o, t in sends
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    peak = peak_while(send_all)
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:500] for a in answers]
    assert expert_web.count(visits) == 3
    with pair.booking_engine.connect() as conn:
        assert conn.execute(select(photos.c.size)).scalars().all() == [4 * MB] * 30
    assert peak < 40 * MB, f"{peak / MB:.0f} MB held for 120 MB of photos"


def test_small_photos_are_not_held_in_memory_either(expert_web: Web, tmp_path: Path) -> None:
    """Starlette kept each file of up to 1 MB in memory (it spooled to disk only past
    that): thirty photos of 1 MB were 30 MB in memory before the visit's own copy of
    them."""
    pair = expert_web.pair
    order_id, _ = dispatched(pair, 64, "稠城街道")
    c, tok = expert_web.signed_in("zhuanjia")
    files = photo_files(tmp_path, 30, MB)
    answer: list[httpx.Response] = []
    peak = peak_while(lambda: answer.append(post_visit(c, order_id, tok, files)))
    assert answer[0].status_code == 303, answer[0].text[:2000]
    assert peak < 20 * MB, f"{peak / MB:.0f} MB held for 30 MB of photos"


def test_a_crafted_form_of_long_texts_is_not_read_whole(expert_web: Web) -> None:
    """Starlette took every text field of the visit form up to 6 MB (the part limit the
    page gave it, meant for the photos), in memory: a crafted form of 5 MB texts was read
    whole. Now a text past its field's limit stops there, the visit is not recorded and
    the form says so."""
    order_id, _ = dispatched(expert_web.pair, 65, "稠城街道")
    c, tok = expert_web.signed_in("zhuanjia")
    form = visit_form(c, order_id, tok, 1)
    long_texts = {f"desc_{i}": "x" * (5 * MB) for i in range(8)}  # a crafted form: 40 MB

    def crafted() -> Iterator[bytes]:
        boundary = b"--b0undary"
        for name, value in {**form, **long_texts}.items():
            yield boundary + b"\r\n"
            yield f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            for start in range(0, len(value), MB):
                yield value[start : start + MB].encode()
            yield b"\r\n"
        yield boundary + b"--\r\n"

    answer: list[httpx.Response] = []
    peak = peak_while(
        lambda: answer.append(
            c.post(
                f"/staff/orders/{order_id}/visit",
                content=crafted(),
                headers={"content-type": "multipart/form-data; boundary=b0undary"},
            )
        )
    )
    assert peak < 15 * MB, f"{peak / MB:.0f} MB held for 40 MB of text"
    assert answer[0].status_code == 400
    assert messages.VISIT_FIELD_TOO_LONG in answer[0].text
    assert expert_web.count(visits) == 0


def written() -> int:
    """What this process has written so far through write() (/proc/self/io `wchar`):
    files, pipes, the captured log; not its sockets' sends."""
    for line in Path("/proc/self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "wchar":
            return int(value)
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="Linux: /proc/self/io")
def test_a_photo_past_five_mb_is_cut_off_as_it_arrives(expert_web: Web, tmp_path: Path) -> None:
    """A 60 MB file in a photo field: refused next to it, and never more than 5 MB of it
    kept, in memory or on disk (Starlette spooled it to disk whole, 60 MB per such field
    and request, before the page read the first 5 MB of it)."""
    pair = expert_web.pair
    order_id, _ = dispatched(pair, 66, "稠城街道")
    c, tok = expert_web.signed_in("zhuanjia")
    big = tmp_path / "big.jpg"
    with big.open("wb") as out:
        out.write(b"\xff\xd8\xff")
        for _ in range(60):
            out.write(b"\x01" * MB)
    small = photo_files(tmp_path, 1, MB)[0]
    answer: list[httpx.Response] = []
    before = written()
    peak = peak_while(lambda: answer.append(post_visit(c, order_id, tok, [big, small])))
    wrote = written() - before
    assert wrote < MAX_PHOTO_BYTES + 4 * MB, f"{wrote / MB:.0f} MB written for a 60 MB file"
    assert peak < MAX_PHOTO_BYTES + 8 * MB, f"{peak / MB:.0f} MB held for a 60 MB file"
    assert answer[0].status_code == 400
    assert photo_error(answer[0].text, 0) == messages.PHOTO_TOO_LARGE
    assert photo_error(answer[0].text, 1) == ""
    assert expert_web.count(visits) == 0 and expert_web.count(photos) == 0


def test_a_visit_waits_for_a_free_writer_then_keeps_its_form(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    """Every writer's slot taken (here the only one, held by the test for as long as a
    visit may wait): the visit is not recorded, the form comes back 503 with everything
    typed and a Retry-After, and the other pages are served meanwhile; once the slot is
    free, the same visit is recorded."""
    uploads = Uploads(UploadLimits(writers=1, wait=0.2))
    for site in _serve(sqlite_pair, uploads=uploads):
        sqlite_pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        site.user("zhuanjia", "expert", expert_id="E1")
        order_id, _ = dispatched(sqlite_pair, 67, "稠城街道")
        c, tok = site.signed_in("zhuanjia")
        files = photo_files(tmp_path, 2, MB)
        assert uploads.try_write()  # another visit is writing its photos
        try:
            busy = post_visit(c, order_id, tok, files, desc_1="配电箱门未关")
            assert c.get("/healthz").status_code == 200
            assert c.get("/staff/visits").status_code == 200
        finally:
            uploads.written()
        assert busy.status_code == 503
        assert int(busy.headers["Retry-After"]) >= 1
        shown = re.search(r'id="form-error">([^<]*)<', busy.text)
        assert shown and shown.group(1) == messages.VISIT_WRITERS_BUSY
        assert ">配电箱门未关</textarea>" in busy.text and ">描述0号</textarea>" in busy.text
        assert site.count(visits) == 0 and site.count(photos) == 0
        assert post_visit(c, order_id, tok, files).status_code == 303
        assert site.count(visits) == 1 and site.count(photos) == 2


def test_photos_past_the_spools_room_are_refused_beside_their_field(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    """The photos of every visit being sent may take `spool_bytes` of disk together: one
    past it is refused beside its field as it arrives, the form kept; the room comes back
    when the request is answered."""
    spool = tmp_path / "spool"
    spool.mkdir()
    uploads = Uploads(UploadLimits(spool_bytes=3 * MB, directory=str(spool)))
    for site in _serve(sqlite_pair, uploads=uploads):
        sqlite_pair.expert("E1", ["dust_explosion"], ["稠城街道"])
        site.user("zhuanjia", "expert", expert_id="E1")
        order_id, _ = dispatched(sqlite_pair, 68, "稠城街道")
        c, tok = site.signed_in("zhuanjia")
        answer = post_visit(c, order_id, tok, photo_files(tmp_path, 2, 2 * MB))
        assert answer.status_code == 400
        assert photo_error(answer.text, 0) == ""
        assert photo_error(answer.text, 1) == messages.VISIT_SPOOL_FULL
        shown = re.search(r'id="form-error">([^<]*)<', answer.text)
        assert shown and shown.group(1) == messages.VISIT_PHOTOS_NOT_RECEIVED
        assert ">描述1号</textarea>" in answer.text
        assert site.count(visits) == 0 and site.count(photos) == 0
        assert not list(uploads.spool.glob("visit-*"))  # the request answered: files gone
        assert post_visit(c, order_id, tok, photo_files(tmp_path, 2, MB)).status_code == 303
        assert site.count(photos) == 2
        assert not list(uploads.spool.glob("visit-*"))


def test_a_body_over_the_visits_limit_shows_again_what_came_before_it(expert_web: Web) -> None:
    """A body declared past the visit's limit is answered 413 once its head is read, as
    before; what was typed in that head (the fields come before the photos) is now on
    the page again, read as it arrived, instead of nothing."""
    order_id, _ = dispatched(expert_web.pair, 69, "稠城街道")
    c, tok = expert_web.signed_in("zhuanjia")
    typed = visit_form(c, order_id, tok, 1) | {"desc_0": "消防通道堵塞，需清理"}
    head = b"".join(
        b'--x\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode())
        for name, value in typed.items()
    ) + (
        b'--x\r\nContent-Disposition: form-data; name="photo_0"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + jpeg(2 * HEAD_ROOM, 0)
    )
    conn = http.client.HTTPConnection("127.0.0.1", expert_web.http.port, timeout=30)
    headers = {
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(VISIT_BODY_LIMIT + 1),
        "Cookie": f"staff_session={c.cookies['staff_session']}",
    }
    conn.request("POST", f"/staff/orders/{order_id}/visit", body=iter([head]), headers=headers)
    reply = conn.getresponse()
    text = reply.read().decode()
    conn.close()
    assert reply.status == 413
    assert messages.VISIT_TOO_LARGE.format(limit=VISIT_BODY_LIMIT // MB, each=5, total=100) in text
    assert ">消防通道堵塞，需清理</textarea>" in text
    assert expert_web.count(visits) == 0


# -- RecordVisit over gRPC: the same photo rules (its message limit: test_record_visit_size)


def test_record_visit_names_a_photo_past_its_limit_and_the_server_stays_up(pair: Pair) -> None:
    """Over gRPC a photo past 5 MB is INVALID_ARGUMENT naming it (the page's rule, one
    place: domain/photos.py); the server goes on serving, and a visit's photos are
    written one at a time, each audited (SQLite and PostgreSQL)."""
    pair.expert("E1", ["dust_explosion"], ["稠城街道"])
    order_id, _ = dispatched(pair, 70, "稠城街道")

    def visit(*sizes: int) -> bpb.RecordVisitRequest:
        shots = [bpb.Photo(content=jpeg(size, n)) for n, size in enumerate(sizes)]
        return ledger_visit(order_id, "无台账", photos=shots)

    with pytest.raises(grpc.RpcError) as refused:
        pair.booking.RecordVisit(visit(MB, MAX_PHOTO_BYTES + 1), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(refused.value) == {"findings[0].photos[1]": messages.PHOTO_TOO_LARGE}
    recorded = pair.booking.RecordVisit(visit(3 * MB, 3 * MB, 1000), timeout=30)
    with pair.booking_engine.connect() as conn:
        stored = conn.execute(select(photos.c.id, photos.c.size)).all()
        audited = conn.execute(
            select(audit_log.c.entity_id).where(audit_log.c.entity == "photo")
        ).scalars()
        assert sorted(size for _, size in stored) == [1000, 3 * MB, 3 * MB]
        assert set(audited) == {photo_id for photo_id, _ in stored}
    assert len(recorded.tickets) == 1


def test_a_form_the_page_never_makes_is_refused_whole(expert_web: Web) -> None:
    """More file parts than findings, or a part's headers past their limit: the form is
    read no further, nothing is recorded, the page says the upload failed, and the
    server goes on serving."""
    order_id, _ = dispatched(expert_web.pair, 71, "稠城街道")
    c, tok = expert_web.signed_in("zhuanjia")
    form = visit_form(c, order_id, tok, 1)
    text = b"".join(
        b'--x\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode())
        for name, value in form.items()
    )
    many_files = text + b"".join(
        b'--x\r\nContent-Disposition: form-data; name="photo_%d"; filename=""\r\n\r\n\r\n' % i
        for i in range(51)
    )
    long_header = text + b'--x\r\nContent-Disposition: form-data; name="desc_0"\r\nX-Pad: '
    long_header += b"a" * (64 * 1024) + b"\r\n\r\ntext\r\n"
    for body in (many_files, long_header):
        answer = c.post(
            f"/staff/orders/{order_id}/visit",
            content=body + b"--x--\r\n",
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert answer.status_code == 400
        shown = re.search(r'id="form-error">([^<]*)<', answer.text)
        assert shown and shown.group(1) == messages.UPLOAD_FAILED
        assert ">描述0号</textarea>" in answer.text  # what came before is kept
    assert expert_web.count(visits) == 0
    assert c.get("/healthz").status_code == 200
