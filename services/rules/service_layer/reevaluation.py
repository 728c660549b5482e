"""Periodic re-evaluation of every stored firm: batched, resumable, never one giant transaction.

A run is keyed by its as_of date. Each batch of firms is re-evaluated and the run's
cursor advanced in the same transaction, so an interrupted run resumes after the last
committed batch and no firm is evaluated twice for the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import structlog

from services.common.clock import new_id, now
from services.rules.domain.decision import answered_out_of_scope
from services.rules.domain.errors import PreconditionFailed
from services.rules.domain.profile import EnterpriseProfile
from services.rules.domain.register import ReevaluationRun
from services.rules.domain.standards import Catalogue
from services.rules.service_layer.handlers import RulesContext
from services.rules.service_layer.register_handlers import (
    decide_and_store,
    stored_profile,
)
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
    """`answered_out_of_scope`, asked only of the clauses whose facts the profile answers
    (an index per catalogue and date, built once): the same list, in the same order."""
    by_fact = _clauses_by_fact(ctx.catalogue, as_of)
    wanted = {n for k in profile.facts for n in by_fact.get(k, ())}
    if not wanted:
        return []
    return answered_out_of_scope(ctx.catalogue, profile, as_of, only=wanted)


_INDEXES: dict[tuple[int, date], tuple[Catalogue, dict[str, tuple[int, ...]]]] = {}


def _clauses_by_fact(catalogue: Catalogue, as_of: date) -> dict[str, tuple[int, ...]]:
    """fact key → positions (in `answered_out_of_scope`'s walk) of the clauses asking it;
    kept per catalogue (held, so its id is not reused) and date."""
    known = _INDEXES.get((id(catalogue), as_of))
    if known is not None:
        return known[1]
    if len(_INDEXES) > 8:
        _INDEXES.clear()
    index: dict[str, list[int]] = {}
    clauses = (c for s in catalogue.in_force(as_of) for c in s.clauses)
    for n, clause in enumerate(clauses):
        for key in clause.condition.fact_keys():
            index.setdefault(key, []).append(n)
    found = {k: tuple(v) for k, v in index.items()}
    _INDEXES[(id(catalogue), as_of)] = (catalogue, found)
    return found


@dataclass
class RunSummary:
    run_id: str
    as_of: date
    processed: int
    resumed: bool
    total: int
    skipped: list[str]
    attention: list[str] = field(default_factory=list)


def reevaluate_all(
    uow: UnitOfWork,
    ctx: RulesContext,
    as_of: date,
    *,
    batch_size: int = 200,
    on_batch: Callable[[int], object] | None = None,
    stop_after_batches: int | None = None,
) -> RunSummary:
    """Re-evaluate every firm as of `as_of`, resuming an unfinished run for that date."""
    with uow:
        run = uow.register.unfinished_run(as_of)
        resumed = run is not None
        if run is None:
            run = ReevaluationRun(
                id=new_id(), as_of=as_of, started_at=now(), processed=0, last_enterprise_id=""
            )
            uow.register.add(run)
        total = uow.register.firm_count()
        run_id = run.id
        uow.commit()
    batches = 0
    while stop_after_batches is None or batches < stop_after_batches:
        done = _batch(uow, ctx, run_id, batch_size)
        if done < 0:
            break
        batches += 1
        if on_batch:
            on_batch(done)
    with uow:
        run = uow.register.run(run_id)
        assert run is not None
        return RunSummary(
            run_id, as_of, run.processed, resumed, total, list(run.skipped), list(run.attention)
        )


def _batch(uow: UnitOfWork, ctx: RulesContext, run_id: str, size: int) -> int:
    """Re-evaluate the next batch; return how many, or -1 when the run is finished.

    Batched reads and writes: the batch's firms (locked) and their open white-list
    entries are read in one query each, and everything the batch writes (decisions,
    entries, firms, their audit entries and feed changes) is flushed once, at commit."""
    with uow:
        run = uow.register.run(run_id)
        assert run is not None
        ids = uow.register.firm_ids_after(run.last_enterprise_id, size)
        if not ids:
            run.finished_at = now()
            uow.commit()
            return -1
        found = uow.register.firms_for_update(ids)
        uow.register.open_entries_of([f.enterprise_id for f in found])
        cause = f"定期重新评估 periodic re-evaluation (run {run_id[:8]})"
        skipped, attention = [], []
        for firm in found:
            try:
                profile = stored_profile(ctx, firm)
            except PreconditionFailed as exc:  # one bad record must not stall every firm
                _log.error(
                    "firm skipped by re-evaluation",
                    enterprise_id=firm.enterprise_id,
                    error=exc.message,
                )
                skipped.append(firm.enterprise_id)
                continue
            if problems := stale_parts(ctx, profile, run.as_of):
                _log.warning(
                    "stored profile needs a person",
                    enterprise_id=firm.enterprise_id,
                    parts=problems,
                )
                attention.append(firm.enterprise_id)
            decide_and_store(uow, ctx, firm, profile, run.as_of, cause)
        if skipped:
            run.skipped = [*run.skipped, *skipped]
        if attention:
            run.attention = [*run.attention, *attention]
        run.processed += len(ids)
        run.last_enterprise_id = ids[-1]
        uow.commit()
        return len(ids)
