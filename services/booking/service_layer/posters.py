"""一图一码 posters: the firm's checklist of major-hazard items, and posters in bulk.

A bulk run takes a region's firms from the rules register (ListEnterprises, every page),
so firms booking never saw get their poster too; it renders each firm's CURRENT code
(rebuilt from its key id and serial) and issues a code only to a firm that has none:
reissuing would revoke every poster already on a wall. `make run`'s demo prints its
example firms' codes the same way (`current_code`), so a restart keeps them.
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


@dataclass(frozen=True)
class CurrentCode:
    enterprise_id: str
    name: str  # the firm's name on its card
    url: str  # the phone page the code opens
    issued: bool  # a first code was issued for it just now


def current_code(
    uow: Callable[[], UnitOfWork], ctx: BookingContext, enterprise_id: str
) -> CurrentCode:
    """The firm's current code (rebuilt from its key id and serial), or a first one when
    it has none (or its key left the keyring); never a reissue of a working code."""
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
    return CurrentCode(enterprise_id, name, f"{ctx.public_url.rstrip('/')}/q/{token}", issued)


def poster_svg(ctx: BookingContext, code: CurrentCode) -> str:
    """The A4 poster of a firm's code, as SVG."""
    groups = checklist(ctx, code.enterprise_id)
    return render_poster(code.name, code.url, list(ctx.menu.values()), ctx.hotline, groups)


def _one(
    uow: Callable[[], UnitOfWork], ctx: BookingContext, enterprise_id: str, out: Path
) -> PosterFiles:
    code = current_code(uow, ctx, enterprise_id)
    groups = checklist(ctx, enterprise_id)
    menu = list(ctx.menu.values())
    svg, pdf = out / f"{enterprise_id}.svg", out / f"{enterprise_id}.pdf"
    svg.write_text(render_poster(code.name, code.url, menu, ctx.hotline, groups), encoding="utf-8")
    pdf.write_bytes(render_poster_pdf(code.name, code.url, menu, ctx.hotline, groups))
    return PosterFiles(enterprise_id, svg, pdf, code.issued)
