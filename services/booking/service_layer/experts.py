"""The expert pool: add or replace an expert (then dispatch what waited), list, name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.booking.domain.experts import EXPERT_ID_MAX, parse_expert
from services.booking.domain.records import EXPERT_FIELDS, Expert
from services.booking.service_layer.dispatch import reassign_from, redispatch_after_commit
from services.booking.service_layer.ports import BookingContext
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.regions import region_filter
from services.common.values import control_problem


def upsert_expert(uow: UnitOfWork, ctx: BookingContext, data: Mapping[str, Any]) -> Expert:
    """Create or replace an expert; orders still waiting are then dispatched again. A new
    expert's id keeps to EXPERT_ID; one stored before ids were checked is taken as it is.

    A replaced expert's orders for the days ahead that they can no longer take
    (deactivated, the half-day withdrawn, a conflict of interest with the firm, a domain
    dropped) are taken from them and dispatched again in the same transaction
    (dispatch.reassign_from): the change and its consequence are committed together."""
    sent_id = str(data.get("expert_id", ""))
    lookup = 0 < len(sent_id) <= EXPERT_ID_MAX and control_problem(sent_id) is None
    with uow:
        stored = uow.register.expert(sent_id, for_update=True) if lookup else None
        expert = parse_expert(
            data,
            ctx.regions,
            on_record=stored is not None,
            stored_phone=stored.phone if stored is not None else "",
        )
        if stored is None:
            uow.register.add(expert)
            stored = expert
        else:
            for name in EXPERT_FIELDS:
                setattr(stored, name, getattr(expert, name))
            reassign_from(uow, ctx, stored)
        stored.updated_at = now()
        uow.commit()
    redispatch_after_commit(uow, ctx)
    return stored


def list_experts(
    uow: UnitOfWork, ctx: BookingContext, *, domain: str, region: str, active_only: bool
) -> list[Expert]:
    """The experts covering `domain` ('' = any) who serve `region` (a township or a
    county, '' = any), active ones only if asked."""
    regions = set(region_filter(ctx.regions, region))
    with uow:
        return [
            e
            for e in uow.register.experts()
            if (not domain or domain in e.domains)
            and (not regions or regions & set(e.regions))
            and (e.active or not active_only)
        ]


def expert_names(uow: UnitOfWork, ids: Iterable[str | None]) -> dict[str, str]:
    """Names of the given experts (those that exist), in one query."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    with uow:
        return uow.register.expert_names(wanted)
