"""Who may do what beyond scopes (README "Security", Roles).

`ANONYMOUS` is the principal when a server runs without authentication (in-process
tests only: the CLI refuses to start without a tokens file unless --dev); it is trusted.
"""

from __future__ import annotations

from services.booking.domain import messages
from services.booking.domain.orders import Order
from services.booking.domain.tickets import Ticket
from services.common.context import ANONYMOUS, Principal
from services.common.errors import PermissionDenied

FIRM = "firm"  # a call admitted on its QR token alone


def is_trusted(p: Principal) -> bool:
    return p is ANONYMOUS or p.has("booking.admin")


def require_qr_token(p: Principal, token: str) -> None:
    """A caller admitted without a bearer token must present the firm's QR token."""
    if p.caller == FIRM and not token:
        raise PermissionDenied(messages.NEEDS_QR_TOKEN)


def expert_filter(p: Principal) -> str:
    """The expert id a visit must belong to ('' = any): experts record only their own."""
    if is_trusted(p):
        return ""
    if p.has("booking.expert") and p.expert_id:
        return p.expert_id
    raise PermissionDenied("only the dispatched expert or booking.admin records a visit")


def may_recheck(p: Principal, ticket: Ticket) -> bool:
    """An inspector, or the expert who found it (docs/booking.md)."""
    return (
        p is ANONYMOUS
        or p.has("booking.inspector")
        or (p.has("booking.expert") and bool(p.expert_id) and p.expert_id == ticket.expert_id)
    )


def may_cancel_for_authority(p: Principal) -> None:
    if not is_trusted(p):
        raise PermissionDenied("only booking.admin cancels for the authority")


def sees_phone(p: Principal, order: Order) -> bool:
    return is_trusted(p)


def require_firm_session(p: Principal, firm_id: str) -> None:
    """A caller admitted without a bearer token acts for a firm only with its session."""
    if p.caller == FIRM and not firm_id:
        raise PermissionDenied(messages.SIGN_IN_NEEDS_SESSION)


def sees_refs(p: Principal, order: Order, firm_id: str) -> bool:
    """An order's clause refs: the firm's own session and the dispatched expert only."""
    if firm_id:
        return firm_id == order.enterprise_id
    return p.has("booking.expert") and bool(p.expert_id) and p.expert_id == order.expert_id
