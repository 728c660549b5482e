"""一图一码 posters: the firm's checklist of major-hazard items, and posters in bulk.

A bulk run takes a region's firms from the rules register (ListEnterprises, every page),
so firms booking never saw get their poster too; it renders each firm's CURRENT code
(rebuilt from its key id and serial) and issues a code only to a firm that has none:
reissuing would revoke every poster already on a wall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from services.booking.adapters.poster import render_poster, render_poster_pdf
from services.booking.service_layer.guidance import checklist
from services.booking.service_layer.ports import BookingContext, ask_rules
from services.booking.service_layer.qr_codes import current_token, issue_qr_code
from services.booking.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class PosterFiles:
    enterprise_id: str
    svg: Path
    pdf: Path
    issued: bool  # a first code was issued for it in this run


def bulk_posters(
    uow: Callable[[], UnitOfWork],
    ctx: BookingContext,
    regions: Sequence[str],
    out: Path,
    firms: Sequence[str] = (),
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda ids: ids,
) -> list[PosterFiles]:
    """One SVG and one PDF per firm the rules register lists in `regions` (each a 镇街 or a
    county, by name or code), plus `firms`: the current code, or a first one where there is
    none. Unavailable (before any file is written) when rules cannot list them."""
    known: set[str] = set()
    for region in regions:
        known |= {f.enterprise_id for f in ask_rules(partial(ctx.rules.enterprises, region))}
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for enterprise_id in progress(sorted(known | set(firms))):
        done.append(_one(uow, ctx, enterprise_id, out))
    return done


def _one(
    uow: Callable[[], UnitOfWork], ctx: BookingContext, enterprise_id: str, out: Path
) -> PosterFiles:
    with uow() as work:
        card = work.register.firm(enterprise_id)
        token = current_token(ctx, card) if card is not None else ""
        name = card.name if card is not None else ""
    issued = not token
    if issued:
        first = issue_qr_code(uow(), ctx, enterprise_id)
        token = first.token
        with uow() as work:
            found = work.register.firm(enterprise_id)
            name = found.name if found is not None else enterprise_id
    url = f"{ctx.public_url.rstrip('/')}/q/{token}"
    groups = checklist(ctx, enterprise_id)
    menu = list(ctx.menu.values())
    svg, pdf = out / f"{enterprise_id}.svg", out / f"{enterprise_id}.pdf"
    svg.write_text(render_poster(name, url, menu, ctx.hotline, groups), encoding="utf-8")
    pdf.write_bytes(render_poster_pdf(name, url, menu, ctx.hotline, groups))
    return PosterFiles(enterprise_id, svg, pdf, issued)
