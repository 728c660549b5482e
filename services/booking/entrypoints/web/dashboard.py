"""/dashboard and /dashboard/<chart>.csv: the supervisors' page (督单) and its downloads.

Each route checks access and the filters (Pages.dashboard_access, authz.dashboard_region;
a filter it cannot use is shown beside its field, and left out),
asks the service layer for the board (dashboard_views.dashboard: one unit of work), and
shapes it here: every chart is one `Chart`, whose rows (display strings) fill both the
table beside the SVG and the CSV download, so the two always agree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from services.booking.adapters.charts import chart_svg
from services.booking.domain import messages
from services.booking.domain.headline import about
from services.booking.entrypoints.web import labels
from services.booking.entrypoints.web.errors import error_page
from services.booking.entrypoints.web.staff_pages import person_context
from services.booking.service_layer import authz, dashboard_views
from services.booking.service_layer.dashboard_views import Board
from services.common.errors import PermissionDenied, ValidationError
from services.common.values import (
    FIRST_YEAR,
    LAST_YEAR,
    parse_iso_date,
    without_controls,
    written_day,
)

if TYPE_CHECKING:
    from services.booking.entrypoints.web.pages import DashboardAccess, Pages

MAX_QUERY = 100
CSV_TYPE = "text/csv; charset=utf-8"
BOM = "\ufeff"  # Excel reads UTF-8 (Chinese) only with it


@dataclass(frozen=True)
class Chart:
    key: str  # also the CSV's path: /dashboard/<key>.csv
    title: str
    columns: tuple[str, ...]  # the first names the rows
    rows: Sequence[tuple[str, ...]]
    svgs: list[str] = field(default_factory=list)
    note: str = ""  # instead of the chart (the rules service did not answer)


def _count(n: float) -> str:
    return str(int(n))


def _days(n: float) -> str:
    return f"{n:.1f}"


def charts(board: Board, draw: bool = True) -> list[Chart]:
    """The page's four charts, in order; `draw`: with their SVG (not for a CSV)."""
    out = []
    for key, build in BUILDERS.items():
        title, columns = labels.CHART_LABELS[key]
        chart = build(board, key, title, columns, draw)
        out.append(chart)
    return out


def _overdue(board: Board, key: str, title: str, columns: tuple[str, ...], draw: bool) -> Chart:
    rows = [(street, _count(n)) for street, n in board.overdue_by_region]
    svg = [_svg("hbar", key, title, rows, [labels.SERIES_LABELS["overdue"]])] if draw else []
    return Chart(key, title, columns, rows, svg)


def _months(board: Board, key: str, title: str, columns: tuple[str, ...], draw: bool) -> Chart:
    rows = [
        (labels.month(m.month), _count(m.found), _count(m.eliminated))
        for m in board.hazards_by_month
    ]
    names = [labels.SERIES_LABELS["found"], labels.SERIES_LABELS["eliminated"]]
    return Chart(key, title, columns, rows, [_svg("bar", key, title, rows, names)] if draw else [])


def _domains(board: Board, key: str, title: str, columns: tuple[str, ...], draw: bool) -> Chart:
    found = board.fix_by_domain
    rows = [
        (
            labels.DOMAIN_LABELS.get(d.domain, d.domain),
            _count(d.eliminated),
            labels.percent(d.on_time_rate),
            _days(d.median_days),
        )
        for d in found
    ]
    svgs = []
    if draw:
        names = [r[0] for r in rows]
        measures = (  # two charts of the one table: (key suffix, series, values, percent)
            ("rate", "on_time", [d.on_time_rate for d in found], True),
            ("days", "median_days", [d.median_days for d in found], False),
        )
        svgs = [
            chart_svg(
                "hbar",
                f"{key}-{suffix}",
                labels.SERIES_LABELS[series],
                names,
                [(labels.SERIES_LABELS[series], values)],
                described_by=f"table-{key}",
                percent=percent,
                no_data=messages.CHART_NO_DATA,
            )
            for suffix, series, values, percent in measures
        ]
    return Chart(key, title, columns, rows, svgs)


def _whitelist(board: Board, key: str, title: str, columns: tuple[str, ...], draw: bool) -> Chart:
    if board.whitelist is None:
        return Chart(key, title, columns, [], [], messages.WHITELIST_UNAVAILABLE)
    rows = [
        (labels.month(s.month), _count(s.size), _count(s.granted), _count(s.closed))
        for s in board.whitelist
    ]
    svg = [_svg("line", key, title, rows, [labels.SERIES_LABELS["whitelist"]])] if draw else []
    return Chart(key, title, columns, rows, svg)


BUILDERS = {
    "overdue-by-region": _overdue,
    "hazards-by-month": _months,
    "fix-by-domain": _domains,
    "whitelist": _whitelist,
}


def _svg(kind: str, key: str, title: str, rows: Sequence[tuple[str, ...]], names: list[str]) -> str:
    """A chart of the rows' first len(names) value columns (the table's numbers)."""
    series = [(name, [float(r[i + 1]) for r in rows]) for i, name in enumerate(names)]
    return chart_svg(
        kind,
        key,
        title,
        [r[0] for r in rows],
        series,
        described_by=f"table-{key}",
        no_data=messages.CHART_NO_DATA,
    )


def headline(board: Board) -> str:
    total = board.stats["total"]
    return messages.HEADLINE.format(
        answered=int(total["bookings_answered"]),
        firms=int(total["firms_served"]),
        eliminated=about(int(total["hazards_eliminated"])),
    )


def csv_text(chart: Chart) -> str:
    """The chart's table as CSV, with a byte-order mark for Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(chart.columns)
    writer.writerows(chart.rows)
    return BOM + buffer.getvalue()


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters as typed (the form shows them again), and the errors of
    those it could not use, by field ("region", "from", "to")."""

    region: str
    start: str
    end: str
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Shown:
    """A board and what it shows: the region (a township's or county's name; "" for
    every region), who asked, and the filters asked for with their errors."""

    board: Board
    region: str
    access: DashboardAccess
    filters: Filters


def period_error(name: str, typed: Filters, today: date) -> str:
    """Why the period field `name` ("from", "to") was refused, in Chinese: not a date, a
    date no record has, a start after the end, or a period too long."""
    text = typed.start if name == "from" else typed.end
    try:
        day = parse_iso_date(text)
    except ValueError:
        if written_day(text) is None:
            return messages.BAD_DATE
        return messages.PERIOD_DAY_RANGE.format(first=FIRST_YEAR, last=LAST_YEAR)
    try:
        last = parse_iso_date(typed.end) if typed.end else today
    except ValueError:
        last = today
    if name == "from" and day > last:
        return messages.PERIOD_REVERSED
    return messages.PERIOD_TOO_LONG.format(months=dashboard_views.MAX_MONTHS)


class DashboardRoutes:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    def _filters(self, request: Request) -> Filters:
        q = request.query_params
        region, start, end = (q.get(k, "")[:MAX_QUERY] for k in ("region", "from", "to"))
        return Filters(region, start, end)

    def _region_error(self, region: str) -> str:
        """Why a region filter names no township or county here ("" when it does)."""
        regions = self.pages.ctx.regions
        if not region or regions is None or regions.area(region) is not None:
            return ""
        near = regions.nearest(region, counties=True)
        hint = messages.NEAREST_REGIONS.format(names="、".join(near)) if near else ""
        return messages.PAGE_NO_REGION[1].format(region=messages.shown(region, 24), hint=hint)

    def _forbidden(self, access: DashboardAccess) -> Response:
        if access.session is not None:
            person = person_context(access.session)
            text = messages.PAGE_STAFF_FORBIDDEN
            return error_page(self.pages.render, 403, text, staff=True, person=person)
        return error_page(self.pages.render, 403, messages.PAGE_STAFF_FORBIDDEN)

    async def _board(self, request: Request) -> Shown | Response:
        """The board asked for, with the region it shows (a region-limited inspector sees
        its own area only, as ListTickets), who asked, and the filters. A filter it
        cannot use (no such region, a period that is not one) is left out, its error
        kept for the field beside it (review 59 F9); a region outside an inspector's area
        is refused (403), as on the recheck queue."""
        access = await self.pages.dashboard_access(request)
        if isinstance(access, Response):
            return access
        typed = self._filters(request)
        errors: dict[str, str] = {}
        if error := self._region_error(typed.region):
            errors["region"] = error
        pages = self.pages
        try:
            region = authz.dashboard_region(
                access.principal, pages.ctx.regions, "" if errors else typed.region
            )
        except PermissionDenied:
            return self._forbidden(access)
        period = {"from": typed.start, "to": typed.end}
        while True:
            try:
                board = await pages.use_case(
                    dashboard_views.dashboard, region, period["from"], period["to"]
                )
                break
            except ValidationError as exc:  # the period: from/to (the region was checked)
                named = [v.field if v.field in period else "from" for v in exc.violations]
                if not any(period[n] for n in named):
                    raise  # the default period itself (cannot be)
                for name in named:
                    errors.setdefault(name, period_error(name, typed, pages.ctx.today()))
                    period[name] = ""
        # shown again as typed, but for control characters (the region's error shows them
        # escaped: messages.shown)
        kept = Filters(
            without_controls(typed.region),
            without_controls(typed.start),
            without_controls(typed.end),
            errors,
        )
        return Shown(board, self._region_name(region), access, kept)

    def _region_name(self, region: str) -> str:
        """A region filter by its name (稠城街道 for 330782001), as the page and the CSV's
        file name show it."""
        regions = self.pages.ctx.regions
        return (regions.name_of(region) if regions is not None else None) or region

    async def page(self, request: Request) -> Response:
        found = await self._board(request)
        if isinstance(found, Response):
            return found
        board, typed = found.board, found.filters
        shown = (("region", found.region), ("from", typed.start), ("to", typed.end))
        query = urlencode({k: v for k, v in shown if v and k not in typed.errors})
        session = found.access.session
        texts = await run_in_threadpool(
            self.pages.guidance.texts, (t.clause_ref for t in board.overdue)
        )
        return self.pages.render(
            "dashboard.html",
            400 if typed.errors else 200,
            messages=messages,
            **(person_context(session) if session is not None else {"user": None}),
            filters=typed,
            region=found.region,
            query=f"?{query}" if query else "",
            headline=headline(board),
            period=messages.HEADLINE_PERIOD.format(
                first=labels.day(board.first), last=labels.day(board.last)
            ),
            charts=charts(board),
            stats=board.stats,
            overdue=board.overdue,
            clause_texts=texts,
            firm_names=board.firm_names,
            today=board.today,
            streets=sorted({s for s, _ in board.overdue_by_region}),
        )

    async def csv(self, request: Request) -> Response:
        key = request.path_params["chart"]
        if key not in BUILDERS:
            raise HTTPException(404)
        found = await self._board(request)
        if isinstance(found, Response):
            return found
        if found.filters.errors:  # a download has no form to show them beside
            errors = found.filters.errors
            title = messages.PAGE_NO_REGION if "region" in errors else messages.PAGE_BAD_REQUEST
            return error_page(self.pages.render, 400, (title[0], "；".join(errors.values())))
        board, region = found.board, found.region
        chart = next(c for c in charts(board, draw=False) if c.key == key)
        if chart.note:  # the rules service did not answer: no numbers to give
            return Response(chart.note, status_code=503, media_type="text/plain")
        name = f"{chart.title}-{region or labels.ALL_REGIONS}-{board.first}至{board.last}.csv"
        return Response(
            csv_text(chart).encode("utf-8"),
            media_type=CSV_TYPE,
            headers={
                "Content-Disposition": (
                    f'attachment; filename="dashboard-{key}-{board.first}-{board.last}.csv"; '
                    f"filename*=UTF-8''{quote(name)}"
                )
            },
        )
