"""Photos (a finding's, a proof of fix): JPEG or PNG by their magic bytes (not the declared
type), ≤ 5 MB. A photo as sent is an `Upload`: checked by its size and first bytes, read
whole only when it is written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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


def photo_record(
    photo_id: str, ticket_id: str, content: bytes, purpose: str, at: datetime
) -> Photo:
    """A checked upload as the record kept with its ticket (`purpose`: proof | finding)."""
    kind = check_photo(content, "photo") or ""
    digest = hashlib.sha256(content).hexdigest()
    return Photo(photo_id, ticket_id, kind, len(content), digest, content, at, purpose)
