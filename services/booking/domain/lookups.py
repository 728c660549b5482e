"""The ids and filters booking's reads and lookups take, checked before any query (pure).

As the rules service checks its own (review 58 F5): a firm's id is a unified social
credit code with a verifying check character (`uscc_problem`), a record's id one booking
could have made (`record_id_problem`: at most 32 ASCII letters and digits), a domain one of
the nine high-risk domains' codes. Anything else is a malformed request, INVALID_ARGUMENT
naming the field in the request, whose message quotes at most a short prefix of the value
(`messages.quoted`); it is never read as "no such record" or as an empty page. Values are
taken as sent (no trimming): an id with a space around it names no firm and no record.
Regions, dates, statuses and page tokens have their own checks (services/common/regions.py,
values.py, paging.py; entrypoints/convert.py for statuses).
"""

from __future__ import annotations

from services.common.clock import ID_LENGTH
from services.common.errors import FieldViolation, ValidationError
from services.common.vocabulary import DOMAINS, record_id_problem, uscc_problem

from . import messages


def firm_id(value: str, field: str = "enterprise_id") -> str:
    """A firm's id that must be given (IssueQrCode, SetSignInPhone)."""
    if not value:
        raise ValidationError([FieldViolation(field, messages.FIRM_ID_REQUIRED)])
    return firm_filter(value, field)


def firm_filter(value: str, field: str = "enterprise_id") -> str:
    """A firm's id a listing is filtered by ("" = every firm)."""
    if value and uscc_problem(value):
        bad = messages.BAD_FIRM_ID.format(ref=messages.quoted(value))
        raise ValidationError([FieldViolation(field, bad)])
    return value


def record_id(value: str, what: str, field: str) -> str:
    """The id of an order or a ticket (`what`: messages.RECORD_NAMES) a call looks up."""
    if record_id_problem(value) is None:
        return value
    name = messages.RECORD_NAMES[what]
    if not value:
        bad = messages.RECORD_ID_REQUIRED.format(what=name)
    else:
        bad = messages.BAD_RECORD_ID.format(ref=messages.quoted(value), what=name, n=ID_LENGTH)
    raise ValidationError([FieldViolation(field, bad)])


def domain_filter(value: str, field: str = "domain") -> str:
    """A high-risk domain's code a listing is filtered by ("" = every domain)."""
    if value and value not in DOMAINS:
        bad = messages.UNKNOWN_DOMAIN.format(ref=messages.quoted(value))
        raise ValidationError([FieldViolation(field, bad)])
    return value
