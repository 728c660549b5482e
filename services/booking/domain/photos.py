"""Photos (a finding's, a proof of fix): JPEG or PNG by their magic bytes (not the declared
type), ≤ 5 MB. A photo as sent is an `Upload`: checked by its size and first bytes, read
whole only when it is written.

A photo is kept as `scrubbed` makes it (review 64 F1, F2): without the metadata a phone
writes into it (EXIF with the GPS position, the time, the device's serial; XMP; IPTC;
comments; PNG text chunks) and without anything after its end (a polyglot's appendix),
because others see it (an expert's photo on the firm's page, a firm's proof on the
inspector's and the expert's); only a JPEG's orientation is kept (phones store a
portrait photo sideways and say so there). A photo whose header declares more than
MAX_PHOTO_PIXELS (a decompression bomb: a few kilobytes that unpack to gigabytes in the
browser or phone that shows it) is refused. The bytes are rewritten segment by segment,
never decoded; a file whose structure cannot be followed is kept as it came (the magic
bytes checked; served as an image with nosniff it is no more than a broken picture)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from services.common.errors import FieldViolation, PreconditionFailed, ValidationError

from . import messages
from .records import Photo

MAX_PHOTO_BYTES = 5 * 1024 * 1024
# proof photos a ticket takes between one opening (the visit, a failed recheck) and the
# next recheck: a firm may send a better photo, but a double tap or a script must not
# grow storage without end (review 47a N4: every re-upload was kept, never shown); a
# failed recheck opens a new round (review 50 F1: counted over the ticket's life, a
# ticket of 20 could never be fixed again)
MAX_PROOFS_PER_ROUND = 20
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
HEAD_BYTES = 16  # an upload's first bytes kept for `sniff`: longer than every magic


@dataclass(frozen=True)
class Upload:
    """A photo as it was sent, wherever its entrypoint keeps it: in memory (a gRPC
    message's bytes, `Upload.of`) or spooled to disk as it arrived (the expert's page).
    It is checked by its `size` and first bytes (`head`, at least HEAD_BYTES of them when
    it has that many) and read whole (`read()`) only when it is written, one photo at a
    time: a visit's photos are never all in memory at once (review 48 N1)."""

    size: int
    head: bytes
    read: Callable[[], bytes]

    @classmethod
    def of(cls, content: bytes) -> Upload:
        """An upload already in memory."""
        return cls(len(content), content[:HEAD_BYTES], lambda: content)


def sniff(content: bytes) -> str | None:
    """The real type of an image from its first bytes, or None."""
    for magic, kind in _MAGIC.items():
        if content.startswith(magic):
            return kind
    return None


class ProofsFull(PreconditionFailed):
    """A ticket took MAX_PROOFS_PER_ROUND proofs since it was last opened."""


def check_room(proofs_this_round: int) -> None:
    """Refuse one more proof of a ticket that took `proofs_this_round` since it was last
    opened (ProofsFull)."""
    if proofs_this_round >= MAX_PROOFS_PER_ROUND:
        raise ProofsFull(messages.PROOFS_FULL.format(n=MAX_PROOFS_PER_ROUND))


def check_photo(content: bytes, field: str, *, required: bool = True) -> str | None:
    """Validate a photo in memory; return its content type, None when absent and
    optional."""
    return check_upload(Upload.of(content), field, required=required)


def check_upload(upload: Upload, field: str, *, required: bool = True) -> str | None:
    """Validate an upload by its size and first bytes; return its content type, None
    when absent and optional."""
    if not upload.size:
        if required:
            raise ValidationError([FieldViolation(field, messages.NO_PHOTO)])
        return None
    if upload.size > MAX_PHOTO_BYTES:
        raise ValidationError([FieldViolation(field, messages.PHOTO_TOO_LARGE)])
    kind = sniff(upload.head)
    if kind is None:
        raise ValidationError([FieldViolation(field, messages.PHOTO_NOT_IMAGE)])
    return kind


MAX_PHOTO_PIXELS = 64_000_000  # more than any phone's photo of ≤ 5 MB; a bomb has billions
_JPEG_KEPT_APPS = {0xE0: b"JFIF", 0xE2: b"ICC_PROFILE", 0xEE: b"Adobe"}  # colour, no metadata
_PNG_KEPT = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
    b"sBIT", b"pHYs", b"bKGD",
}  # fmt: skip


class _Unfollowed(Exception):
    """The file's structure cannot be followed: it is kept as it came."""


def dimensions(content: bytes) -> tuple[int, int] | None:
    """(width, height) its header declares, None when it cannot be read."""
    try:
        if content.startswith(b"\x89PNG\r\n\x1a\n"):
            if content[12:16] != b"IHDR":
                return None
            return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
        if content.startswith(b"\xff\xd8"):
            for marker, body in _jpeg_segments(content):
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    return int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big")
                if marker == 0xDA:
                    return None
    except _Unfollowed:
        return None
    return None


def check_pixels(content: bytes, field: str) -> None:
    """Refuse a photo whose header declares more than MAX_PHOTO_PIXELS."""
    size = dimensions(content)
    if size is not None and size[0] * size[1] > MAX_PHOTO_PIXELS:
        raise ValidationError(
            [
                FieldViolation(
                    field,
                    messages.PHOTO_TOO_MANY_PIXELS.format(megapixels=MAX_PHOTO_PIXELS // 10**6),
                )
            ]
        )


def scrubbed(content: bytes) -> bytes:
    """The photo without its metadata and without what follows its end (module doc)."""
    return rescrubbed(content)[1]


# What `rescrubbed` made of a photo already stored (the `scrub-photos` command)
SCRUBBED = "scrubbed"  # it had metadata or an appendix: rewritten without them
CLEAN = "clean"  # the scrub changes nothing: left as it is
UNREADABLE = "unreadable"  # not a JPEG or PNG whose structure can be followed: kept as is


def rescrubbed(content: bytes) -> tuple[str, bytes]:
    """(SCRUBBED | CLEAN | UNREADABLE, the bytes to keep) for a photo: `scrubbed`'s
    rewrite, and whether it changed anything. The scrub is idempotent (a scrubbed photo
    is CLEAN), so a photo stored before it (review 64) can be put through it once, and
    again, at no harm. An UNREADABLE photo is kept as it came, as on upload."""
    try:
        if content.startswith(b"\x89PNG\r\n\x1a\n"):
            kept = _png_scrubbed(content)
        elif content.startswith(b"\xff\xd8"):
            kept = _jpeg_scrubbed(content)
        else:
            return UNREADABLE, content
    except _Unfollowed:
        return UNREADABLE, content
    return (CLEAN, content) if kept == content else (SCRUBBED, kept)


def _png_scrubbed(content: bytes) -> bytes:
    out, at = bytearray(content[:8]), 8
    while True:
        if at + 12 > len(content):
            raise _Unfollowed("a PNG chunk cut short")
        length = int.from_bytes(content[at : at + 4], "big")
        kind = content[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(content):
            raise _Unfollowed("a PNG chunk cut short")
        if kind in _PNG_KEPT:
            out += content[at:end]
        at = end
        if kind == b"IEND":
            return bytes(out)


def _jpeg_segments(content: bytes) -> Iterator[tuple[int, bytes]]:
    """(marker, body) of each segment before the first scan's data, then (0xDA, rest):
    the body of a marker segment is what follows its length."""
    at = 2
    while True:
        if at + 2 > len(content) or content[at] != 0xFF:
            raise _Unfollowed("not a JPEG marker")
        marker = content[at + 1]
        if marker == 0xFF:  # a fill byte
            at += 1
            continue
        if marker == 0xD9:
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        length = int.from_bytes(content[at + 2 : at + 4], "big")
        if length < 2 or at + 2 + length > len(content):
            raise _Unfollowed("a JPEG segment cut short")
        body = content[at + 4 : at + 2 + length]
        if marker == 0xDA:
            yield marker, content[at:]
            return
        yield marker, body
        at += 2 + length


def _jpeg_scrubbed(content: bytes) -> bytes:
    out = bytearray(b"\xff\xd8")
    orientation = None
    for marker, body in _jpeg_segments(content):
        if marker == 0xDA:
            if orientation is not None:
                out[2:2] = _orientation_only(orientation)
            return bytes(out) + _scan_data(body)
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            orientation = _orientation(body[6:]) or orientation
            continue
        if 0xE0 <= marker <= 0xEF and not body.startswith(
            _JPEG_KEPT_APPS.get(marker, b"\x00\x01\x02")
        ):
            continue  # metadata: EXIF, XMP, IPTC/Photoshop, maker notes
        if marker == 0xFE:
            continue  # a comment
        out += bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body
    raise _Unfollowed("no image data")


def _scan_data(rest: bytes) -> bytes:
    """The scans from the first start-of-scan to the end-of-image marker, whatever
    follows it dropped (a polyglot's appendix). Inside the data a 0xFF byte is followed
    by 0x00 (stuffed) or a restart marker; FF D9 is the end."""
    end = rest.find(b"\xff\xd9")
    if end == -1:
        raise _Unfollowed("no end of image")
    return rest[: end + 2]


def _orientation(tiff: bytes) -> int | None:
    """The EXIF orientation (1-8) of IFD0, None when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    big = tiff[:2] == b"MM"

    def number(raw: bytes) -> int:
        return int.from_bytes(raw, "big" if big else "little")

    first = number(tiff[4:8])
    if first + 2 > len(tiff):
        return None
    for i in range(number(tiff[first : first + 2])):
        entry = tiff[first + 2 + 12 * i : first + 14 + 12 * i]
        if len(entry) < 12:
            return None
        if number(entry[0:2]) == 0x0112:
            value = number(entry[8:10])
            return value if 1 <= value <= 8 else None
    return None


def _orientation_only(value: int) -> bytes:
    """An APP1 EXIF segment holding nothing but the orientation."""
    tiff = (
        b"MM\x00\x2a" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big")
        + (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
        + value.to_bytes(2, "big") + b"\x00\x00" + (0).to_bytes(4, "big")
    )  # fmt: skip
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def photo_record(
    photo_id: str, ticket_id: str, content: bytes, purpose: str, at: datetime, key: str = ""
) -> Photo:
    """A checked upload as the record kept with its ticket (`purpose`: proof | finding),
    without its metadata (`scrubbed`)."""
    kind = check_photo(content, "photo") or ""
    check_pixels(content, "photo")
    content = scrubbed(content)
    digest = hashlib.sha256(content).hexdigest()
    return Photo(photo_id, ticket_id, kind, len(content), digest, content, at, purpose, key)
