"""The service menu (rulesets/menu.yaml): data shared with the rules service, parsed by
the same reader (services/common/yaml_files.py), so both accept and refuse the same
file. The rules service checks the file in full when it loads its rulebook; booking
needs each item's code and name, and says which item lacks one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.yaml_files import YamlFileError, read_yaml_file


class MenuError(ValueError):
    """menu.yaml cannot be read as a menu; the message names the file, item and field."""


@dataclass(frozen=True)
class MenuItem:
    """A service a firm can book (booking.md's menu): its code, Chinese name, the
    high-risk domain it belongs to (None: any firm) and what the expert does."""

    code: str
    name: str
    domain: str | None
    description: str


def load_menu(path: Path | str) -> dict[str, MenuItem]:
    """The menu's items by code; MenuError when the file is missing or malformed."""
    file = Path(path)
    try:
        data = read_yaml_file(file)
    except YamlFileError as exc:
        raise MenuError(str(exc)) from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise MenuError(f"{file.name}: field items: must be a non-empty list")
    return {item.code: item for item in (_item(file.name, n, i) for n, i in enumerate(items))}


def _item(name: str, n: int, raw: Any) -> MenuItem:
    where = f"{name}: item {n}"
    if not isinstance(raw, dict):
        raise MenuError(f"{where}: must be a map of fields")
    for field in ("code", "name"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise MenuError(f"{where}: field {field}: required text")
    domain, description = raw.get("domain"), raw.get("description", "")
    if domain is not None and not isinstance(domain, str):
        raise MenuError(f"{where}: field domain: must be text")
    if not isinstance(description, str):
        raise MenuError(f"{where}: field description: must be text")
    return MenuItem(raw["code"], raw["name"], domain, description)
