"""Photos others see are kept without their metadata (EXIF GPS, XMP, comments, PNG
text), without what follows their end, with a JPEG's orientation; a decompression bomb
is refused (review 64 F1, F2)."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime

import pytest
from PIL import Image

from services.booking.domain.photos import MAX_PHOTO_PIXELS, dimensions, photo_record
from services.common.errors import ValidationError

AT = datetime(2026, 11, 29, tzinfo=UTC)
GPS_IFD = 0x8825


def _jpeg_with_gps(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0xA431] = "SERIAL-123456"  # BodySerialNumber (in the Exif IFD on save, or IFD0)
    exif[GPS_IFD] = {1: "N", 2: (29.0, 18.0, 30.5), 3: "E", 4: (120.0, 4.0, 12.25)}
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(
        out, "JPEG", exif=exif.tobytes(), comment=b"home"
    )
    # an XMP packet too, as phones write it
    data = out.getvalue()
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>GPSLatitude 29,18.5N</x:xmpmeta>"
    segment = b"\xff\xe1" + struct.pack(">H", len(xmp) + 2) + xmp
    return data[:2] + segment + data[2:] + b"<script>polyglot appendix</script>"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, *extra: bytes) -> bytes:
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = _png_chunk(b"IDAT", zlib.compress(b"\x00" + b"\x10\x20\x30" * width))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(extra) + idat + _png_chunk(b"IEND", b"")


def test_a_jpeg_keeps_its_picture_and_orientation_but_no_gps_or_other_metadata() -> None:
    sent = _jpeg_with_gps()
    with Image.open(io.BytesIO(sent)) as before:  # the test's photo really carries them
        assert before.getexif().get_ifd(GPS_IFD)
    kept = photo_record("P1", "T1", sent, "proof", AT).content
    assert b"PhoneMaker" not in kept and b"SERIAL-123456" not in kept
    assert b"GPSLatitude" not in kept and b"home" not in kept and b"polyglot" not in kept
    with Image.open(io.BytesIO(kept)) as after:
        exif = after.getexif()
        assert not exif.get_ifd(GPS_IFD)
        assert dict(exif) == {0x0112: 6}  # only the orientation
        assert after.size == (40, 30)
        after.load()  # still a whole picture


def test_a_png_loses_its_text_chunks_and_what_follows_its_end() -> None:
    text = _png_chunk(b"tEXt", b"Comment\x00GPS 29.3N 120.1E")
    exif = _png_chunk(b"eXIf", b"MM\x00*" + b"\x00" * 20)
    sent = _png(4, 3, text, exif) + b"<html>appendix</html>"
    kept = photo_record("P1", "T1", sent, "proof", AT).content
    assert b"GPS" not in kept and b"eXIf" not in kept and b"appendix" not in kept
    with Image.open(io.BytesIO(kept)) as after:
        after.load()
        assert after.size == (4, 3)


def test_a_decompression_bomb_is_refused() -> None:
    bomb = _png(50_000, 50_000)  # 2.5 gigapixels declared in a few hundred bytes
    assert dimensions(bomb) == (50_000, 50_000)
    with pytest.raises(ValidationError) as info:
        photo_record("P1", "T1", bomb, "proof", AT)
    assert info.value.violations[0].field == "photo"
    wide = io.BytesIO()
    Image.new("L", (16, 16)).save(wide, "JPEG")
    data = bytearray(wide.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)  # height, width
    with pytest.raises(ValidationError):
        photo_record("P1", "T1", bytes(data), "proof", AT)


def test_a_photo_within_the_limit_is_kept() -> None:
    side = int(MAX_PHOTO_PIXELS**0.5) - 1
    assert photo_record("P1", "T1", _png(side, 1), "proof", AT).size > 0


def test_bytes_that_only_start_like_an_image_are_kept_as_they_came() -> None:
    odd = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    assert photo_record("P1", "T1", odd, "proof", AT).content == odd


def test_the_scrub_of_a_stored_photo_says_what_it_did_and_is_idempotent() -> None:
    """`rescrubbed`, for photos stored before the scrub (the scrub-photos command): a
    scrubbed photo is clean (left as it is), one that cannot be followed is kept."""
    from services.booking.domain.photos import CLEAN, SCRUBBED, UNREADABLE, rescrubbed

    for sent in (_jpeg_with_gps(), _png(4, 3, _png_chunk(b"tEXt", b"a\x00b")) + b"end"):
        outcome, kept = rescrubbed(sent)
        assert outcome == SCRUBBED and kept != sent
        assert rescrubbed(kept) == (CLEAN, kept)
    for broken in (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"\xff\xd8\xff\xe0\x00", b"GIF89a"):
        assert rescrubbed(broken) == (UNREADABLE, broken)
