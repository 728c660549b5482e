"""The register's use cases: upsert a firm, read its status, list the white list, events.

Each handler opens one unit of work, locks the firm it changes, and commits once: a
stored profile, its decision, the white-list change and the event record land together
or not at all.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.common.values import preview
from services.rules.adapters.serialize import decision_from_json, decision_to_json
from services.rules.domain import events
from services.rules.domain.decision import Blocker, Decision, Status, without_whitelist
from services.rules.domain.errors import (
    FieldViolation,
    NotFound,
    PreconditionFailed,
    ValidationError,
)
from services.rules.domain.profile import EnterpriseProfile, parse_profile, profile_to_data
from services.rules.domain.register import DecisionRecord, EventRecord, Firm, WhitelistEntry
from services.rules.service_layer.handlers import RulesContext, evaluate, parse_as_of
from services.rules.service_layer.unit_of_work import UnitOfWork

DEFAULT_HISTORY = 20
MAX_HISTORY = 200
DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass
class StatusView:
    """What GetEnterpriseStatus, UpsertEnterprise and ReportEvent return."""

    profile: EnterpriseProfile
    decision: Decision
    decision_id: str
    entry: WhitelistEntry | None
    history: list[DecisionRecord] = field(default_factory=list)
    duplicate: bool = False


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime:
    return datetime.now(UTC)


def stored_profile(ctx: RulesContext, firm: Firm) -> EnterpriseProfile:
    """The firm's stored profile, re-validated against today's fact registry."""
    try:
        return parse_profile(firm.profile, ctx.fact_types, max_list=None)
    except ValidationError as exc:
        raise PreconditionFailed(
            f"the stored profile of {firm.enterprise_id} no longer validates "
            f"({exc.message}); send UpsertEnterprise with a corrected profile"
        ) from exc


def decide_and_store(
    uow: UnitOfWork,
    ctx: RulesContext,
    firm: Firm,
    profile: EnterpriseProfile,
    as_of: date,
    cause: str,
    revoke: Blocker | None = None,
) -> DecisionRecord:
    """Evaluate, record the decision, and move the white-list entry to match it."""
    decision = evaluate(ctx, profile, as_of)
    if revoke is not None:
        decision = without_whitelist(decision, revoke, profile, ctx.policy)
    record = DecisionRecord(
        id=new_id(),
        enterprise_id=firm.enterprise_id,
        decided_at=now(),
        as_of=as_of,
        status=decision.status.value,
        risk_level=decision.risk_level.value,
        ruleset_version=decision.ruleset_version,
        cause=cause,
        whitelist_change="",
        payload=decision_to_json(decision),
    )
    firm.profile = profile_to_data(profile)
    firm.name, firm.region = profile.name, profile.region  # before the entry copies them
    record.whitelist_change = _move_entry(uow, firm, decision, record.id, revoke)
    uow.register.add(record)
    firm.status, firm.risk_level = record.status, record.risk_level
    firm.decision_id, firm.updated_at = record.id, record.decided_at
    return record


def _move_entry(
    uow: UnitOfWork, firm: Firm, decision: Decision, decision_id: str, revoke: Blocker | None
) -> str:
    """Grant, extend, expire or revoke the firm's open entry; return what changed."""
    entry = uow.register.open_entry(firm.enterprise_id)
    day = decision.as_of
    change = ""
    if entry is not None and entry.valid_until < day:
        entry.revoked_on, entry.revoked_reason = entry.valid_until, "有效期届满 expired"
        uow.session.flush()  # the partial unique index allows one open entry at a time
        entry, change = None, "expired"
    if entry is not None and decision.status is not Status.WHITELIST:
        reason = (
            revoke.reason
            if revoke
            else "重新评估未通过：" + "；".join(b.reason for b in decision.whitelist_blockers)
        )
        entry.revoked_on, entry.revoked_reason = day, reason
        return "revoked"
    if decision.status is not Status.WHITELIST:
        return change
    if entry is not None:
        entry.valid_until, entry.decision_id = decision.valid_until, decision_id
        entry.name, entry.region = firm.name, firm.region
        return "extended"
    uow.register.add(
        WhitelistEntry(
            id=new_id(),
            enterprise_id=firm.enterprise_id,
            name=firm.name,
            region=firm.region,
            granted_on=day,
            valid_until=decision.valid_until,
            decision_id=decision_id,
        )
    )
    return "granted"


def upsert_enterprise(
    uow: UnitOfWork, ctx: RulesContext, data: Mapping[str, Any], as_of_text: str
) -> StatusView:
    """Store (or merge into) the firm's profile, evaluate it, record the decision."""
    profile = parse_profile(data, ctx.fact_types, prefix="profile.")
    as_of = parse_as_of(as_of_text) if as_of_text else ctx.today()
    for attempt in range(2):  # a racing first insert of the same firm retries once
        try:
            with uow:
                firm = uow.register.firm(profile.enterprise_id, for_update=True)
                if firm is None:
                    firm = Firm(
                        profile.enterprise_id,
                        profile.name,
                        profile.region,
                        profile_to_data(profile),
                        created_at=now(),
                        updated_at=now(),
                    )
                    uow.register.add(firm)
                    merged = profile
                else:
                    merged = events.merge_profile(stored_profile(ctx, firm), profile)
                record = decide_and_store(uow, ctx, firm, merged, as_of, "企业信息登记/更新 upsert")
                uow.commit()
                return _view(uow, ctx, firm, record)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def get_status(
    uow: UnitOfWork, ctx: RulesContext, enterprise_id: str, history_limit: int = DEFAULT_HISTORY
) -> StatusView:
    if history_limit < 0 or history_limit > MAX_HISTORY:
        raise ValidationError([FieldViolation("history_limit", f"must be 0..{MAX_HISTORY}")])
    with uow:
        firm = load_firm(uow, enterprise_id)
        record = uow.register.decision(firm.decision_id)
        if record is None:
            raise NotFound(f"firm {enterprise_id} has no decision yet")
        return _view(uow, ctx, firm, record, history_limit or DEFAULT_HISTORY)


def load_firm(uow: UnitOfWork, enterprise_id: str, *, for_update: bool = False) -> Firm:
    firm = uow.register.firm(enterprise_id, for_update=for_update) if enterprise_id else None
    if firm is None:
        raise NotFound(f"firm {preview(enterprise_id)} is not in the register")
    return firm


def _view(
    uow: UnitOfWork,
    ctx: RulesContext,
    firm: Firm,
    record: DecisionRecord,
    history_limit: int = DEFAULT_HISTORY,
    duplicate: bool = False,
) -> StatusView:
    entry = uow.register.open_entry(firm.enterprise_id)
    return StatusView(
        profile=parse_profile(firm.profile, ctx.fact_types, max_list=None),
        decision=decision_from_json(record.payload),
        decision_id=record.id,
        entry=entry,
        history=list(uow.register.history(firm.enterprise_id, history_limit)),
        duplicate=duplicate,
    )


def list_whitelist(
    uow: UnitOfWork, ctx: RulesContext, region: str, page_size: int, page_token: str
) -> tuple[list[WhitelistEntry], str]:
    """One page of active white-list entries; the token is opaque and bound to the region."""
    if page_size < 0 or page_size > MAX_PAGE:
        raise ValidationError([FieldViolation("page_size", f"must be 0..{MAX_PAGE}")])
    size = page_size or DEFAULT_PAGE
    after = _decode_token(page_token, region) if page_token else ""
    with uow:
        rows = list(uow.register.whitelist_page(region, ctx.today(), after, size + 1))
    more = len(rows) > size
    rows = rows[:size]
    token = _encode_token(region, rows[-1]) if more and rows else ""
    return rows, token


def _encode_token(region: str, last: WhitelistEntry) -> str:
    raw = "\x1e".join([region, f"{last.region}\x1f{last.enterprise_id}"])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str, region: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
        token_region, cursor = raw.split("\x1e", 1)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise ValidationError(
            [FieldViolation("page_token", "not a token this server issued")]
        ) from exc
    if token_region != region:
        raise ValidationError([FieldViolation("page_token", "was issued for another region")])
    return cursor


def report_event(
    uow: UnitOfWork, ctx: RulesContext, data: Mapping[str, Any], source: str
) -> StatusView:
    """Apply an event once: the same (caller, event_id) again returns the first result."""
    event = events.parse_event(data, ctx.fact_types)
    try:
        with uow:
            first = uow.register.event(source, event.event_id)
            if first is not None:
                return _replay(uow, ctx, first)
            firm = load_firm(uow, event.enterprise_id, for_update=True)
            record = _apply(uow, ctx, firm, event, source)
            decision = uow.register.decision(record.decision_id)
            assert decision is not None
            view = _view(uow, ctx, firm, decision)
            record.result = _snapshot(view)
            uow.commit()
            return view
    except IntegrityError:  # the same event id raced in on another connection
        with uow:
            first = uow.register.event(source, event.event_id)
            if first is None:
                raise
            return _replay(uow, ctx, first)


def _apply(
    uow: UnitOfWork, ctx: RulesContext, firm: Firm, event: events.Event, source: str
) -> EventRecord:
    outcome = events.apply(stored_profile(ctx, firm), event)
    record = EventRecord(
        source=source,
        event_id=event.event_id,
        enterprise_id=firm.enterprise_id,
        kind=event.kind.value,
        occurred_on=event.occurred_on,
        detail=event.detail,
        received_at=now(),
        summary=outcome.summary,
    )
    uow.register.add(record)
    uow.session.flush()  # the unique (source, event_id) is checked here, before any decision
    if outcome.reevaluate:
        cause = f"事件 {event.kind.name} ({event.event_id}): {outcome.summary}"
        revoke = (
            Blocker("revoked_by_event", f"白名单因事件撤销：{outcome.summary}")
            if outcome.revokes
            else None
        )
        decision = decide_and_store(uow, ctx, firm, outcome.profile, ctx.today(), cause, revoke)
        record.decision_id = decision.id
    else:
        record.decision_id = firm.decision_id  # a complaint leaves the decision standing
    return record


def _snapshot(view: StatusView) -> dict[str, Any]:
    """What a replay of this event must answer: the state right after the first time."""
    entry = view.entry
    return {
        "profile": profile_to_data(view.profile),
        "history": [r.id for r in view.history],
        "entry": None
        if entry is None
        else {
            "id": entry.id,
            "enterprise_id": entry.enterprise_id,
            "name": entry.name,
            "region": entry.region,
            "granted_on": entry.granted_on.isoformat(),
            "valid_until": entry.valid_until.isoformat(),
            "decision_id": entry.decision_id,
            "revoked_on": entry.revoked_on.isoformat() if entry.revoked_on else None,
            "revoked_reason": entry.revoked_reason,
        },
    }


def _replay(uow: UnitOfWork, ctx: RulesContext, first: EventRecord) -> StatusView:
    """The first result again, from the snapshot taken when the event was applied."""
    decision = uow.register.decision(first.decision_id)
    snap = first.result or {}
    if decision is None or not snap:
        raise PreconditionFailed(f"event {preview(first.event_id)} was recorded without its result")
    raw = snap.get("entry")
    entry = (
        None
        if raw is None
        else WhitelistEntry(
            id=raw["id"],
            enterprise_id=raw["enterprise_id"],
            name=raw["name"],
            region=raw["region"],
            granted_on=date.fromisoformat(raw["granted_on"]),
            valid_until=date.fromisoformat(raw["valid_until"]),
            decision_id=raw["decision_id"],
            revoked_on=date.fromisoformat(raw["revoked_on"]) if raw["revoked_on"] else None,
            revoked_reason=raw["revoked_reason"],
        )
    )
    history = [r for i in snap.get("history", []) if (r := uow.register.decision(i)) is not None]
    return StatusView(
        profile=parse_profile(snap["profile"], ctx.fact_types, prefix="stored.", max_list=None),
        decision=decision_from_json(decision.payload),
        decision_id=decision.id,
        entry=entry,
        history=history,
        duplicate=True,
    )
