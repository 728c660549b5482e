"""Guidance: what the rules service decided about a firm, as the firm's own page shows it.

Booking does not decide anything here: every sentence is made from the decision's own
fields (a blocker's code, reason and dates; a finding's clause, text, guidance, services
and an open hazard's deadline). When the rules service cannot be asked, the page says so
and the firm can still order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

import structlog

from services.booking.adapters.poster import ChecklistGroup
from services.booking.domain import messages
from services.booking.domain.rules_service import BlockerInfo, ClauseInfo, FindingInfo, RulesError
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork

_log = structlog.get_logger("guidance")
# a ticket id as rules repeats it in a revocation's reason ("隐患T…逾期未整改")
_TICKET_ID = re.compile(r"T[0-9a-f]{8,31}")
# a rule the register names by a word (GEN:ledger, SMALL:smoke), as a reason rules wrote
# before it named such a rule by its title (review 53 N10): never shown as a code; a
# national clause's number (GM2023:3(2)) is, as the pages' shown_ref shows it
_WORD_REF = re.compile(r" ?\b[A-Z][A-Z0-9]{1,15}:(?![0-9])[^\s:：，。；]{1,32}")
MAX_NAMED = 10  # hazards looked up for one panel
DESCRIPTION_SHOWN = 30  # characters of a finding's description naming it


def blocker_sentence(b: BlockerInfo, hazards: Mapping[str, str] | None = None) -> str:
    """One blocker in plain Chinese, from its own code, reason and dates. A revocation's
    reason comes from rules with the sentence's own prefix (shown once), and may name a
    hazard by its id: `hazards` (ticket id → what the firm reads, `hazard_names`) names
    the ones booking knows. A rule named by a word that an older reason cites by its
    code is left out (rules now names it by its title)."""
    template = messages.BLOCKER_SENTENCES.get(b.code)
    reason = b.reason
    if b.code == "revoked_by_event":
        while reason.startswith(messages.REVOKED_BY_EVENT_PREFIX):
            reason = reason.removeprefix(messages.REVOKED_BY_EVENT_PREFIX)
        reason = _TICKET_ID.sub(lambda m: (hazards or {}).get(m[0], m[0]), reason)
        reason = _WORD_REF.sub("", reason)
    dated = b.arose_on or "{arose}" not in (template or "")
    # rules' days (YYYY-MM-DD) as every page writes a day (messages.a_day: 2026年3月2日)
    arose, ends = messages.a_day(b.arose_on), messages.a_day(b.ends_on)
    if template and dated and ("{ends}" not in template or b.ends_on):
        return template.format(arose=arose, ends=ends, reason=reason)
    return f"{arose} {reason}" if b.arose_on else reason


def hazard_names(
    uow: UnitOfWork, enterprise_id: str, blockers: Iterable[BlockerInfo]
) -> dict[str, str]:
    """The hazards the blockers name by id that are tickets of this firm: each by its
    finding's description (cut short), the way the firm's ticket page shows it."""
    ids = {m[0] for b in blockers for m in _TICKET_ID.finditer(b.reason)}
    if not ids:
        return {}
    names: dict[str, str] = {}
    with uow:
        for ticket_id in sorted(ids)[:MAX_NAMED]:
            ticket = uow.register.ticket(ticket_id)
            if ticket is not None and ticket.enterprise_id == enterprise_id:
                text = " ".join(ticket.description.split())
                short = text if len(text) <= DESCRIPTION_SHOWN else text[:DESCRIPTION_SHOWN] + "…"
                names[ticket_id] = messages.HAZARD_NAMED.format(description=short)
    return names


def order_link(
    token: str, items: Iterable[str], refs: Iterable[str], menu: Mapping[str, Any]
) -> str:
    """The order form with these items ticked and these clause refs kept on the order."""
    query = [("item", i) for i in dict.fromkeys(items) if i in menu]
    query += [("ref", r) for r in dict.fromkeys(refs) if r]
    return f"/q/{token}/order" + (f"?{urlencode(query)}" if query else "")


def edition_replaced(edition: str, superseded: bool, successor: str) -> str:
    """What every page a firm reads says of a clause whose edition was replaced (a
    finding, a ticket, the self-check's questions of that standard), in plain Chinese and
    by which (rules' editions data: rulesets' superseded_on, successor); "" when it was
    not, or rules named no edition."""
    if not (superseded and edition):
        return ""
    return messages.EDITION_SUPERSEDED.format(
        edition=edition, successor=successor or messages.NEWER_EDITION
    )


def finding_view(f: FindingInfo, token: str, ctx: BookingContext) -> dict[str, Any]:
    return {
        "finding": f,
        "items": [ctx.menu[s].name for s in f.services if s in ctx.menu],
        "order_url": order_link(token, f.services, [f.ref], ctx.menu),
        "superseded": edition_replaced(f.edition, f.superseded, f.successor),
    }


def firm_status(
    ctx: BookingContext, enterprise_id: str, token: str, uow: UnitOfWork | None = None
) -> dict[str, Any]:
    """The signed-in firm's status panel; {"available": False} while rules cannot answer.
    With `uow`, a hazard a blocker names by its id is named as the firm knows it."""
    try:
        status = ctx.rules.status(enterprise_id)
    except RulesError as exc:
        _log.warning("firm status unavailable", status=exc.status)
        status = None
    if status is None:
        return {"available": False, "note": messages.STATUS_UNAVAILABLE}
    named = hazard_names(uow, enterprise_id, status.blockers) if uow is not None else {}
    if status.status == "whitelist":
        headline = messages.STATUS_WHITELIST.format(
            until=messages.a_day(status.whitelist_until or status.valid_until)
        )
    elif status.status == "priority":
        headline = messages.STATUS_PRIORITY
    else:
        headline = messages.STATUS_ROUTINE
    level = messages.RISK_LEVEL_NAMES.get(status.risk_level)
    return {
        "available": True,
        "status": status,
        "headline": headline,
        "risk": messages.RISK_LEVEL_LINE.format(level=level) if level else "",
        "no_tickets": messages.HAZARDS_WITHOUT_TICKETS if status.findings else "",
        "blockers": [blocker_sentence(b, named) for b in status.blockers],
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
