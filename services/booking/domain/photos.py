"""Proof-of-fix photos: JPEG or PNG by their magic bytes (not the declared type), ≤ 5 MB."""

from __future__ import annotations

from services.common.errors import FieldViolation, ValidationError

MAX_PHOTO_BYTES = 5 * 1024 * 1024
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


def sniff(content: bytes) -> str | None:
    """The real type of an image from its first bytes, or None."""
    for magic, kind in _MAGIC.items():
        if content.startswith(magic):
            return kind
    return None


def check_photo(content: bytes, field: str, *, required: bool = True) -> str | None:
    """Validate an upload; return its content type, None when absent and optional."""
    if not content:
        if required:
            raise ValidationError([FieldViolation(field, "请上传整改后的照片（JPEG或PNG）")])
        return None
    if len(content) > MAX_PHOTO_BYTES:
        raise ValidationError([FieldViolation(field, "照片不能超过5MB")])
    kind = sniff(content)
    if kind is None:
        raise ValidationError([FieldViolation(field, "只接受JPEG或PNG格式的照片")])
    return kind
