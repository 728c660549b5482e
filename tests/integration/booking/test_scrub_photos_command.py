"""`python -m services.booking scrub-photos`: photos stored before uploads were scrubbed
(review 64 F1, F2) lose their GPS/EXIF, XMP, comments, PNG text and appendix, in batches
each committed on its own; run again it writes nothing; `--after` goes on from where an
interrupted run stopped; a photo whose structure cannot be followed is named and kept.
Real booking and rules servers, SQLite and PostgreSQL; the photos are made as the old
code stored them (their bytes as sent) by writing them into the table."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image
from sqlalchemy import select, update

from services.booking.adapters.orm import audit_log, photos
from services.booking.entrypoints import cli as booking_cli
from services.common._generated.booking.v1 import booking_pb2 as bpb
from tests.booking_env import Pair, ledger_visit
from tests.unit.booking.test_photo_scrub import GPS_IFD, _jpeg_with_gps, _png, _png_chunk

GPS_JPEG = _jpeg_with_gps()
TEXT_PNG = _png(4, 3, _png_chunk(b"tEXt", b"Comment\x00GPS 29.3N 120.1E")) + b"<html>x</html>"
CLEAN_PNG = _png(4, 3)
BROKEN = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # a PNG signature, then no chunk that holds


def _stored_photo_ids(pair: Pair) -> list[str]:
    firm = pair.register_firm(1)
    token = pair.issue(firm).token
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    order = pair.booking.CreateOrder(pair.order_request(token, key="k1"), timeout=10)
    photo = bpb.Photo(content=CLEAN_PNG, content_type="image/png")
    pair.booking.RecordVisit(
        ledger_visit(order.order_id, "一", "二", "三", "四", photos=[photo]), timeout=10
    )
    with pair.booking_engine.connect() as conn:
        return list(conn.scalars(select(photos.c.id).order_by(photos.c.id)))


def _store_as_before(pair: Pair, photo_id: str, content: bytes) -> None:
    """The photo as the code before the scrub kept it: the bytes sent, their size and hash."""
    with pair.booking_engine.begin() as conn:
        conn.execute(
            update(photos)
            .where(photos.c.id == photo_id)
            .values(content=content, size=len(content), sha256=hashlib.sha256(content).hexdigest())
        )


def _contents(pair: Pair) -> dict[str, tuple[bytes, int, str]]:
    with pair.booking_engine.connect() as conn:
        rows = conn.execute(select(photos.c.id, photos.c.content, photos.c.size, photos.c.sha256))
        return {r.id: (bytes(r.content), r.size, r.sha256) for r in rows}


def _photo_updates(pair: Pair) -> list[tuple[str, str]]:
    with pair.booking_engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.caller, audit_log.c.entity_id).where(
                audit_log.c.entity == "photo", audit_log.c.action == "update"
            )
        )
        return sorted((r.caller, r.entity_id) for r in rows)


def _run(pair: Pair, capsys: pytest.CaptureFixture[str], *more: str) -> str:
    url = pair.booking_engine.url.render_as_string(hide_password=False)
    assert booking_cli.main(["scrub-photos", "--db", url, *more]) == 0
    return capsys.readouterr().out


def test_old_photos_lose_their_metadata_once_and_an_unreadable_one_is_kept(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _stored_photo_ids(pair)
    assert len(ids) == 4
    gps, text, clean, broken = ids
    _store_as_before(pair, gps, GPS_JPEG)
    _store_as_before(pair, text, TEXT_PNG)
    _store_as_before(pair, broken, BROKEN)
    before = _contents(pair)
    capsys.readouterr()

    out = _run(pair, capsys, "--batch", "3")  # two batches, two transactions
    assert "photos: 2 scrubbed, 1 already clean, 1 unreadable" in out
    assert f"photo {broken} of ticket" in out
    after = _contents(pair)
    content, size, digest = after[gps]
    assert b"GPSLatitude" not in content and b"SERIAL-123456" not in content
    assert b"polyglot" not in content and (size, digest) == (
        len(content),
        hashlib.sha256(content).hexdigest(),
    )
    with Image.open(io.BytesIO(content)) as picture:
        assert not picture.getexif().get_ifd(GPS_IFD)
        assert dict(picture.getexif()) == {0x0112: 6}  # the orientation kept
        picture.load()
    assert b"GPS" not in after[text][0] and b"<html>" not in after[text][0]
    assert after[clean] == before[clean] and after[broken] == before[broken]  # untouched
    assert _photo_updates(pair) == sorted([("staff-cli", gps), ("staff-cli", text)])

    again = _run(pair, capsys)
    assert "photos: 0 scrubbed, 3 already clean, 1 unreadable" in again
    assert _contents(pair) == after and len(_photo_updates(pair)) == 2  # nothing written

    # --after goes on past a photo: those up to it are not looked at
    _store_as_before(pair, gps, GPS_JPEG)
    _store_as_before(pair, text, TEXT_PNG)
    resumed = _run(pair, capsys, "--after", gps)  # ids are in id order: gps < text
    assert "photos: 1 scrubbed, 1 already clean, 1 unreadable" in resumed
    assert b"GPS" not in _contents(pair)[text][0]
    assert _contents(pair)[gps][0] == GPS_JPEG
