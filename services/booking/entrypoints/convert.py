"""booking.v1 messages ↔ booking domain records. Translation only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from services.booking.domain import messages, order_history
from services.booking.domain.orders import Order
from services.booking.domain.records import EXPERT_FIELDS, Expert
from services.booking.domain.tickets import Ticket
from services.common._generated.booking.v1 import booking_pb2 as pb
from services.common.errors import FieldViolation, ValidationError
from services.common.instants import rfc3339
from services.common.vocabulary import mask_mobile

ORDER_STATUS = {
    "submitted": pb.ORDER_STATUS_SUBMITTED,
    "dispatched": pb.ORDER_STATUS_DISPATCHED,
    "visited": pb.ORDER_STATUS_VISITED,
    "closed": pb.ORDER_STATUS_CLOSED,
    "cancelled": pb.ORDER_STATUS_CANCELLED,
}
TICKET_STATUS = {
    "open": pb.TICKET_STATUS_OPEN,
    "submitted": pb.TICKET_STATUS_SUBMITTED,
    "verified": pb.TICKET_STATUS_VERIFIED,
}
SEVERITY = {"general": pb.SEVERITY_GENERAL, "major": pb.SEVERITY_MAJOR}


def phone_shown(phone: str, whole: bool) -> str:
    """A phone number as an answer carries it: whole when `whole` (the caller may read
    numbers whole: service_layer/authz.py `sees_phones`, the one decision), else masked
    by the shared mask (138****5678); no number stays empty. Every field of an answer
    that carries a person's number goes through here."""
    if not phone:
        return ""
    return phone if whole else mask_mobile(phone)


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _history(rows: Iterable[Any]) -> list[pb.Transition]:
    return [
        pb.Transition(
            at=rfc3339(r.at),
            actor=r.actor,
            from_status=r.from_status,
            to_status=r.to_status,
            reason=r.reason,
        )
        for r in rows
    ]


def order_to_proto(
    o: Order,
    *,
    expert_name: str = "",
    show_phone: bool = False,
    show_refs: bool = False,
    history: Sequence[Any] | None = None,
    for_firm: bool = False,
) -> pb.Order:
    """`show_refs`: the firm's session or the dispatched expert (the clauses that
    motivated the order are theirs only). `history`: the rows to answer instead of the
    order's own (the firm's reading: domain/order_history.py). `for_firm`: the firm's
    session reads its expert by name only (no expert_id), as its page shows it."""
    return pb.Order(
        order_id=o.id,
        enterprise_id=o.enterprise_id,
        enterprise_name=o.enterprise_name,
        region=o.region,
        item_codes=o.item_codes,
        preferred_slots=o.preferred_slots,
        contact_name=o.contact_name,
        contact_phone=phone_shown(o.contact_phone, show_phone),
        note=o.note,
        status=ORDER_STATUS[o.status],
        expert_id="" if for_firm else o.expert_id or "",
        expert_name=expert_name,
        slot=o.slot or "",
        dispatch_note=o.dispatch_note,
        created_at=rfc3339(o.created_at),
        history=_history(o.history if history is None else history),
        clause_refs=o.clause_refs if show_refs else [],
    )


def public_confirmation(o: Order) -> pb.Order:
    """What the QR token alone may read of an order: its number and status."""
    return pb.Order(order_id=o.id, status=ORDER_STATUS[o.status])


def ticket_to_proto(
    t: Ticket, today: date, guidance: str = "", expert_name: str = "", for_firm: bool = False
) -> pb.Ticket:
    """`for_firm`: the firm's session reads it as its page shows it: the expert by name
    only (no expert_id), staff actors unnamed (domain/order_history.py
    `actors_for_firm`)."""
    return pb.Ticket(
        ticket_id=t.id,
        order_id=t.order_id,
        enterprise_id=t.enterprise_id,
        clause_ref=t.clause_ref,
        severity=SEVERITY[t.severity],
        description=t.description,
        due_on=_iso(t.due_on),
        status=TICKET_STATUS[t.status],
        overdue=t.is_overdue(today),
        proof_note=t.proof_note,
        has_proof_photo=bool(t.proof_photo_id),
        expert_id="" if for_firm else t.expert_id,
        verified_on=_iso(t.verified_on),
        closed_late=t.closed_late,
        history=_history(order_history.actors_for_firm(t.history) if for_firm else t.history),
        guidance=guidance,
        expert_name=expert_name,
        proof_number=t.proof_number(),
    )


def expert_to_proto(e: Expert, *, show_phone: bool = False) -> pb.Expert:
    """The expert's id and each field an upsert replaces (EXPERT_FIELDS: the proto names
    them alike), the mobile masked unless `show_phone` (`phone_shown`)."""
    fields = {name: getattr(e, name) for name in EXPERT_FIELDS}
    fields["phone"] = phone_shown(e.phone, show_phone)
    return pb.Expert(expert_id=e.id, **fields)


def expert_to_dict(e: pb.Expert) -> dict[str, Any]:
    return {
        "expert_id": e.expert_id,
        "name": e.name,
        "phone": e.phone,
        "domains": list(e.domains),
        "regions": list(e.regions),
        "slots": list(e.slots),
        "max_visits_per_day": e.max_visits_per_day,
        "active": e.active,
        "conflicts": list(e.conflicts),
    }


SEVERITY_NAME: dict[int, str] = {v: k for k, v in SEVERITY.items()}
ORDER_STATUS_NAME: dict[int, str] = {v: k for k, v in ORDER_STATUS.items()}
TICKET_STATUS_NAME: dict[int, str] = {v: k for k, v in TICKET_STATUS.items()}


def severity_name(value: int) -> str:
    return SEVERITY_NAME.get(int(value), "")


def order_status_name(value: int) -> str:
    """A status filter as the register spells it ("" for unset: any); a number the enum
    does not name is INVALID_ARGUMENT `status` (it is not "any")."""
    return _status_filter(ORDER_STATUS_NAME, value)


def ticket_status_name(value: int) -> str:
    return _status_filter(TICKET_STATUS_NAME, value)


def _status_filter(names: dict[int, str], value: int) -> str:
    if int(value) == 0:
        return ""
    if int(value) not in names:
        raise ValidationError(
            [FieldViolation("status", messages.UNKNOWN_STATUS.format(value=int(value)))]
        )
    return names[int(value)]


def stats_to_proto(stats: dict[str, Any]) -> pb.Stats:
    def figures(f: dict[str, float]) -> pb.StatsFigures:
        out = pb.StatsFigures()
        for key, value in f.items():
            setattr(
                out,
                key,
                float(value) if key in ("on_time_rate", "median_days_to_fix") else int(value),
            )
        return out

    def buckets(rows: list[tuple[str, dict[str, float]]]) -> list[pb.StatsBucket]:
        return [pb.StatsBucket(key=k, figures=figures(f)) for k, f in rows]

    return pb.Stats(
        total=figures(stats["total"]),
        by_region=buckets(stats["by_region"]),
        by_domain=buckets(stats["by_domain"]),
        by_month=buckets(stats["by_month"]),
    )
