"""The register's use cases: upsert a firm, read its status, list the white list, events.

Each handler opens one unit of work, locks the firm it changes, and commits once: a
stored profile, its decision, the white-list change and the event record land together
or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar

from services.common.call_groups import one_by_one
from services.common.clock import new_id, now
from services.common.context import current_caller
from services.common.errors import Conflict, DeadlineExceeded, retry_on_conflict
from services.common.instants import as_utc, rfc3339
from services.common.paging import decode_token, one_page, page_size, query_key
from services.common.regions import region_filter
from services.common.values import preview
from services.common.vocabulary import Severity, uscc_problem
from services.rules.adapters.bulk_reevaluation import AppliedCall
from services.rules.adapters.serialize import decision_from_json, decision_to_json
from services.rules.domain import events, labels, masks
from services.rules.domain.decision import Blocker, Decision, register_day, without_whitelist
from services.rules.domain.errors import (
    AlreadyExists,
    DomainError,
    FieldViolation,
    NotFound,
    PreconditionFailed,
    ValidationError,
)
from services.rules.domain.profile import (
    EnterpriseProfile,
    canonical_stored_profile,
    parse_profile,
    profile_to_data,
)
from services.rules.domain.reevaluation import (
    Moves,
    OpenEntry,
    Reevaluated,
    StoredFirm,
    move_entry,
)
from services.rules.domain.register import (
    DecisionRecord,
    EventItem,
    EventRecord,
    Firm,
    HistoryEntry,
    WhitelistEntry,
)
from services.rules.service_layer.handlers import (
    ApplicableClauses,
    RulesContext,
    canonical_region,
    clauses_for,
    evaluate,
    hazard_violations,
    parse_as_of,
    parse_input_profile,
    server_day,
)
from services.rules.service_layer.unit_of_work import UnitOfWork

R = TypeVar("R")

DEFAULT_HISTORY = 20
MAX_HISTORY = 200


@dataclass
class StatusView:
    """What GetEnterpriseStatus, UpsertEnterprise and ReportEvent return."""

    profile: EnterpriseProfile
    decision: Decision
    decision_id: str
    entry: WhitelistEntry | None
    history: list[HistoryEntry] = field(default_factory=list)
    duplicate: bool = False


def stored_profile(ctx: RulesContext, firm: Firm | StoredFirm) -> EnterpriseProfile:
    """The firm's stored profile, re-validated against today's fact registry (one in the
    register's own shape by `canonical_stored_profile`, which gives what `parse_profile`
    would without its checker)."""
    fast = canonical_stored_profile(firm.profile, ctx.fact_types)
    if fast is not None:
        return fast
    try:
        return parse_profile(firm.profile, ctx.fact_types, max_list=None, stored=True)
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
    decision_id: str | None = None,
) -> DecisionRecord:
    """Evaluate, record the decision (under `decision_id` when the caller named it
    already), and move the white-list entry to match it.

    A lapsed entry is expired first, and flushed (the partial unique index allows one
    open entry at a time, and the ORM would insert a new one first): what the caller
    added before (an event's record, naming its decision already) is written then, and
    nothing that flush writes changes after it. The entry's revocation, extension or
    grant come next, then the decision and the firm's changes, all in the next flush
    (adapters/feed.py reads the firm's previous decision there). So every row is written,
    and audited, once, in the order a ReportEvent group writes them, and so is the feed."""
    # read before writing this call's changes: none of them moves an entry
    entry = uow.register.open_entry(firm.enterprise_id, flush=False)
    decision, by_event = _decision(ctx, profile, as_of, revoke, entry)
    record = DecisionRecord(
        id=decision_id or new_id(),
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
    move = move_entry(
        decision,
        record.id,
        _open(entry) if entry is not None else None,
        profile.name,
        profile.region,
        firm.enterprise_id,
        new_id,
        today=ctx.today(),
        by_event=by_event,
    )
    change, expired, _, _ = move
    if entry is not None and expired is not None:  # a lapsed entry closes first
        entry.revoked_on, entry.revoked_reason = expired.revoked_on, expired.revoked_reason
        entry.closed_decision_id, entry.closed_as = record.id, expired.kind
        uow.session.flush()  # the partial unique index allows one open entry at a time
    # the register remembers the entry left open, so the answer built next need not read it
    left = _moved(uow, move, record.id, revoke, entry)
    uow.register.remember_open_entry(firm.enterprise_id, left)
    record.whitelist_change = change
    uow.register.add(record)  # after a granted entry: audited in the order a group's are
    firm.profile = profile_to_data(profile)
    firm.name, firm.region = profile.name, profile.region
    firm.status, firm.risk_level = record.status, record.risk_level
    firm.decision_id, firm.updated_at = record.id, record.decided_at
    return record


def _decision(
    ctx: RulesContext,
    profile: EnterpriseProfile,
    as_of: date,
    revoke: Blocker | None,
    entry: WhitelistEntry | None,
) -> tuple[Decision, bool]:
    """The firm's decision as of `as_of`, and whether a revoking event (`revoke`: its
    blocker, dated on the event's day) revokes the firm's open entry (`entry`). It does
    when the entry was in force on the event's day or after it, up to the decision's day
    (`WhitelistEntry.in_force_from`), so a penalty dated while the entry was valid and
    reported after its end revokes it (review 53 N4: judged on the decision's day, the
    entry had lapsed and closed as expired, no revocation on record); one dated before
    the grant revokes the entry granted since (move_entry closes it on its grant day).
    Then the white list is taken away (`without_whitelist`) and only that decision says
    "白名单因事件撤销". A firm never listed, or whose entry had ended before the event,
    has nothing revoked, and its decision stands on its own criteria (review 51 C2: it
    was told its white list was revoked)."""
    decision = evaluate(ctx, profile, as_of)
    if revoke is None or entry is None or revoke.arose_on is None:
        return decision, False
    if not entry.in_force_from(min(revoke.arose_on, as_of)):
        return decision, False
    return without_whitelist(decision, revoke, profile, ctx.policy), True


def _moved(
    uow: UnitOfWork,
    move: Moves,
    decision_id: str,
    revoke: Blocker | None,
    entry: WhitelistEntry | None,
) -> WhitelistEntry | None:
    """The open entry revoked, extended or granted as `reevaluation.move_entry` (the one
    rule, which the bulk path applies too) said, on the stored entry (its expiry is
    decide_and_store's); an event's `revoke` names its reason. Returns the entry left
    open."""
    _, _, moved, granted = move
    if entry is not None and moved is not None and moved.kind == "revoked":
        entry.revoked_on = moved.revoked_on
        entry.revoked_reason = revoke.reason if revoke else moved.revoked_reason
        entry.closed_decision_id, entry.closed_as = decision_id, moved.kind
        return None
    if entry is not None and moved is not None:  # extended
        assert moved.valid_until is not None
        entry.valid_until, entry.decision_id = moved.valid_until, decision_id
        entry.name, entry.region = moved.name, moved.region
        return entry
    if granted is None:
        return None
    # an open entry's fields are the stored entry's (it names this decision already)
    added = WhitelistEntry(**asdict(granted), granted_decision_id=decision_id)
    uow.register.add(added)
    return added


def _open(entry: WhitelistEntry) -> OpenEntry:
    return OpenEntry(
        entry.id,
        entry.enterprise_id,
        entry.name,
        entry.region,
        entry.granted_on,
        entry.valid_until,
        entry.decision_id,
        entry.revoked_reason,
    )


def upsert_enterprise(
    uow: UnitOfWork,
    ctx: RulesContext,
    data: Mapping[str, Any],
    as_of_text: str,
    update_mask: Sequence[str] = (),
) -> StatusView:
    """Store (or merge into) the firm's profile, evaluate it, record the decision.

    Without a mask the sent profile replaces the stored one (the records only grow);
    with one, only the named fields change (domain/masks.py)."""
    paths = mask_paths(ctx, data, update_mask)
    if paths is not None:
        return update_masked(uow, ctx, data, as_of_text, paths)
    return apply_upserted(uow, ctx, parse_upserted(ctx, data, as_of_text))


def mask_paths(
    ctx: RulesContext, data: Mapping[str, Any], update_mask: Sequence[str]
) -> list[str] | None:
    """The update mask's validated paths; None: the sent profile replaces the stored one."""
    sent_facts = data.get("facts")
    return masks.check_paths(
        update_mask, ctx.fact_types, list(sent_facts) if isinstance(sent_facts, dict) else ()
    )


@dataclass(frozen=True)
class Upserted:
    """An UpsertEnterprise without an update mask, its profile and as_of parsed (a bad
    one never joins a group); as_of None: see `_decide_sent`."""

    profile: EnterpriseProfile
    as_of: date | None


def parse_upserted(ctx: RulesContext, data: Mapping[str, Any], as_of_text: str) -> Upserted:
    profile = parse_input_profile(ctx, data, "profile.")
    return Upserted(profile, parse_as_of(as_of_text) if as_of_text else None)


def apply_upserted(uow: UnitOfWork, ctx: RulesContext, item: Upserted) -> StatusView:
    """`upsert_enterprise` after parsing, in a transaction of its own; a racing first
    insert of the same firm retries once (and then finds the firm)."""
    return retry_on_conflict(lambda: _upsert(uow, ctx, item.profile, item.as_of))


def _upsert(
    uow: UnitOfWork, ctx: RulesContext, profile: EnterpriseProfile, as_of: date | None
) -> StatusView:
    with uow:
        firm = uow.register.firm(profile.enterprise_id, for_update=True)
        stored: EnterpriseProfile | None = None
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
            uow.flush()  # before the rows that refer to it (the ORM knows no order for them)
        else:
            stored = stored_profile(ctx, firm)
        return _decide_sent(uow, ctx, firm, profile, stored, as_of, labels.UPSERT_CAUSE)


def update_masked(
    uow: UnitOfWork,
    ctx: RulesContext,
    data: Mapping[str, Any],
    as_of_text: str,
    paths: list[str],
) -> StatusView:
    enterprise_id = data.get("enterprise_id")
    if not isinstance(enterprise_id, str) or (problem := uscc_problem(enterprise_id)):
        why = "is required" if not enterprise_id else problem
        raise ValidationError([FieldViolation("profile.enterprise_id", str(why))])
    if "region" in paths:  # a region the request sets is input; one it leaves is as stored
        data, violations = canonical_region(ctx, data, "profile.")
        if violations:
            raise ValidationError(violations)
    as_of = parse_as_of(as_of_text) if as_of_text else None  # None: see _decide_sent
    renamed = ctx.fact_types.renamed  # a fact sent by its former name: named so in errors
    with uow:
        firm = uow.register.firm(enterprise_id, for_update=True)
        if firm is None:
            raise NotFound(
                f"firm {enterprise_id} is not in the register: register it with the full "
                "profile (UpsertEnterprise without update_mask) first"
            )
        # what the request sets is validated as input (a retired fact key it sends is
        # refused, a negative number too); what it leaves is the stored profile, read as
        # stored: a fact the mask does not name is not judged again (a retired key the
        # data migration kept stays, for a person to settle; a negative number stored
        # before they were refused does not refuse an update of `contact_mobile` or
        # `employees`: review 56 D5). Only the named facts are checked as input here.
        parse_profile(
            masks.apply_mask({**firm.profile, "facts": {}}, data, paths, renamed),
            ctx.fact_types,
            prefix="profile.",
            # the request's own text passed its transport's check; the stored text is read
            # as kept (a name stored with a tab must not refuse an update of `employees`)
            controls=False,
            spelling=ctx.spelling,
        )
        sent = masks.apply_mask(firm.profile, data, paths, renamed)
        profile = parse_profile(sent, ctx.fact_types, prefix="profile.", stored=True)
        cause = labels.partial_update_cause(_names_set(ctx, paths))
        return _decide_sent(uow, ctx, firm, profile, stored_profile(ctx, firm), as_of, cause)


def _names_set(ctx: RulesContext, paths: Sequence[str]) -> list[str]:
    """What an update mask's paths set, as a person names it: a field's name, a fact's
    label (enterprise_id, which changes nothing, is not named)."""
    out = []
    for path in paths:
        if path.startswith(masks.FACT):
            known = ctx.fact_types.definition(path.removeprefix(masks.FACT))
            out.append(known.label if known is not None else labels.RETIRED_FACT)
        elif (name := labels.PROFILE_FIELD.get(path)) is not None:
            out.append(name)
    return out


def _decide_sent(
    uow: UnitOfWork,
    ctx: RulesContext,
    firm: Firm,
    sent: EnterpriseProfile,
    stored: EnterpriseProfile | None,
    as_of: date | None,
    cause: str,
) -> StatusView:
    """Inside the caller's transaction: check the clauses the sent profile cites, merge it
    into the stored one (None: a new firm, the sent profile is all there is), decide,
    record, build the answer and commit. A firm's decisions only move forward: an
    `as_of` before its current decision's is FAILED_PRECONDITION (Evaluate answers about
    any day and stores nothing); an `as_of` of today or later is raised to the day of a
    record on file dated tomorrow (decision.register_day); without one (None) the
    decision is as of today (of tomorrow when a record on file is dated tomorrow, within
    the clock skew: `_forward`), or of the current decision's day when the firm was
    decided ahead (a run for a later day). A record dated after today plus the clock
    skew is refused as ReportEvent refuses it (events.recorded_ahead)."""
    current = uow.register.decision_day(firm.decision_id)
    merged, as_of = _sent_checked(ctx, sent, stored, current, as_of)
    record = decide_and_store(uow, ctx, firm, merged, as_of, cause)
    view = _view(uow, ctx, firm, record)  # inside the transaction: no second one after
    uow.commit()
    return view


def _sent_checked(
    ctx: RulesContext,
    sent: EnterpriseProfile,
    stored: EnterpriseProfile | None,
    current: date | None,
    as_of: date | None,
) -> tuple[EnterpriseProfile, date]:
    """The profile to decide (`sent` merged into `stored`) and the day to decide it for,
    once `sent` passed the checks that need the stored firm: no record dated after today
    plus the clock skew, an `as_of` (None: `_forward`; today or later: raised to a record
    dated tomorrow, decision.register_day) not before the `current` decision's day, and
    only clauses it may cite."""
    if ahead := events.recorded_ahead(sent, stored, ctx.today()):
        raise ValidationError(ahead)
    if stored is None:  # a masked contact names no number when none is on record
        events.contact_kept("", sent.contact_mobile)
    merged = sent if stored is None else events.merge_profile(stored, sent)
    if as_of is None:
        day = _forward(ctx, current, merged)
    else:
        day = register_day(merged, as_of, ctx.today())  # today's raised to a record's day
        if current is not None and day < current:
            raise PreconditionFailed(
                f"as_of {as_of.isoformat()} is before the firm's current decision (as of "
                f"{current.isoformat()}): the register moves forward only; send an as_of on "
                "or after it, or ask Evaluate about an earlier day (it stores nothing)"
            )
    _known_clauses(ctx, sent, "profile.", stored)
    return merged, day


def _forward(ctx: RulesContext, current: date | None, profile: EnterpriseProfile) -> date:
    """The day a new decision of `profile` speaks for when none is asked: the server's day
    (today, or the day of a record on file dated ahead within the clock skew:
    handlers.server_day), or the firm's current decision's day (`current`) when that is
    later, since the register moves forward only."""
    day = server_day(ctx, profile)
    return day if current is None else max(day, current)


def _known_clauses(
    ctx: RulesContext,
    sent: EnterpriseProfile,
    prefix: str,
    firm: EnterpriseProfile | None,
) -> None:
    """Every hazard sent must cite a loaded clause, except one already on record (its
    stored state wins, so a resent copy is not judged again)."""
    on_record = {h.hazard_id for h in firm.hazards} if firm is not None else set()
    violations = hazard_violations(ctx, sent.hazards, prefix, on_record)
    if violations:
        raise ValidationError(violations)


def get_status(
    uow: UnitOfWork, ctx: RulesContext, enterprise_id: str, history_limit: int = DEFAULT_HISTORY
) -> StatusView:
    bad = []
    if problem := uscc_problem(enterprise_id):  # review 47b N4: "abc" was NOT_FOUND
        bad.append(FieldViolation("enterprise_id", problem))
    if history_limit < 0 or history_limit > MAX_HISTORY:
        bad.append(FieldViolation("history_limit", f"must be 0..{MAX_HISTORY}"))
    if bad:
        raise ValidationError(bad)
    with uow:
        firm = load_firm(uow, enterprise_id)
        record = uow.register.decision(firm.decision_id)
        if record is None:
            raise NotFound(f"firm {enterprise_id} has no decision yet")
        return _view(uow, ctx, firm, record, history_limit or DEFAULT_HISTORY)


def clauses_for_firm(
    uow: UnitOfWork,
    ctx: RulesContext,
    enterprise_id: str,
    as_of: str | None,
    severity: Severity | None = None,
) -> ApplicableClauses:
    """What applies to a firm of the register, judged on its stored profile."""
    when = parse_as_of(as_of)
    with uow:
        firm = load_firm(uow, enterprise_id)
        profile = stored_profile(ctx, firm)
    return clauses_for(ctx, profile, when, severity)


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
        profile=parse_profile(firm.profile, ctx.fact_types, max_list=None, stored=True),
        decision=decision_from_json(record.payload),
        decision_id=record.id,
        entry=entry,
        history=history_of(uow, firm.enterprise_id, history_limit),
        duplicate=duplicate,
    )


# events that never cause a decision: history items of their own
QUIET_EVENTS = tuple(k.value for k in events.EventKind if k not in events.REEVALUATING)
CAUSING_EVENTS = tuple(k.value for k in events.REEVALUATING)


def history_of(uow: UnitOfWork, enterprise_id: str, limit: int) -> list[HistoryEntry]:
    """The newest `limit` items: decisions (naming the event that caused one), the events
    that caused none, and the white-list grants and closures each decision made."""
    return _Recent.read(uow, enterprise_id, limit).items()


@dataclass
class _Recent:
    """A firm's newest history rows, as `history_of` reads them (two queries)."""

    limit: int
    decisions: list[HistoryEntry]  # the decisions' own items, newest first
    entries: list[WhitelistEntry]
    quiet: list[EventItem]

    @classmethod
    def read(cls, uow: UnitOfWork, enterprise_id: str, limit: int) -> _Recent:
        decisions, entries = uow.register.recent_history(enterprise_id, limit, CAUSING_EVENTS)
        quiet = uow.register.recent_event_items(enterprise_id, QUIET_EVENTS, limit)
        return cls(limit, decisions, entries, quiet)

    def items(self) -> list[HistoryEntry]:
        return _ranked(self.decisions, self.entries, self.quiet)[: self.limit]

    def after(
        self,
        event: EventRecord,
        decision: DecisionRecord | None,
        entries: Iterable[WhitelistEntry | None],
    ) -> list[HistoryEntry]:
        """The history `read` would give once this call's writes are in (`then`)."""
        return self.then(event, decision, entries).items()

    def then(
        self,
        event: EventRecord | None,
        decision: DecisionRecord | None,
        entries: Iterable[WhitelistEntry | None],
    ) -> _Recent:
        """What `read` would give once this call's writes are in, without reading it
        again: the rows read before them (the firm's lock kept every other writer
        out), the event, the decision it caused (None: it caused none) and the entries
        that decision may have granted or closed, as they are now (they replace the
        copies read before). Ordered and joined as the queries do: a decision names its
        event only when the event's kind causes decisions, and an event of a quiet kind
        is listed on its own even when it caused one (a complaint about a firm stored
        without a decision). No event (None): an UpsertEnterprise's decision, which
        names none."""
        decisions, quiet = self.decisions, self.quiet
        if decision is not None:  # naming the event only when its kind causes decisions
            cause = event if event is not None and event.kind in CAUSING_EVENTS else None
            decisions = sorted(
                [_decision_item(decision, cause), *decisions],
                key=lambda d: as_utc(d.recorded_at),
                reverse=True,
            )[: self.limit]
        if event is not None and event.kind in QUIET_EVENTS:  # as `read` lists them
            new = EventItem(event.event_id, event.kind, event.summary, event.received_at, event.id)
            quiet = sorted(
                [new, *quiet],
                key=lambda e: (as_utc(e.received_at), e.id if e.id is not None else 1 << 62),
                reverse=True,
            )[: self.limit]
        known = {entry.id: entry for entry in self.entries}
        for entry in entries:
            if entry is not None:
                known[entry.id] = entry
        return _Recent(self.limit, decisions, list(known.values()), quiet)


def _decision_item(d: DecisionRecord, cause: EventRecord | None) -> HistoryEntry:
    return HistoryEntry.of_decision(d, cause.event_id if cause else "", cause.kind if cause else "")


def _items(
    uow: UnitOfWork,
    enterprise_id: str,
    decisions: list[DecisionRecord],
    quiet: list[EventRecord],
) -> list[HistoryEntry]:
    ids = [d.id for d in decisions]
    causes = {
        e.decision_id: e
        for e in uow.register.events_of_decisions(enterprise_id, ids, CAUSING_EVENTS)
    }
    entries = list(uow.register.entries_of_decisions(enterprise_id, ids))
    return _ranked(
        [_decision_item(d, causes.get(d.id)) for d in decisions],
        entries,
        [EventItem(e.event_id, e.kind, e.summary, e.received_at, e.id) for e in quiet],
    )


def _ranked(
    decisions: list[HistoryEntry], entries: list[WhitelistEntry], quiet: list[EventItem]
) -> list[HistoryEntry]:
    """The decisions' items, the entries they granted or closed, and quiet events, newest
    first."""
    ranked: list[tuple[datetime, int, HistoryEntry]] = []
    for item in decisions:
        at = item.recorded_at
        ranked.append((at, 0, item))
        for entry in entries:
            if entry.closed_decision_id == item.decision_id:
                revoked = replace(
                    item, kind="whitelist_revoked", reason=entry.revoked_reason, entry=entry
                )
                ranked.append((at, 1, revoked))
            if entry.granted_decision_id == item.decision_id:
                why = f"列入白名单（无事不扰），有效期至{entry.valid_until.isoformat()}"
                granted = replace(item, kind="whitelist_granted", reason=why, entry=entry)
                ranked.append((at, 2, granted))
    for e in quiet:
        ranked.append((e.received_at, 0, HistoryEntry.of_event(e)))
    ranked.sort(key=lambda r: (as_utc(r[0]), r[1]), reverse=True)
    return [item for _, _, item in ranked]


def list_whitelist(
    uow: UnitOfWork, ctx: RulesContext, region: str, size: int, token: str
) -> tuple[list[WhitelistEntry], str]:
    """One page of active white-list entries by enterprise_id: a key no change moves, so
    a firm whose region changes between two pages is neither listed twice nor skipped
    (review 47b F4: by region, then firm, it was)."""
    today = ctx.today()
    page = _RegionPage.asked(ctx, "ListWhitelist", region, size, token)
    with uow:
        rows = list(uow.register.whitelist_page(page.names, today, page.after, page.limit))
    return page.of(rows, lambda e: e.enterprise_id)


def list_enterprises(
    uow: UnitOfWork, ctx: RulesContext, region: str, size: int, token: str
) -> tuple[list[Firm], str]:
    """One page of the register's firms by enterprise_id."""
    page = _RegionPage.asked(ctx, "ListEnterprises", region, size, token)
    with uow:
        rows = list(uow.register.firms_page(page.names, page.after, page.limit))
    return page.of(rows, lambda f: f.enterprise_id)


@dataclass(frozen=True)
class _RegionPage:
    """A page (services/common/paging.py) asked of a listing by region: `names` the
    townships of `region` (a township, or a county meaning all its townships, by name or
    code; '' for all), `after` the token's cursor (the token is bound to the listing and
    the filter's canonical form, `query`)."""

    names: tuple[str, ...]
    after: str
    size: int
    query: str

    @classmethod
    def asked(
        cls, ctx: RulesContext, listing: str, region: str, size: int, token: str
    ) -> _RegionPage:
        size = page_size(size)
        names = region_filter(ctx.regions, region)
        query = query_key(listing, ",".join(names))
        return cls(names, decode_token(token, query), size, query)

    @property
    def limit(self) -> int:
        """How many rows to read: one more than the page, to know whether another follows."""
        return self.size + 1

    def of(self, rows: list[R], key: Callable[[R], str]) -> tuple[list[R], str]:
        """The page of `rows` (read with `limit`) and the next page's token."""
        return one_page(rows, self.size, self.query, key)


def report_event(
    uow: UnitOfWork, ctx: RulesContext, data: Mapping[str, Any], source: str
) -> StatusView:
    """Apply an event once: the same (caller, event_id) with the same content again
    returns the first result; with other content it is ALREADY_EXISTS."""
    event, fingerprint = parse_reported(ctx, data)
    return apply_reported(uow, ctx, Reported(event, fingerprint, source))


@dataclass(frozen=True)
class Reported:
    """An event as ReportEvent received it, validated: what applying it needs."""

    event: events.Event
    fingerprint: str
    source: str


def parse_reported(ctx: RulesContext, data: Mapping[str, Any]) -> tuple[events.Event, str]:
    """The event and its fingerprint; INVALID_ARGUMENT naming every bad field. Needs no
    database, so a group's events are checked before they join it."""
    violations: list[FieldViolation] = []
    if isinstance(data.get("profile"), Mapping):  # PROFILE_UPDATED: its region is input
        profile, violations = canonical_region(ctx, data["profile"], "event.profile.")
        data = {**data, "profile": profile}
    try:
        event = events.parse_event(data, ctx.fact_types, ctx.today(), spelling=ctx.spelling)
    except ValidationError as exc:
        raise ValidationError(exc.violations + violations) from None
    if violations:
        raise ValidationError(violations)
    return event, events.fingerprint(event)


def apply_reported(uow: UnitOfWork, ctx: RulesContext, item: Reported) -> StatusView:
    """`report_event` after parsing: one event in a transaction of its own."""
    try:
        with uow:
            view = _report_in(uow, ctx, item)
            if not view.duplicate:
                uow.commit()
            return view
    except Conflict:  # the same event id raced in on another connection
        with uow:
            return _replay_raced(uow, ctx, item)


def apply_group(
    new_uow: Callable[[], UnitOfWork],
    ctx: RulesContext,
    items: Sequence[Reported],
    run: Callable[[int, Callable[[], StatusView]], StatusView] = lambda _n, work: work(),
) -> list[StatusView | Exception]:
    """Apply events that arrived together in one transaction, committed once: each its
    own answer (a StatusView) or error, the same as `apply_reported` one after another in
    this order would give. `run(n, work)` runs the n-th event's work (the server runs it
    in that caller's context: the audit trail names who sent it).

    As a batch (`_together`): the group's reads are one query each, every event is
    decided in memory in arrival order (several of one firm each see the ones before),
    and the group's rows are written by a few multi-row statements at the end. One
    failing event fails alone: an event refused by the rules (unknown firm, a clause or
    hazard it may not cite, a reused event_id) is refused before anything is written,
    so its error is its answer and the group goes on; should an event fail in any other
    way, or the writes fail (a copy of an event_id committed first by another process),
    the group's transaction is rolled back and every event of it is applied again alone,
    each in its own transaction (`apply_reported`). A database that cannot take the work
    (down, stalled past a timeout, the deadline) fails the whole group at once.

    Raises what fails the commit itself: then no event of the group is applied, and
    every caller must be told so."""
    keys = [(i.source, i.event.event_id) for i in items]
    firms = [i.event.enterprise_id for i in items]
    results = _together(new_uow(), ctx, items, run, firms, keys)
    if results is not None:
        return results
    return one_by_one(items, run, lambda item: apply_reported(new_uow(), ctx, item))


def apply_upsert_group(
    new_uow: Callable[[], UnitOfWork],
    ctx: RulesContext,
    items: Sequence[Upserted],
    run: Callable[[int, Callable[[], StatusView]], StatusView] = lambda _n, work: work(),
) -> list[StatusView | Exception]:
    """UpsertEnterprise calls that arrived together, as `apply_group` applies events: in
    one transaction, decided in memory one after another in arrival order (several of one
    firm each see the ones before), written by a few multi-row statements, committed once;
    each answer or error the same as `apply_upserted` one after another would give. A
    firm not yet in the register is stored with the group's rows; should another
    transaction store it first (the group's insert then fails), or the writes fail in any
    other way, the group is applied call by call."""
    firms = [i.profile.enterprise_id for i in items]
    results = _together(new_uow(), ctx, items, run, firms, [])
    if results is not None:
        return results
    return one_by_one(items, run, lambda item: apply_upserted(new_uow(), ctx, item))


def _together(
    uow: UnitOfWork,
    ctx: RulesContext,
    items: Sequence[Reported | Upserted],
    run: Callable[[int, Callable[[], StatusView]], StatusView],
    firms: Sequence[str],
    keys: Sequence[tuple[str, str]],
) -> list[StatusView | Exception] | None:
    """The group in one transaction; None: rolled back, to be applied call by call.

    Read first, in one query each (`BatchRegister.group_reads`: on PostgreSQL all in one
    round trip, the lock before the reads): the group's firms (locked in id order, so two
    groups of two processes never wait on each other in a cycle) with their current
    decision's day, which of its event ids are recorded, the firms' open white-list
    entries and their recent histories (decisions, quiet events). Each call is then
    applied in memory, in its caller's context (`_Group.apply`); the rows are written at
    the end (`BatchRegister.write_events`). `firms`: the items' firms; `keys`: their
    (source, event_id) keys (none for upserts)."""
    results: list[StatusView | Exception] = []
    with uow:
        group = _Group.read(uow, ctx, firms, keys)
        for n, item in enumerate(items):
            try:
                view = run(n, partial(group.apply, item))
            except DeadlineExceeded:
                raise  # the group's deadline: each call alone would only wait again
            except DomainError as exc:  # refused before it changed anything
                results.append(exc)
                continue
            except Exception as exc:
                if _database_down(uow, exc):
                    raise  # the database itself: each call alone would only wait again
                return None
            results.append(view)
        try:
            uow.batch.write_events(group.applied)
        except Exception as exc:
            if _database_down(uow, exc):
                raise
            return None  # e.g. an event_id or a new firm another process committed first
        uow.commit()
    return results


def _database_down(uow: UnitOfWork, exc: Exception) -> bool:
    """Whether a group's failure says the database cannot take work now, so that each
    call alone would only wait again. A deadlock or serialization failure says another
    transaction won a race the group's many locks formed (two groups inserting the same
    callers' event ids in opposite orders): each call alone, holding few locks, is then
    answered as it would have been (review 36 F2), not "unavailable"."""
    return uow.unavailable(exc) and not uow.lost_race(exc)


@dataclass
class _FirmNow:
    """A firm of a group as the calls applied so far left it."""

    firm: StoredFirm
    entry: WhitelistEntry | None  # its open white-list entry
    recent: _Recent


@dataclass
class _Group:
    """A ReportEvent or UpsertEnterprise group being applied in memory: what one call
    after another in their own transactions would read, kept up to date as each is
    applied."""

    uow: UnitOfWork
    ctx: RulesContext
    firms: dict[str, _FirmNow]
    recorded: set[tuple[str, str]]  # recorded before the group
    made: dict[tuple[str, str], EventRecord] = field(default_factory=dict)
    decisions: dict[str, DecisionRecord] = field(default_factory=dict)  # made by the group
    applied: list[AppliedCall] = field(default_factory=list)

    @classmethod
    def read(
        cls,
        uow: UnitOfWork,
        ctx: RulesContext,
        enterprise_ids: Sequence[str],
        keys: Sequence[tuple[str, str]],
    ) -> _Group:
        read = uow.batch.group_reads(
            enterprise_ids,
            keys,
            DEFAULT_HISTORY,
            CAUSING_EVENTS,
            QUIET_EVENTS,
        )
        firms: dict[str, _FirmNow] = {}
        for f, entry in read.firms:  # each with its open white-list entry
            decided, closed = read.histories[f.enterprise_id]
            recent = _Recent(DEFAULT_HISTORY, decided, closed, read.quiet[f.enterprise_id])
            firms[f.enterprise_id] = _FirmNow(f, entry, recent)
        return cls(uow, ctx, firms, read.recorded)

    def apply(self, item: Reported | Upserted) -> StatusView:
        """One call of the group, on the state the ones before left."""
        return self.upsert(item) if isinstance(item, Upserted) else self.report(item)

    def upsert(self, item: Upserted) -> StatusView:
        """`_upsert` in memory (`_decide_sent`'s checks first: nothing of the group changes
        until they passed). A firm not in the register (nor stored by an upsert before
        this one in the group) is stored by this one: its row goes in with the group's
        rows, as it was sent and without a decision, as the per-call path inserts it."""
        ctx, sent = self.ctx, item.profile
        now_ = self.firms.get(sent.enterprise_id)
        created = now_ is None
        if now_ is None:
            data = profile_to_data(sent)
            firm = StoredFirm(sent.enterprise_id, sent.name, sent.region, data, "", "", None, None)
            merged, as_of = _sent_checked(ctx, sent, None, None, item.as_of)
            now_ = _FirmNow(firm, None, _Recent(DEFAULT_HISTORY, [], [], []))
        else:
            firm = now_.firm
            stored = stored_profile(ctx, firm)
            merged, as_of = _sent_checked(ctx, sent, stored, firm.decided_on, item.as_of)
        done, caused = _decided(ctx, firm, now_.entry, merged, as_of, labels.UPSERT_CAUSE, None)
        view, after = self._moved_on(now_, None, done, caused, merged)
        self.firms[sent.enterprise_id] = now_
        caller = current_caller()
        self.applied.append(
            AppliedCall(None, done, caused.payload, caller, after.region, created=created)
        )
        return view

    def report(self, item: Reported) -> StatusView:
        """`_report_in` for one event of the group, on the state the ones before left."""
        event, source = item.event, item.source
        key = (source, event.event_id)
        first = self.made.get(key)
        if first is None and key in self.recorded:
            first = self.uow.register.event(source, event.event_id)
        if first is not None:
            return _replay(self.uow, self.ctx, first, event, item.fingerprint, self._decision)
        now_ = self.firms.get(event.enterprise_id)
        if now_ is None:
            raise NotFound(f"firm {preview(event.enterprise_id)} is not in the register")
        return self._apply(now_, item)

    def _decision(self, decision_id: str | None) -> DecisionRecord | None:
        made = self.decisions.get(decision_id or "")
        return made if made is not None else self.uow.register.decision(decision_id)

    def _apply(self, now_: _FirmNow, item: Reported) -> StatusView:
        """`_apply` in memory: nothing of the group changes until every check passed."""
        ctx, event, firm = self.ctx, item.event, now_.firm
        stored, outcome = _event_outcome(ctx, firm, event)
        decide = outcome.reevaluate or firm.decision_id is None
        standing = None if decide else self._decision(firm.decision_id)
        record = _event_record(firm.enterprise_id, event, outcome, item.source, item.fingerprint)
        record.decision_id = firm.decision_id  # a complaint leaves the decision standing
        caused: DecisionRecord | None = None
        done: Reevaluated | None = None
        if decide:
            reason = labels.revoked_by_event(outcome.summary)
            revoke = (
                Blocker("revoked_by_event", reason, event.occurred_on) if outcome.revokes else None
            )
            done, caused = _decided(
                ctx,
                firm,
                now_.entry,
                outcome.profile,
                _forward(ctx, firm.decided_on, outcome.profile),
                labels.event_cause(event.kind, event.event_id, outcome.summary),
                revoke,
            )
            record.decision_id = caused.id
        decision = caused or standing
        assert decision is not None
        view, after = self._moved_on(now_, record, done, decision, stored)
        record.result = _snapshot(view)
        self.made[(item.source, event.event_id)] = record
        payload = caused.payload if caused is not None else None
        self.applied.append(AppliedCall(record, done, payload, current_caller(), after.region))
        return view

    def _moved_on(
        self,
        now_: _FirmNow,
        record: EventRecord | None,
        done: Reevaluated | None,
        decision: DecisionRecord,
        stored: EnterpriseProfile,
    ) -> tuple[StatusView, StoredFirm]:
        """The call's answer, and the firm after it: `done` (None: nothing decided, the
        firm's `decision` stands and its profile stays `stored`) applied to the firm as the
        calls before left it, after the event `record` (None: an upsert). The group's
        state moves on with it."""
        firm, before = now_.firm, now_.entry
        after, closed, left, profile = firm, before, before, stored
        caused = decision if done is not None else None
        if done is not None:
            closed, left = _entries_after(before, done)
            after = StoredFirm(
                firm.enterprise_id,
                done.name,
                done.region,
                done.profile or firm.profile,
                decision.status,
                decision.risk_level,
                decision.id,
                decision.as_of,
            )
            profile = canonical_stored_profile(after.profile, self.ctx.fact_types) or parse_profile(
                after.profile, self.ctx.fact_types, max_list=None, stored=True
            )
            self.decisions[decision.id] = decision
        recent = now_.recent.then(record, caused, (closed, left))
        view = StatusView(
            profile=profile,
            decision=decision_from_json(decision.payload),
            decision_id=decision.id,
            entry=left,
            history=recent.items(),
        )
        now_.firm, now_.entry, now_.recent = after, left, recent
        return view, after


def _decided(
    ctx: RulesContext,
    firm: StoredFirm,
    entry: WhitelistEntry | None,
    profile: EnterpriseProfile,
    as_of: date,
    cause: str,
    revoke: Blocker | None,
) -> tuple[Reevaluated, DecisionRecord]:
    """`decide_and_store` in memory: the decision, its record, and the entry's move."""
    decision, by_event = _decision(ctx, profile, as_of, revoke, entry)
    decision_id, decided_at = new_id(), now()
    name, region = profile.name, profile.region
    change, expired, moved, granted = move_entry(
        decision,
        decision_id,
        _open(entry) if entry is not None else None,
        name,
        region,
        firm.enterprise_id,
        new_id,
        today=ctx.today(),
        by_event=by_event,
    )
    if moved is not None and moved.kind == "revoked" and revoke is not None:
        moved = replace(moved, revoked_reason=revoke.reason)  # the event's reason
    record = DecisionRecord(
        id=decision_id,
        enterprise_id=firm.enterprise_id,
        decided_at=decided_at,
        as_of=as_of,
        status=decision.status.value,
        risk_level=decision.risk_level.value,
        ruleset_version=decision.ruleset_version,
        cause=cause,
        whitelist_change=change,
        payload=decision_to_json(decision),
    )
    done = Reevaluated(
        firm,
        decision,
        decision_id,
        decided_at,
        cause,
        change,
        name,
        region,
        profile_to_data(profile),
        expired,
        moved,
        granted,
    )
    return done, record


def _entries_after(
    before: WhitelistEntry | None, done: Reevaluated
) -> tuple[WhitelistEntry | None, WhitelistEntry | None]:
    """(the entry open before, as the decision left it; the entry left open), as `_moved`
    moves the stored ones, on copies (an answer given already keeps what it showed)."""
    decision_id, expired, moved, granted = done.decision_id, done.expired, done.moved, done.granted
    entry = before
    if entry is not None and expired is not None:
        entry = replace(
            entry,
            revoked_on=expired.revoked_on,
            revoked_reason=expired.revoked_reason,
            closed_decision_id=decision_id,
        )
    if entry is not None and moved is not None and moved.kind == "revoked":
        closed = replace(
            entry,
            revoked_on=moved.revoked_on,
            revoked_reason=moved.revoked_reason,
            closed_decision_id=decision_id,
        )
        return closed, None
    if entry is not None and moved is not None:  # extended
        assert moved.valid_until is not None
        entry = replace(
            entry,
            valid_until=moved.valid_until,
            decision_id=decision_id,
            name=moved.name,
            region=moved.region,
        )
        return entry, entry
    if granted is None:
        return entry, None
    return entry, WhitelistEntry(**asdict(granted), granted_decision_id=decision_id)


def _report_in(uow: UnitOfWork, ctx: RulesContext, item: Reported) -> StatusView:
    """Inside the caller's transaction: replay a recorded event, or apply a new one (not
    committed: the caller commits unless the answer is a replay)."""
    event, source = item.event, item.source
    # the firm locked and the duplicate check in one query; the record only when it is a
    # replay (or the firm is unknown: a reused event_id is ALREADY_EXISTS)
    firm, recorded = uow.register.firm_for_event(event.enterprise_id, source, event.event_id)
    if recorded or firm is None:
        first = uow.register.event(source, event.event_id)
        if first is not None:
            return _replay(uow, ctx, first, event, item.fingerprint)
    if firm is None:
        raise NotFound(f"firm {preview(event.enterprise_id)} is not in the register")
    return _apply(uow, ctx, firm, event, source, item.fingerprint)


def _replay_raced(uow: UnitOfWork, ctx: RulesContext, item: Reported) -> StatusView:
    """After a Conflict on the event's own key: the copy that got there first, replayed."""
    first = uow.register.event(item.source, item.event.event_id)
    if first is None:
        raise Conflict("a concurrent change got there first; try again")
    return _replay(uow, ctx, first, item.event, item.fingerprint)


def _event_record(
    enterprise_id: str, event: events.Event, outcome: events.Outcome, source: str, fingerprint: str
) -> EventRecord:
    """The row that records `event`, received now."""
    return EventRecord(
        source=source,
        event_id=event.event_id,
        enterprise_id=enterprise_id,
        kind=event.kind.value,
        occurred_on=event.occurred_on,
        detail=event.detail,
        received_at=now(),
        summary=outcome.summary,
        fingerprint=fingerprint,
    )


def _event_outcome(
    ctx: RulesContext, firm: Firm | StoredFirm, event: events.Event
) -> tuple[EnterpriseProfile, events.Outcome]:
    """The firm's stored profile and what `event` does to it, once every clause a
    PROFILE_UPDATED profile cites is known (ValidationError names the field that cites one
    that is not). A hazard found on site, MAJOR (review 67 F2) or GENERAL, is taken
    whatever the loaded rulesets say of its clause: booking checked the clause when the
    expert recorded it, and a ruleset change that removed the clause before the report
    arrived (rules down, the outbox behind) refused it for good, so the register never saw
    the hazard (a major one left the firm on the white list) and booking parked the report,
    holding every later report of the firm behind it. Its finding then cites the clause by
    its ref, saying the rulesets no longer have it (decision.py `_hazard_finding`)."""
    stored = stored_profile(ctx, firm)
    title = ""  # the cited clause's, for the summary (labels.hazard_found)
    if event.hazard is not None:
        cited = ctx.catalogue.clause(event.hazard.clause_ref, event.occurred_on)
        title = cited.title if cited is not None else ""
    if event.profile is not None:
        _known_clauses(ctx, event.profile, "event.profile.", stored)
    return stored, events.apply(stored, event, title)


def _apply(
    uow: UnitOfWork,
    ctx: RulesContext,
    firm: Firm,
    event: events.Event,
    source: str,
    fingerprint: str,
) -> StatusView:
    """Record the event and what it causes; the answer, kept on the event for replays.

    The answer's history is read before the writes and completed with them (_Recent.after),
    so the writes go to the database once, at commit, the snapshot with the event's row."""
    _, outcome = _event_outcome(ctx, firm, event)
    # a firm stored without a decision (a bulk import not yet re-evaluated) gets one now,
    # even from an event that would leave a standing decision alone (a complaint)
    decide = outcome.reevaluate or firm.decision_id is None
    # the decision left standing, whole (the history read below loads only what it shows)
    standing = None if decide else uow.register.decision(firm.decision_id)
    before = uow.register.open_entry(firm.enterprise_id, flush=False)
    uow.register.remember_open_entry(firm.enterprise_id, before)  # for decide_and_store
    recent = _Recent.read(uow, firm.enterprise_id, DEFAULT_HISTORY)
    record = _event_record(firm.enterprise_id, event, outcome, source, fingerprint)
    # named before the writes, so the event's row is written once with its decision's id
    # (decide_and_store's entry move may flush); a racing copy of (source, event_id)
    # fails at commit: replayed
    record.decision_id = new_id() if decide else firm.decision_id
    uow.register.add(record)
    caused: DecisionRecord | None = None
    if decide:
        cause = labels.event_cause(event.kind, event.event_id, outcome.summary)
        revoke = (
            Blocker("revoked_by_event", labels.revoked_by_event(outcome.summary), event.occurred_on)
            if outcome.revokes
            else None
        )
        # the register moves forward only: a firm decided ahead is decided for that day;
        # its current decision is the newest of the history just read (no query for it)
        current = next(
            (d.as_of for d in recent.decisions if d.decision_id == firm.decision_id), None
        )
        if current is None:
            current = uow.register.decision_day(firm.decision_id)
        caused = decide_and_store(
            uow,
            ctx,
            firm,
            outcome.profile,
            _forward(ctx, current, outcome.profile),
            cause,
            revoke,
            record.decision_id,
        )
    decision = caused or standing  # a complaint leaves the decision standing
    assert decision is not None
    entry = uow.register.open_entry(firm.enterprise_id, flush=False)  # remembered: no query
    view = StatusView(
        profile=parse_profile(firm.profile, ctx.fact_types, max_list=None, stored=True),
        decision=decision_from_json(decision.payload),
        decision_id=decision.id,
        entry=entry,
        history=recent.after(record, caused, (before, entry)),
    )
    record.result = _snapshot(view)
    return view


def _snapshot(view: StatusView) -> dict[str, Any]:
    """What a replay of this event must answer: the state right after the first time."""
    return {
        "profile": profile_to_data(view.profile),
        "history": [i.decision_id for i in view.history if i.kind == "decision"],
        "history_items": [_item_json(i) for i in view.history],
        "entry": _entry_json(view.entry),
    }


def _entry_json(entry: WhitelistEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "id": entry.id,
        "enterprise_id": entry.enterprise_id,
        "name": entry.name,
        "region": entry.region,
        "granted_on": entry.granted_on.isoformat(),
        "valid_until": entry.valid_until.isoformat(),
        "decision_id": entry.decision_id,
        "revoked_on": entry.revoked_on.isoformat() if entry.revoked_on else None,
        "revoked_reason": entry.revoked_reason,
    }


def _entry_from_json(raw: dict[str, Any] | None) -> WhitelistEntry | None:
    if raw is None:
        return None
    return WhitelistEntry(
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


def _item_json(item: HistoryEntry) -> dict[str, Any]:
    return {
        "recorded_at": as_utc(item.recorded_at).isoformat(),
        "kind": item.kind,
        "decision_id": item.decision_id,
        "status": item.status,
        "risk_level": item.risk_level,
        "as_of": item.as_of.isoformat() if item.as_of else None,
        "ruleset_version": item.ruleset_version,
        "reason": item.reason,
        "event_id": item.event_id,
        "event_kind": item.event_kind,
        "entry": _entry_json(item.entry),
    }


def _item_from_json(raw: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        recorded_at=datetime.fromisoformat(raw["recorded_at"]),
        kind=raw["kind"],
        decision_id=raw["decision_id"],
        status=raw["status"],
        risk_level=raw["risk_level"],
        as_of=date.fromisoformat(raw["as_of"]) if raw["as_of"] else None,
        ruleset_version=raw["ruleset_version"],
        reason=raw["reason"],
        event_id=raw["event_id"],
        event_kind=raw["event_kind"],
        entry=_entry_from_json(raw["entry"]),
    )


def _same_event(first: EventRecord, event: events.Event, fingerprint: str) -> bool:
    if first.fingerprint is not None:
        return first.fingerprint == fingerprint
    # recorded before events kept a fingerprint: compare what is certain
    return (first.enterprise_id, first.kind, first.occurred_on) == (
        event.enterprise_id,
        event.kind.value,
        event.occurred_on,
    )


def _replay(
    uow: UnitOfWork,
    ctx: RulesContext,
    first: EventRecord,
    event: events.Event,
    fingerprint: str,
    decision_of: Callable[[str | None], DecisionRecord | None] | None = None,
) -> StatusView:
    """The first result again, from the snapshot taken when the event was applied; an
    event_id reused for another event is refused, so that event is not silently lost.
    `decision_of`: how to find a decision (default: read it; a group knows the ones it
    made and has not written yet)."""
    if not _same_event(first, event, fingerprint):
        raise AlreadyExists(
            f"event_id {first.event_id[:64]!r} was already used by this caller for an event "
            f"with different content ({first.kind} of {first.enterprise_id} on "
            f"{first.occurred_on.isoformat()}, received {rfc3339(first.received_at)}); "
            "a new event needs a new event_id, a retry must resend the same content"
        )
    decision = (decision_of or uow.register.decision)(first.decision_id)
    snap = first.result or {}
    if decision is None or not snap:
        raise PreconditionFailed(f"event {preview(first.event_id)} was recorded without its result")
    if "history_items" in snap:
        history = [_item_from_json(i) for i in snap["history_items"]]
    else:  # a snapshot from before history items: its decisions, as recorded now
        decisions = [r for i in snap.get("history", []) if (r := uow.register.decision(i))]
        history = _items(uow, first.enterprise_id, decisions, [])
    return StatusView(
        profile=parse_profile(
            snap["profile"], ctx.fact_types, prefix="stored.", max_list=None, stored=True
        ),
        decision=decision_from_json(decision.payload),
        decision_id=decision.id,
        entry=_entry_from_json(snap.get("entry")),
        history=history,
        duplicate=True,
    )
