"""The service menu (rulesets/menu.yaml): data shared with the rules service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class MenuItem:
    code: str
    name: str
    domain: str | None
    description: str


def load_menu(path: Path | str) -> dict[str, MenuItem]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    items = [
        MenuItem(i["code"], i["name"], i.get("domain"), i.get("description", ""))
        for i in data["items"]
    ]
    return {i.code: i for i in items}
