"""The rules domain's errors are the shared kernel's (services/common/errors.py)."""

from services.common.errors import (
    AlreadyExists,
    DomainError,
    FieldViolation,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ValidationError,
)

__all__ = [
    "AlreadyExists",
    "DomainError",
    "FieldViolation",
    "NotFound",
    "PermissionDenied",
    "PreconditionFailed",
    "ValidationError",
]
