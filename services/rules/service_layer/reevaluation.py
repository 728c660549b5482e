"""Periodic re-evaluation of every stored firm: batched, resumable, never one giant transaction.

A run is keyed by its as_of date and its mode (`ReevaluationRun.raised`, fixed when it
starts: a run as of today or a later day decides a firm with a record dated the day
after as of that day, decision.register_day; a run as of a past day decides every firm
as of that day exactly). Each batch of firms is re-evaluated and the run's
cursor advanced in the same transaction, so an interrupted run resumes after the last
committed batch and no firm is evaluated twice for the same run.

A run may be split into ranges of firm ids (`reevaluate --all --processes N`, one
process per range): the run's record is then a parent, and each range has a record of
its own with its own cursor, so every range resumes on its own and no two processes
ever hold the same firm. A batch is read as plain values (domain/reevaluation.py) and
written with multi-row statements by the unit of work's `batch` register
(adapters/bulk_reevaluation.py); its rows are those the per-call handlers would write.

A range's batch may be worked out before its write transaction, from a read snapshot,
and checked again inside it (`_batch`, `read_ahead`): the processes of a run on SQLite
then take turns at its one write lock only for the writing, one deciding its next batch
while the other writes (PostgreSQL's ranges never wait on each other).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TypedDict, Unpack

import structlog

from services.common.clock import IdSource, new_id, now, short_id
from services.common.context import current_caller
from services.rules.adapters.bulk_reevaluation import BatchRows, rows_of
from services.rules.domain import labels
from services.rules.domain.decision import names_a_kind, out_of_scope_breach, register_day
from services.rules.domain.errors import PreconditionFailed
from services.rules.domain.events import CLOCK_SKEW
from services.rules.domain.profile import (
    EnterpriseProfile,
    canonical_stored_profile,
    profile_to_data,
)
from services.rules.domain.reevaluation import OpenEntry, Reevaluated, StoredFirm, move_entry
from services.rules.domain.register import ReevaluationRun
from services.rules.domain.standards import Catalogue, Clause
from services.rules.service_layer.handlers import RulesContext, evaluate
from services.rules.service_layer.register_handlers import stored_profile
from services.rules.service_layer.unit_of_work import UnitOfWork

_log = structlog.get_logger("reevaluate")


def stale_parts(ctx: RulesContext, profile: EnterpriseProfile, as_of: date) -> list[str]:
    """What of a stored profile a person should settle: retired fact keys the data
    migration left (ambiguous), open hazards citing clauses no loaded edition has, and
    answered facts of clauses that need a venue type or chemicals role the profile does
    not list (a profile from before those fields existed), and a region that
    rulesets/regions.yaml does not list (stored before regions were checked, or since
    removed from the file: the firm is still evaluated, a region changes no decision, but
    it is missing from every region filter until UpsertEnterprise sends a listed one)."""
    parts = [f"fact {k}" for k in profile.facts if k in ctx.fact_types.retired]
    if ctx.regions is not None and ctx.regions.township(profile.region) is None:
        parts.append(f"region {profile.region[:24]!r} is not in regions.yaml")
    parts += [
        f"hazard {h.hazard_id} cites {h.clause_ref}"
        for h in profile.hazards
        if h.is_open and ctx.catalogue.clause(h.clause_ref) is None
    ]
    return parts + out_of_scope(ctx, profile, as_of)


def out_of_scope(ctx: RulesContext, profile: EnterpriseProfile, as_of: date) -> list[str]:
    """`answered_out_of_scope`, asked only of the clauses that name a venue type or
    chemicals role and ask a fact the profile answers (an index per catalogue and date,
    built once): the same list, in the same order."""
    clauses, by_fact = _clauses_by_fact(ctx.catalogue, as_of)
    wanted = {n for k in profile.facts for n in by_fact.get(k, ())}
    found = []
    for n in sorted(wanted):
        if text := out_of_scope_breach(clauses[n], profile):
            found.append(text)
    return found


_INDEXES: dict[
    tuple[int, date], tuple[Catalogue, tuple[Clause, ...], dict[str, tuple[int, ...]]]
] = {}


def _clauses_by_fact(
    catalogue: Catalogue, as_of: date
) -> tuple[tuple[Clause, ...], dict[str, tuple[int, ...]]]:
    """The clauses in force (`answered_out_of_scope`'s walk), and fact key → positions
    of those among them that name a venue type or chemicals role and ask it; kept per
    catalogue (held, so its id is not reused) and date."""
    known = _INDEXES.get((id(catalogue), as_of))
    if known is not None:
        return known[1], known[2]
    if len(_INDEXES) > 8:
        _INDEXES.clear()
    clauses = tuple(c for s in catalogue.in_force(as_of) for c in s.clauses)
    index: dict[str, list[int]] = {}
    for n, clause in enumerate(clauses):
        if names_a_kind(clause):
            for key in clause.condition.fact_keys():
                index.setdefault(key, []).append(n)
    found = {k: tuple(v) for k, v in index.items()}
    _INDEXES[(id(catalogue), as_of)] = (catalogue, clauses, found)
    return clauses, found


@dataclass
class RunSummary:
    run_id: str
    as_of: date
    processed: int
    resumed: bool
    total: int
    skipped: list[str]
    attention: list[str] = field(default_factory=list)
    raised: bool = False  # the run's mode (ReevaluationRun.raised)
    ahead: int = 0  # firms decided for the day after `as_of` (a record dated that day)


@dataclass(frozen=True)
class Started:
    """A run started or resumed: its id, and the ids of the range records still to do
    (the run's own id when it is not split into ranges)."""

    run_id: str
    resumed: bool
    total: int
    ranges: list[str]


MIN_RANGE = 1000  # firms per range below which a run is not split (processes cost a start)
BATCH_SIZE = 1000  # firms per transaction: each commit costs (SQLite's WAL checkpoints)
# SQLite: the size of its write-ahead log's file past which a read-ahead range truncates
# it after a batch (`UnitOfWork.checkpoint`, which never waits: a log in use is tried
# again after the next batch). SQLite's own checkpoints at commit kept it at 16–33 MB in
# runs of 40,000–300,000 firms, two processes, 1,000 firms a batch (stop 29, review 44);
# truncating after every batch instead made each process wait for the other's writing
# and reading: 300,000 firms took 26–27 s instead of 20–22 s (measured).
LOG_LIMIT = 64 * 1024 * 1024


def start_run(
    uow: UnitOfWork, as_of: date, parts: int = 1, *, today: date, min_range: int = MIN_RANGE
) -> Started:
    """Resume the unfinished run for `as_of` in the mode `as_of` has on `today` (raised:
    today or a later day; see ReevaluationRun.raised), or start one in that mode: a run
    begun as of today and resumed once that day has passed would decide the rest of its
    firms by the other rule, so it is not resumed (a new run starts). A new run is split
    into at most `parts` ranges of about equal size, as many as give each at least
    `min_range` firms (a register of fewer than 2 × `min_range` is not split). A resumed
    run keeps the ranges it was started with (whatever `parts` says now)."""
    raised = as_of >= today
    with uow:
        total = uow.register.firm_count()
        run = uow.register.unfinished_run(as_of, raised)
        if run is not None:
            ranges = uow.batch.ranges_of(run.id)
            todo = [r.id for r in ranges if r.finished_at is None] if ranges else [run.id]
            return Started(run.id, True, total, todo)
        run = ReevaluationRun(
            id=new_id(),
            as_of=as_of,
            started_at=now(),
            processed=0,
            last_enterprise_id="",
            raised=raised,
        )
        uow.register.add(run)
        todo = [run.id]
        # as many as `min_range` allows: an all-or-nothing split left 40,000 firms on 41
        # cores to one process (review 44 F3)
        parts = min(parts, total // min_range)
        if parts > 1:
            edges = uow.batch.ids_at([total * k // parts - 1 for k in range(1, parts)])
            starts, ends = ["", *edges], [*edges, None]
            ranges = [
                ReevaluationRun(
                    id=new_id(),
                    as_of=as_of,
                    started_at=run.started_at,
                    processed=0,
                    last_enterprise_id=start,
                    parent_id=run.id,
                    upto=end,
                    raised=raised,
                )
                for start, end in zip(starts, ends, strict=True)
            ]
            for part in ranges:
                uow.register.add(part)
            todo = [r.id for r in ranges]
        uow.commit()
        return Started(run.id, False, total, todo)


def run_range(
    uow: UnitOfWork,
    ctx: RulesContext,
    range_id: str,
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], object] | None = None,
    stop_after_batches: int | None = None,
    read_ahead: bool = False,
    between_phases: Callable[[], object] | None = None,
) -> int:
    """Re-evaluate one range (or a whole run not split) batch by batch; return how many
    batches were done (the range is finished when it runs out of firms). Each firm is
    decided as the run's mode says (ReevaluationRun.raised, read from its record, so a
    range process decides as the run was started to).

    `read_ahead`: each batch worked out before its write transaction (`_batch`), for a
    range whose process takes turns at the write lock with others of the run; without,
    all in the transaction (one process: nothing to overlap, and reading twice costs).
    `between_phases` (tests): called in each batch between its read-ahead and its write
    transaction."""
    batches = 0
    while stop_after_batches is None or batches < stop_after_batches:
        done = _batch(uow, ctx, range_id, batch_size, read_ahead, between_phases)
        if done < 0:
            break
        batches += 1
        if read_ahead:
            uow.checkpoint(LOG_LIMIT)  # SQLite's log, which read-ahead snapshots can grow
        if on_batch:
            on_batch(done)
    return batches


def summary(uow: UnitOfWork, run_id: str, resumed: bool, total: int) -> RunSummary:
    """Where the run stands; a run split into ranges is finished once all of them are."""
    with uow:
        run = uow.register.run(run_id)
        assert run is not None
        ranges = uow.batch.ranges_of(run_id)
        if ranges and run.finished_at is None and all(r.finished_at for r in ranges):
            run.finished_at = now()
            uow.commit()
        parts = ranges or [run]
        return RunSummary(
            run_id,
            run.as_of,
            sum(r.processed for r in parts),
            resumed,
            total,
            [f for r in parts for f in r.skipped],
            [f for r in parts for f in r.attention],
            bool(run.raised),
            sum(r.ahead for r in parts),
        )


def processed(uow: UnitOfWork, run_id: str) -> int:
    """How many firms the run (its ranges, when split) has done so far, from a read
    snapshot: a progress bar polling it takes no write lock, which on SQLite would make
    the range processes wait for it (review 34 N5)."""
    with uow.snapshot() as seen:
        ranges = seen.batch.ranges_of(run_id)
        run = seen.register.run(run_id)
        return sum(r.processed for r in ranges) if ranges else run.processed if run else 0


class Batching(TypedDict, total=False):
    """How `run_range` goes through a range, for a caller that passes it on: `batch_size`
    firms a transaction, `on_batch(done)` after each batch."""

    batch_size: int
    on_batch: Callable[[int], object] | None


def reevaluate_all(
    uow: UnitOfWork,
    ctx: RulesContext,
    as_of: date,
    *,
    stop_after_batches: int | None = None,
    parts: int = 1,
    min_range: int = MIN_RANGE,
    **batching: Unpack[Batching],
) -> RunSummary:
    """Re-evaluate every firm as of `as_of` in this process (as of today or a later day:
    raised for a firm with a record dated the day after, start_run), resuming an
    unfinished run for that date and mode (its ranges one after the other, when it was
    split); at most `stop_after_batches` batches in all, each as `batching` says
    (run_range's defaults)."""
    started = start_run(uow, as_of, parts, today=ctx.today(), min_range=min_range)
    left = stop_after_batches
    for range_id in started.ranges:
        if left is not None and left <= 0:
            break
        done = run_range(uow, ctx, range_id, stop_after_batches=left, **batching)
        left = None if left is None else left - done
    return summary(uow, started.run_id, started.resumed, started.total)


def _batch(
    uow: UnitOfWork,
    ctx: RulesContext,
    range_id: str,
    size: int,
    read_ahead: bool = False,
    between: Callable[[], object] | None = None,
) -> int:
    """Re-evaluate the next batch of a range; return how many, or -1 when it is finished.

    In two phases, so that two processes of one run overlap (one works out its next
    batch while the other writes):

    1. `_read_ahead`, outside any write transaction (a read snapshot): the batch's firms
       and their open white-list entries, each firm decided and its entry moved as the
       per-call handlers would (the CPU-bound part), nothing written.
    2. The write transaction: the batch's firms (locked) and open entries read again, as
       plain values; a firm whose stored state and open entry are what phase 1 read keeps
       phase 1's outcome (the outcome is a function of those two and the run), any other
       (changed, inserted into the range, or not read ahead at all: a cursor that moved)
       is decided again here. The run's cursor moves and everything the batch writes
       (decisions, entries, firms, their audit entries, sealed on the chain heads read
       here, and feed changes) is written in a few multi-row statements.

    Without `read_ahead`, phase 2 alone (every firm decided in the transaction).
    `between` (tests): called between the two phases."""
    ahead = _read_ahead(uow, ctx, range_id, size) if read_ahead else {}
    if between is not None:
        between()
    with uow:
        # locked: a process left running by a killed parent and the resumed run's own
        # must not both start from one cursor (review 34 F2)
        run = uow.register.run(range_id, for_update=True)
        assert run is not None
        seen_firms = {i: p.firm for i, p in ahead.items()}
        found = uow.batch.next_firms(run.last_enterprise_id, run.upto, size, seen_firms)
        if not found:
            run.finished_at = now()
            uow.commit()
            return -1
        entries = uow.batch.open_entries(run.last_enterprise_id, found[-1].enterprise_id)
        making = _Making(
            run.as_of, _cause(run), IdSource(), now(), ctx.today(), raised=bool(run.raised)
        )
        prepared = []
        for firm in found:
            entry = entries.get(firm.enterprise_id)
            known = ahead.get(firm.enterprise_id)
            if (
                known is None
                or not (known.firm is firm or known.firm == firm)
                or known.entry != entry
            ):
                known = _prepare(ctx, firm, entry, making)
            prepared.append(known)
        kept = _settled(run, prepared)
        run.processed += len(found)
        run.last_enterprise_id = found[-1].enterprise_id
        uow.flush()  # the run's row before the chain heads the batch's audit entries lock
        outcomes = [p.outcome for p in kept if p.outcome is not None]  # all of them
        uow.batch.write(outcomes, current_caller(), [p.rows for p in kept])
        uow.commit()
        return len(found)


def _read_ahead(
    uow: UnitOfWork, ctx: RulesContext, range_id: str, size: int
) -> dict[str, _Prepared]:
    """Phase 1 of `_batch`: the range's next batch as a read snapshot shows it, each firm
    worked out (`_prepare`), by firm id; nothing when the range is finished."""
    with uow.snapshot() as seen:
        run = seen.register.run(range_id)
        if run is None or run.finished_at is not None:
            return {}
        found = seen.batch.next_firms(run.last_enterprise_id, run.upto, size)
        if not found:
            return {}
        entries = seen.batch.open_entries(run.last_enterprise_id, found[-1].enterprise_id)
        # each outcome's decision JSON and audit entries made here too
        making = _Making(
            run.as_of,
            _cause(run),
            IdSource(),
            now(),
            ctx.today(),
            current_caller(),
            raised=bool(run.raised),
        )
    return {f.enterprise_id: _prepare(ctx, f, entries.get(f.enterprise_id), making) for f in found}


def _cause(run: ReevaluationRun) -> str:
    """The cause a run's decisions give (the run's id: its parent's, for a range)."""
    return labels.reevaluation_cause(short_id(run.parent_id or run.id))


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One firm worked out from the firm and open entry a read saw (its inputs: read
    again in the write transaction, equal inputs give an equal outcome): its outcome, or
    why there is none (decided for a later day; its stored profile does not validate),
    and what of its profile a person should settle."""

    firm: StoredFirm
    entry: OpenEntry | None
    outcome: Reevaluated | None
    later: bool = False
    error: str = ""
    problems: tuple[str, ...] = ()
    rows: BatchRows | None = None  # the outcome's rows made ahead (`rows_of`)


@dataclass(frozen=True, slots=True)
class _Making:
    """What the firms of one batch share as they are worked out (`_prepare`): the run's
    day and cause, the batch's ids and its one instant (its decisions' `decided_at`: a
    batch is worked out in milliseconds and committed at once), the server's day (no
    white-list entry is closed on a later one: reevaluation.move_entry), for a
    read-ahead the caller its outcomes' rows are made for (`rows_of`; None: made at the
    write), and the run's mode (ReevaluationRun.raised)."""

    as_of: date
    cause: str
    ids: Callable[[], str]
    at: datetime
    today: date
    caller: str | None = None
    raised: bool = False

    def day_of(self, profile: EnterpriseProfile) -> date:
        """The day `profile` is decided for: the run's, or in a raised run the day of a
        record on file dated the day after when there is one (decision.register_day,
        with the run's day as the day it was started for: a run that goes on past
        midnight decides its firms as it decided its first)."""
        return register_day(profile, self.as_of, self.as_of) if self.raised else self.as_of

    @property
    def latest(self) -> date:
        """The latest day `day_of` may give: a firm decided for a day after it is left."""
        return self.as_of + CLOCK_SKEW if self.raised else self.as_of


def _prepare(
    ctx: RulesContext, firm: StoredFirm, entry: OpenEntry | None, making: _Making
) -> _Prepared:
    """One firm's outcome as of the run's day (`making.day_of`; nothing logged:
    `_settled` logs what is kept)."""
    if firm.decided_on is not None and firm.decided_on > making.latest:
        # decided for a later day already: the register moves forward only
        return _Prepared(firm, entry, None, later=True)
    profile = canonical_stored_profile(firm.profile, ctx.fact_types)
    as_stored = profile is not None  # then profile_to_data(profile) == firm.profile
    try:
        if profile is None:
            profile = stored_profile(ctx, firm)
    except PreconditionFailed as exc:  # one bad record must not stall every firm
        return _Prepared(firm, entry, None, error=exc.message)
    as_of = making.day_of(profile)
    if firm.decided_on is not None and firm.decided_on > as_of:
        return _Prepared(firm, entry, None, later=True)
    problems = tuple(stale_parts(ctx, profile, as_of))
    outcome = _decided(
        ctx,
        firm,
        profile,
        as_of,
        making.cause,
        entry,
        making.ids,
        at=making.at,
        today=making.today,
        as_stored=as_stored,
    )
    rows = None if making.caller is None else rows_of(outcome, making.caller)
    return _Prepared(firm, entry, outcome, problems=problems, rows=rows)


def _settled(run: ReevaluationRun, prepared: list[_Prepared]) -> list[_Prepared]:
    """The firms of a batch that have an outcome, in order; the firms skipped and those a
    person should look at noted on the run, and logged."""
    outcomes: list[_Prepared] = []
    skipped, attention, later = [], [], 0
    run.ahead += sum(
        1 for p in prepared if p.outcome is not None and p.outcome.decision.as_of > run.as_of
    )
    for p in prepared:
        if p.later:
            later += 1
            continue
        if p.outcome is None:
            _log.error(
                "firm skipped by re-evaluation", enterprise_id=p.firm.enterprise_id, error=p.error
            )
            skipped.append(p.firm.enterprise_id)
            continue
        if p.problems:
            _log.warning(
                "stored profile needs a person",
                enterprise_id=p.firm.enterprise_id,
                parts=list(p.problems),
            )
            attention.append(p.firm.enterprise_id)
        outcomes.append(p)
    if later:
        _log.info("firms decided for a later day left as they are", count=later)
    if skipped:
        run.skipped = [*run.skipped, *skipped]
    if attention:
        run.attention = [*run.attention, *attention]
    return outcomes


def _decided(
    ctx: RulesContext,
    firm: StoredFirm,
    profile: EnterpriseProfile,
    as_of: date,
    cause: str,
    entry: OpenEntry | None,
    ids: Callable[[], str],
    *,
    at: datetime,
    today: date,
    as_stored: bool = False,
) -> Reevaluated:
    """One firm's new decision and the move of its entry (register_handlers'
    `decide_and_store`, as values), its new ids from `ids`, decided `at` on the server's
    day `today`.
    The profile is re-stored when its JSON shape differs from the stored one;
    `as_stored`: known not to (`canonical_stored_profile` took it)."""
    decision = evaluate(ctx, profile, as_of)
    decision_id = ids()
    change, expired, moved, granted = move_entry(
        decision,
        decision_id,
        entry,
        profile.name,
        profile.region,
        firm.enterprise_id,
        ids,
        today=today,
    )
    data = None if as_stored else profile_to_data(profile)
    return Reevaluated(
        firm,
        decision,
        decision_id,
        at,
        cause,
        change,
        profile.name,
        profile.region,
        data if data is not None and data != firm.profile else None,
        expired,
        moved,
        granted,
    )
