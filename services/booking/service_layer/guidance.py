"""Guidance: what the rules service decided about a firm, as the firm's own page shows it.

Booking does not decide anything here: every sentence is made from the decision's own
fields (a blocker's code, reason and dates; a finding's clause, text, guidance, services
and an open hazard's deadline). When the rules service cannot be asked, the page says so
and the firm can still order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import structlog

from services.booking.adapters.poster import ChecklistGroup
from services.booking.domain import messages
from services.booking.domain.rules_service import BlockerInfo, ClauseInfo, FindingInfo, RulesError
from services.booking.service_layer.ports import BookingContext

_log = structlog.get_logger("guidance")


def blocker_sentence(b: BlockerInfo) -> str:
    """One blocker in plain Chinese, from its own code, reason and dates."""
    template = messages.BLOCKER_SENTENCES.get(b.code)
    dated = b.arose_on or "{arose}" not in (template or "")
    if template and dated and ("{ends}" not in template or b.ends_on):
        return template.format(arose=b.arose_on, ends=b.ends_on, reason=b.reason)
    return f"{b.arose_on} {b.reason}" if b.arose_on else b.reason


def order_link(
    token: str, items: Iterable[str], refs: Iterable[str], menu: Mapping[str, Any]
) -> str:
    """The order form with these items ticked and these clause refs kept on the order."""
    query = [("item", i) for i in dict.fromkeys(items) if i in menu]
    query += [("ref", r) for r in dict.fromkeys(refs) if r]
    return f"/q/{token}/order" + (f"?{urlencode(query)}" if query else "")


def finding_view(f: FindingInfo, token: str, ctx: BookingContext) -> dict[str, Any]:
    return {
        "finding": f,
        "items": [ctx.menu[s].name for s in f.services if s in ctx.menu],
        "order_url": order_link(token, f.services, [f.ref], ctx.menu),
    }


def firm_status(ctx: BookingContext, enterprise_id: str, token: str) -> dict[str, Any]:
    """The signed-in firm's status panel; {"available": False} while rules cannot answer."""
    try:
        status = ctx.rules.status(enterprise_id)
    except RulesError as exc:
        _log.warning("firm status unavailable", status=exc.status)
        status = None
    if status is None:
        return {"available": False, "note": messages.STATUS_UNAVAILABLE}
    if status.status == "whitelist":
        headline = messages.STATUS_WHITELIST.format(
            until=status.whitelist_until or status.valid_until
        )
    elif status.status == "priority":
        headline = messages.STATUS_PRIORITY
    else:
        headline = messages.STATUS_ROUTINE
    return {
        "available": True,
        "status": status,
        "headline": headline,
        "blockers": [blocker_sentence(b) for b in status.blockers],
        "hazards": [finding_view(f, token, ctx) for f in status.findings],
        "all_url": order_link(
            token, status.recommended_services, [f.ref for f in status.findings], ctx.menu
        ),
    }


def checklist_groups(clauses: Iterable[ClauseInfo]) -> list[ChecklistGroup]:
    """Major-hazard clauses grouped by standard, in catalogue order, by short title."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for c in clauses:
        if c.severity != "major":
            continue
        _title, titles = groups.setdefault(c.standard_id, (c.standard_title, []))
        if c.title not in titles:
            titles.append(c.title or c.clause)
    return [ChecklistGroup(title, tuple(titles)) for title, titles in groups.values()]


def checklist(ctx: BookingContext, enterprise_id: str) -> list[ChecklistGroup]:
    """The firm's checklist; empty (the poster still prints) when rules cannot answer."""
    try:
        return checklist_groups(ctx.rules.applicable(enterprise_id, major_only=True))
    except RulesError as exc:
        _log.warning("checklist unavailable", enterprise_id=enterprise_id, status=exc.status)
        return []
