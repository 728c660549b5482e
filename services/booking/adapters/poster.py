"""一图一码 poster: a printable A4 page with the firm's name, its QR code, the menu, a
hotline, and the firm's own checklist of the major-hazard items that apply to it (short
clause titles grouped by standard), as SVG and as PDF.

One layout (`layout`) places every line of text in millimetres; the SVG and the PDF
draw the same lines. The checklist's font shrinks with its length, never below
MIN_FONT_MM (≈ 8.5 pt); what does not fit at that size is summarised in one line. The QR
code comes from segno (a real QR library); the SVG is escaped text, no scripts; the PDF
(reportlab) uses the built-in CID font STSong-Light, so no font file is needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import segno

from services.booking.adapters.menu import MenuItem
from services.booking.domain import messages

A4_W, A4_H = 210, 297  # millimetres
MARGIN = 15
QR_MM = 80
QR_X, QR_Y = MARGIN, 38
COLUMN_W = 86  # each of the two checklist columns
CHECK_TOP, CHECK_BOTTOM = 150, 278
MAX_FONT_MM, MIN_FONT_MM = 4.5, 3.0
LINE = 1.4  # line height ÷ font size


@dataclass(frozen=True)
class ChecklistGroup:
    """One standard's major-hazard items that apply to the firm (short titles)."""

    standard: str
    titles: tuple[str, ...]


@dataclass(frozen=True)
class Line:
    x: float
    y: float  # the baseline, from the top
    size: float
    text: str
    anchor: str = "start"  # start | middle
    bold: bool = False

    @property
    def width(self) -> float:
        """Wide enough for CJK text: every character counted as a full em."""
        return len(self.text) * self.size

    @property
    def left(self) -> float:
        return self.x - self.width / 2 if self.anchor == "middle" else self.x


def _fit(text: str, size: float, width: float) -> str:
    most = int(width // size)
    return text if len(text) <= most else text[: max(most - 1, 1)] + "…"


def checklist_lines(groups: Sequence[ChecklistGroup]) -> list[Line]:
    """The checklist in two columns, its font as large as fits (MIN..MAX_FONT_MM)."""
    rows: list[tuple[str, bool]] = []
    for group in groups:
        rows.append((group.standard, True))
        rows.extend((f"□ {t}", False) for t in group.titles)
    if not rows:
        rows = [(messages.POSTER_CHECKLIST_NONE, False)]
    height = CHECK_BOTTOM - CHECK_TOP
    per_column = math.ceil(len(rows) / 2)
    size = min(MAX_FONT_MM, height / max(per_column, 1) / LINE)
    if size < MIN_FONT_MM:  # too long even at the smallest legible size: summarise the rest
        size = MIN_FONT_MM
        room = 2 * int(height // (size * LINE))
        hidden = sum(1 for _, header in rows[room - 1 :] if not header)
        rows = [*rows[: room - 1], (messages.POSTER_CHECKLIST_MORE.format(n=hidden), False)]
        per_column = math.ceil(len(rows) / 2)
    out = []
    for i, (text, header) in enumerate(rows):
        column, row = divmod(i, per_column)
        x = MARGIN + column * (COLUMN_W + 8)
        y = CHECK_TOP + size + row * size * LINE
        out.append(Line(x, y, size, _fit(text, size, COLUMN_W), bold=header))
    return out


def layout(
    name: str, items: Sequence[MenuItem], hotline: str, groups: Sequence[ChecklistGroup]
) -> list[Line]:
    """Every line of text on the poster, in millimetres from the top left."""
    lines = [
        Line(A4_W / 2, 20, 10, messages.POSTER_TITLE, "middle", bold=True),
        Line(A4_W / 2, 31, 6.5, _fit(name, 6.5, A4_W - 2 * MARGIN), "middle"),
        Line(A4_W / 2, 130, 4.2, messages.POSTER_INVITATION, "middle"),
        Line(110, 46, 5, messages.POSTER_MENU, bold=True),
    ]
    step = min(7.0, 70 / max(len(items), 1))
    lines += [
        Line(110, 54 + step * i, min(4.2, step * 0.7), _fit(item.name, 4.2, A4_W - MARGIN - 110))
        for i, item in enumerate(items)
    ]
    lines.append(Line(A4_W / 2, 142, 5.5, messages.POSTER_CHECKLIST, "middle", bold=True))
    lines += checklist_lines(groups)
    lines.append(
        Line(A4_W / 2, 289, 4.5, messages.POSTER_HOTLINE.format(hotline=hotline), "middle")
    )
    return lines


def qr_svg_path(url: str) -> tuple[str, int]:
    """The QR code as one SVG path (module units) and its size in modules."""
    code = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", xmldecl=False, svgns=False, nl=False, border=0, dark="#000")
    text = out.getvalue().decode()
    start = text.index("<path")
    end = text.index("/>", start) + 2
    width = int(code.symbol_size(border=0)[0])
    return text[start:end], width


def render_poster(
    name: str,
    url: str,
    items: Iterable[MenuItem],
    hotline: str,
    checklist: Sequence[ChecklistGroup] = (),
) -> str:
    """The poster as an A4 SVG document."""
    path, modules = qr_svg_path(url)
    texts = "".join(
        f'<text x="{line.x:.2f}" y="{line.y:.2f}" font-size="{line.size:.2f}"'
        + (' text-anchor="middle"' if line.anchor == "middle" else "")
        + (' font-weight="bold"' if line.bold else "")
        + f">{escape(line.text)}</text>"
        for line in layout(name, list(items), hotline, checklist)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{A4_W}mm" height="{A4_H}mm" '
        f'viewBox="0 0 {A4_W} {A4_H}" font-family="Noto Sans CJK SC, sans-serif">'
        f'<rect width="{A4_W}" height="{A4_H}" fill="#fff"/>'
        f'<g transform="translate({QR_X},{QR_Y}) scale({QR_MM / modules:.4f})">{path}</g>'
        f"{texts}</svg>"
    )


def render_poster_pdf(
    name: str,
    url: str,
    items: Iterable[MenuItem],
    hotline: str,
    checklist: Sequence[ChecklistGroup] = (),
) -> bytes:
    """The same poster as a one-page A4 PDF."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    font = "STSong-Light"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, pageCompression=1)
    pdf.setTitle(f"{messages.POSTER_TITLE} {name}")
    code = segno.make(url, error="m", micro=False)
    matrix = [list(row) for row in code.matrix]
    cell = QR_MM / len(matrix)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                x, y = QR_X + c * cell, A4_H - (QR_Y + (r + 1) * cell)
                pdf.rect(x * mm, y * mm, cell * mm + 0.05, cell * mm + 0.05, stroke=0, fill=1)
    for line in layout(name, list(items), hotline, checklist):
        pdf.setFont(font, line.size * mm)
        y = (A4_H - line.y) * mm
        if line.anchor == "middle":
            pdf.drawCentredString(line.x * mm, y, line.text)
        else:
            pdf.drawString(line.x * mm, y, line.text)
    pdf.showPage()
    pdf.save()
    return out.getvalue()
