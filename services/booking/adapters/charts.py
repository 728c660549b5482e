"""Charts as inline SVG, drawn on the server by pygal (no JavaScript, nothing fetched).

pygal builds the SVG; this module strips its <script> (the page is static and its CSP
allows none), gives the chart an id that is stable for a key (pygal's is random), makes
it scale to its container, and labels it for assistive technology: role="img" with the
title, and `aria-describedby` pointing at the table beside it, which carries the same
numbers. Fonts fall back to the system's CJK fonts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pygal
from pygal.style import Style

SVG_NS = "http://www.w3.org/2000/svg"
FONTS = '"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",sans-serif'
# pygal takes a font per part of the chart; every part gets the same CJK fallbacks
FONT_PARTS = (
    "title",
    "label",
    "major_label",
    "legend",
    "value",
    "value_label",
    "tooltip",
    "no_data",
)
COLOURS = ("#1f5fa8", "#2e9e5b", "#d9822b", "#b23a48", "#6b4fa3")
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#222222",
    foreground_strong="#111111",
    foreground_subtle="#888888",
    colors=COLOURS,
    font_family=FONTS,
    **{f"{part}_font_family": FONTS for part in FONT_PARTS},
    title_font_size=18,
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    value_font_size=12,
)
KINDS = {"bar": pygal.Bar, "hbar": pygal.HorizontalBar, "line": pygal.Line}
Series = tuple[str, Sequence[float | None]]

ET.register_namespace("", SVG_NS)


def chart_svg(
    kind: str,
    key: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    described_by: str = "",
    percent: bool = False,
    no_data: str = "",
) -> str:
    """An SVG chart (`kind`: bar, hbar or line) of `series` over `labels`."""
    chart = KINDS[kind](
        js=[],
        disable_xml_declaration=True,
        style=STYLE,
        width=720,
        height=360 if kind != "hbar" else max(240, 60 + 40 * len(labels)),
        title=title,
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        print_values=kind == "hbar",
        x_label_rotation=30 if kind != "hbar" and len(labels) > 6 else 0,
        truncate_label=-1,
        truncate_legend=-1,
        include_x_axis=True,
        range=(0, 1) if percent else None,
        value_formatter=(lambda v: f"{v * 100:.0f}%") if percent else (lambda v: f"{v:g}"),
        no_data_text=no_data,
    )
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, list(values))
    return _finish(chart.render_tree(), key, title, described_by)


def _finish(svg: ET.Element, key: str, title: str, described_by: str) -> str:
    """The tree without scripts, with a stable id and accessible name, as text."""
    for parent in svg.iter():
        for child in list(parent):
            if child.tag in ("script", f"{{{SVG_NS}}}script"):
                parent.remove(child)
    old = svg.get("id", "")
    new = f"chart-{key}"
    svg.set("id", new)
    svg.set("role", "img")
    svg.set("aria-label", title)
    if described_by:
        svg.set("aria-describedby", described_by)
    svg.set("class", "chart pygal-chart")
    text = ET.tostring(svg, encoding="unicode", short_empty_elements=True)
    return text.replace(old, new) if old else text
