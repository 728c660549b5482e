"""Read the verbatim standards texts kept in `rulesets/sources/` item by item.

The files are byte-identical copies of the team's reference texts (each item with its
sources and how well it is cross-checked). `items(path)` returns `{clause id: text}`
with the clause ids the rulesets use (`3(1)`, `14`, `16`, `6.5`), so a test can compare
every clause's `text` with the official words character for character.
"""

from __future__ import annotations

import re
from pathlib import Path

CN_NUMBERS = {
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
    "十一": 11,
    "十二": 12,
    "十三": 13,
    "十四": 14,
    "十五": 15,
    "十六": 16,
    "十七": 17,
    "十八": 18,
    "十九": 19,
    "二十": 20,
}
_ARTICLE = re.compile(r"^\*\*第([一二三四五六七八九十]+)条\*\*\u3000(.+?)\s*$")
_ITEM = re.compile(r"^- （([一二三四五六七八九十]+)）(.+?)\s*$")
_CHEM = re.compile(r"^([一二三四五六七八九十]+)、(.+?)\s*$")
_FIRE = re.compile(r"^\*\*(6\.\d+)\*\* (.+?)\s*$")


def normalise(text: str) -> str:
    """The clause text without the closing 的；/的。/；/。 (layout, not words)."""
    text = text.strip()
    for tail in ("的；", "的。", "；", "。"):
        if text.endswith(tail):
            return text[: -len(tail)]
    return text


def gm2023_one_source(text: str) -> set[str]:
    """Items whose sources line (the line after the item) says **(one source)**."""
    out: set[str] = set()
    article, last = 0, ""
    for line in text.splitlines():
        if m := _ARTICLE.match(line):
            article = CN_NUMBERS[m.group(1)]
            last = "14" if article == 14 else ""
        elif (m := _ITEM.match(line)) and 3 <= article <= 13:
            last = f"{article}({CN_NUMBERS[m.group(1)]})"
        elif last and "(one source)" in line:
            out.add(last)
    return out


def gm2023_items(text: str) -> dict[str, str]:
    """Articles 3–13 item by item as `N(k)`, and Article 14 whole as `14`."""
    out: dict[str, str] = {}
    article = 0
    for line in text.splitlines():
        if m := _ARTICLE.match(line):
            article = CN_NUMBERS[m.group(1)]
            if article == 14:
                out["14"] = normalise(m.group(2))
        elif (m := _ITEM.match(line)) and 3 <= article <= 13:
            out[f"{article}({CN_NUMBERS[m.group(1)]})"] = normalise(m.group(2))
    return out


def chem2017_items(text: str) -> dict[str, str]:
    """Items 1–20 as `1` … `20`."""
    out: dict[str, str] = {}
    body = text.split("## 正文", 1)[1].split("## 各来源之间的差异", 1)[0]
    for line in body.splitlines():
        if m := _CHEM.match(line):
            out[str(CN_NUMBERS[m.group(1)])] = normalise(m.group(2))
    return out


def fire35181_items(text: str) -> dict[str, str]:
    """GB 35181-2017 direct-judgement items 6.1–6.10 as `6.1` … `6.10`."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if m := _FIRE.match(line):
            out[m.group(1)] = normalise(m.group(2))
    return out


PARSERS = {
    "gm2023.md": gm2023_items,
    "chem2017.md": chem2017_items,
    "fire35181.md": fire35181_items,
}


def items(path: Path) -> dict[str, str]:
    return PARSERS[path.name](path.read_text(encoding="utf-8"))
