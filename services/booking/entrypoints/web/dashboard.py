"""/dashboard and /dashboard/<chart>.csv: the supervisors' page (督单) and its downloads.

Each route checks access and the filters (Pages.dashboard_access, Pages.region_refusal,
authz.dashboard_region),
asks the service layer for the board (dashboard_views.dashboard: one unit of work), and
shapes it here: every chart is one `Chart`, whose rows (display strings) fill both the
table beside the SVG and the CSV download, so the two always agree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from services.booking.adapters.charts import chart_svg
from services.booking.domain import messages
from services.booking.domain.headline import about
from services.booking.entrypoints.web import labels
from services.booking.entrypoints.web.errors import error_page
from services.booking.service_layer import authz, dashboard_views
from services.booking.service_layer.dashboard_views import Board
from services.booking.service_layer.staff_sessions import Visitor
from services.common.errors import PermissionDenied, ValidationError

if TYPE_CHECKING:
    from services.booking.entrypoints.web.pages import Pages

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


class DashboardRoutes:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    def _filters(self, request: Request) -> tuple[str, str, str]:
        q = request.query_params
        region, start, end = (q.get(k, "")[:MAX_QUERY] for k in ("region", "from", "to"))
        return region, start, end

    async def _board(self, request: Request) -> tuple[Board, str, Visitor | None] | Response:
        """The board asked for, with the region it shows (a region-limited inspector's
        token sees its own region only, as ListTickets) and the staff session if any."""
        access = await self.pages.dashboard_access(request)
        if isinstance(access, Response):
            return access
        region, start, end = self._filters(request)
        refused = self.pages.region_refusal(region)
        if refused is not None:
            return refused
        pages = self.pages
        try:
            region = authz.dashboard_region(access.token, pages.ctx.regions, region)
        except PermissionDenied:
            return error_page(pages.render, 403, messages.PAGE_STAFF_FORBIDDEN)
        try:
            board = await pages.use_case(dashboard_views.dashboard, region, start, end)
        except ValidationError:  # the period: from/to (the region was checked above)
            text = messages.BAD_PERIOD.format(months=dashboard_views.MAX_MONTHS)
            return error_page(pages.render, 400, (messages.PAGE_BAD_REQUEST[0], text))
        return board, region, access.session

    async def page(self, request: Request) -> Response:
        found = await self._board(request)
        if isinstance(found, Response):
            return found
        board, region, session = found
        _, start, end = self._filters(request)
        query = urlencode({k: v for k, v in (("region", region), ("from", start), ("to", end))})
        return self.pages.render(
            "dashboard.html",
            messages=messages,
            session=session,
            region=region,
            start=start,
            end=end,
            query=f"?{query}" if query else "",
            headline=headline(board),
            period=messages.HEADLINE_PERIOD.format(
                first=labels.day(board.first), last=labels.day(board.last)
            ),
            charts=charts(board),
            stats=board.stats,
            overdue=board.overdue,
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
        board, region, _ = found
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
