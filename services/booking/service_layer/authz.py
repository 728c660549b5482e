"""Who may do what beyond scopes (README "Security", Roles).

`ANONYMOUS` is the principal when a server runs without authentication (in-process
tests only: the CLI refuses to start without a tokens file unless --dev); it is trusted.
"""

from __future__ import annotations

from services.booking.domain import messages
from services.booking.domain.firm_access import FirmAccess
from services.booking.domain.orders import Order
from services.booking.domain.staff import EVERY, Reach
from services.booking.domain.tickets import Ticket
from services.common.context import ANONYMOUS, Principal
from services.common.errors import NotFound, PermissionDenied, Unauthenticated
from services.common.regions import RegionRegistry, region_filter

FIRM = "firm"  # a call admitted on its QR token alone


def is_trusted(p: Principal) -> bool:
    return p is ANONYMOUS or p.has("booking.admin")


def require_firm_credential(p: Principal, access: FirmAccess, presented: bool = False) -> None:
    """A caller admitted without a bearer token must present the firm's QR token or its
    signed-in session: with no credential at all (`presented`: a session was sent, even
    one that signs in nobody) UNAUTHENTICATED, else PERMISSION_DENIED."""
    if p.caller == FIRM and not access.by_firm:
        if not presented:
            raise Unauthenticated(messages.NEEDS_CREDENTIAL)
        raise PermissionDenied(messages.NEEDS_CREDENTIAL)


def expert_filter(p: Principal) -> str:
    """The expert id a visit must belong to ('' = any): experts record only their own."""
    if is_trusted(p):
        return ""
    if p.has("booking.expert") and p.expert_id:
        return p.expert_id
    raise PermissionDenied(messages.ONLY_DISPATCHED_EXPERT)


def may_recheck(p: Principal, ticket: Ticket) -> bool:
    """An inspector, or the expert who found it (docs/booking.md)."""
    return (
        p is ANONYMOUS
        or p.has("booking.inspector")
        or (p.has("booking.expert") and bool(p.expert_id) and p.expert_id == ticket.expert_id)
    )


def may_cancel_for_authority(p: Principal) -> None:
    if not is_trusted(p):
        raise PermissionDenied(messages.ONLY_ADMIN_CANCELS)


def sees_phones(p: Principal) -> bool:
    """Whether `p` reads phone numbers whole: an order's contact, an expert's mobile, a
    firm's sign-in mobile (README "Security", Roles: "Phone numbers are masked except for
    booking.admin"). The one decision for every answer that carries one; everyone else,
    an expert reading their own entry and a firm its own order included, reads them as
    `entrypoints/convert.py` `phone_shown` masks them (138****5678)."""
    return is_trusted(p)


def require_firm_session(p: Principal, firm_id: str, presented: bool = False) -> None:
    """A caller admitted without a bearer token acts for a firm only with its session:
    with no credential at all (`presented`: a QR token or a session was sent)
    UNAUTHENTICATED, else PERMISSION_DENIED."""
    if p.caller == FIRM and not firm_id:
        if not presented:
            raise Unauthenticated(messages.SIGN_IN_NEEDS_SESSION)
        raise PermissionDenied(messages.SIGN_IN_NEEDS_SESSION)


def sees_refs(p: Principal, order: Order, access: FirmAccess) -> bool:
    """An order's clause refs: the firm's own session and the dispatched expert only."""
    if access.session_firm:
        return access.signed_in_as(order.enterprise_id)
    return p.has("booking.expert") and bool(p.expert_id) and p.expert_id == order.expert_id


def inspector_regions(p: Principal, regions: RegionRegistry | None) -> tuple[str, ...]:
    """The 镇街 whose tickets an inspector with a region (a staff account's, or a tokens
    file entry's `region`) may list and recheck; () = every region (admins, and callers
    without a region). A region this deployment does not know admits nothing."""
    if is_trusted(p) or not p.region or not p.has("booking.inspector"):
        return ()
    if regions is None:
        return (p.region,)
    area = regions.area(p.region)
    if area is None:
        raise PermissionDenied(messages.REGION_UNKNOWN)
    return area


def reach(p: Principal, regions: RegionRegistry | None) -> Reach:
    """The orders and tickets a staff caller may see (domain/staff.py `Reach`): a
    region-limited inspector those of its area, an expert (`expert_id`, not also an
    inspector) those of its own visits; admins, callers without either, and firms (whose
    `FirmAccess` narrows them to their own) every one."""
    if is_trusted(p) or p.caller == FIRM:
        return EVERY
    if p.has("booking.inspector"):
        return Reach(regions=inspector_regions(p, regions))
    if p.has("booking.expert") and p.expert_id:
        return Reach(expert_id=p.expert_id)
    return EVERY


def require_reach(scope: Reach, expert_id: str | None, region: str, what: str, ref: str) -> None:
    """NotFound when a record (`ref`, dispatched to `expert_id`, of a firm in `region`) is
    out of the caller's reach, answered as for an id that names nothing (the same code and
    message): an expert or a region's inspector learns nothing of the records of others,
    not even that one exists (tickets-fixes)."""
    if not scope.admits(expert_id, region):
        raise NotFound(messages.no_such(what, ref))


DASHBOARD_SCOPES = ("booking.read", "booking.inspector", "booking.admin")


def may_open_dashboard(p: Principal) -> bool:
    """Whether `p` may open /dashboard and its downloads (README "Staff pages"): the
    same rule for a staff token and a staff session (review 59 F8). Supervisors
    (booking.read), inspectors (their area only: `dashboard_region`) and admins may; an
    expert may not, whose reach is their own visits (`reach`): the overdue list names
    other experts' findings and firms, which ListTickets keeps from them too."""
    if is_trusted(p) or p.has("booking.inspector"):
        return True
    if p.has("booking.expert") and p.expert_id:
        return False
    return p.has(*DASHBOARD_SCOPES)


def require_stats_reader(p: Principal) -> None:
    """GetStats (the county's figures, or a region's) is read by whom may open /dashboard
    (`may_open_dashboard`: supervisors, inspectors, admins); an expert, whose reach is
    their own visits, is refused (PermissionDenied), as on the dashboard (tickets-fixes)."""
    if not may_open_dashboard(p):
        raise PermissionDenied(messages.STATS_FORBIDDEN)


def dashboard_region(p: Principal | None, regions: RegionRegistry | None, asked: str) -> str:
    """The region a dashboard (and its downloads) shows: what was asked, kept within a
    region-limited inspector's area (a staff account's, or a tokens-file `region`),
    whose own region it is when nothing was asked; PermissionDenied for a region outside
    it. `p` None: a server without authentication (every region)."""
    area = inspector_regions(p, regions) if p is not None else ()
    if not area:
        return asked
    if not asked:
        return p.region if p is not None else ""
    if not set(region_filter(regions, asked)) <= set(area):
        raise PermissionDenied(messages.REGION_OUTSIDE_AREA)
    return asked
