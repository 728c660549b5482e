"""一图一码 poster: a printable A4 SVG with the firm's name, its QR code, the menu, a hotline.

The QR code comes from segno (a real QR library); the SVG is escaped text, no scripts.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from xml.sax.saxutils import escape

import segno

from services.booking.adapters.menu import MenuItem
from services.booking.domain import messages

A4_W, A4_H = 210, 297  # millimetres


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


def render_poster(name: str, url: str, items: Iterable[MenuItem], hotline: str) -> str:
    path, modules = qr_svg_path(url)
    qr_mm = 110
    scale = qr_mm / modules
    menu = list(items)
    rows = (len(menu) + 1) // 2
    lines = [
        f'<text x="{60 if i < rows else 150}" y="{208 + 10 * (i % rows)}" font-size="5.2" '
        f'text-anchor="middle">{escape(item.name)}</text>'
        for i, item in enumerate(menu)
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{A4_W}mm" height="{A4_H}mm" '
        f'viewBox="0 0 {A4_W} {A4_H}" font-family="Noto Sans CJK SC, sans-serif">'
        f'<rect width="{A4_W}" height="{A4_H}" fill="#fff"/>'
        f'<text x="105" y="28" font-size="11" text-anchor="middle" font-weight="bold">'
        f"{messages.POSTER_TITLE}</text>"
        f'<text x="105" y="42" font-size="7" text-anchor="middle">{escape(name)}</text>'
        f'<g transform="translate({(A4_W - qr_mm) / 2},52) scale({scale:.4f})">{path}</g>'
        f'<text x="105" y="176" font-size="5" text-anchor="middle">'
        f"{messages.POSTER_INVITATION}</text>"
        f'<text x="105" y="194" font-size="6" text-anchor="middle" font-weight="bold">'
        f"{messages.POSTER_MENU}</text>{''.join(lines)}"
        f'<text x="105" y="287" font-size="5" text-anchor="middle">'
        f"{escape(messages.POSTER_HOTLINE.format(hotline=hotline))}</text>"
        f"</svg>"
    )
