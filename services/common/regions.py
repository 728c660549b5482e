"""The regions a deployment serves (rulesets/regions.yaml): counties by GB/T 2260 code,
their towns and streets (镇街) by 9-digit township code, each with its Chinese name.

A region on input is a township's exact Chinese name (稠城街道), its 9-digit code
(330782001) or the 12-digit 统计用区划代码 form (330782001000); the canonical form, which
the register stores and every answer carries, is the Chinese name. Filters (ListWhitelist,
WatchChanges, GetStats) also take a county (330782 or 义乌市), meaning all its townships.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import FieldViolation, ValidationError
from services.common.values import trim
from services.common.yaml_files import YamlFileError, read_yaml_file

COUNTY_CODE = re.compile(r"^\d{6}$")
TOWNSHIP_CODE = re.compile(r"^\d{9}$")
QUOTE = 24  # characters of a bad value quoted back


class RegionsError(ValueError):
    """regions.yaml is malformed; the message names the file, entry and field."""


@dataclass(frozen=True)
class Township:
    code: str  # 9 digits: the county's GB/T 2260 code + the 3-digit township code
    name: str  # the canonical form: 稠城街道
    county_code: str
    county_name: str

    @property
    def kind(self) -> str:
        """街道, 镇 or 乡 (by the township code's range)."""
        return {"0": "街道", "1": "镇", "2": "乡"}.get(self.code[6], "其他")


@dataclass(frozen=True)
class County:
    code: str  # GB/T 2260, 6 digits
    name: str
    parent: str  # province and prefecture, e.g. 浙江省金华市
    townships: tuple[Township, ...]


class RegionRegistry:
    """Every county and township of the deployment, looked up by name or code."""

    def __init__(self, counties: Sequence[County]) -> None:
        self.counties = tuple(counties)
        self._by: dict[str, Township] = {}
        self._areas: dict[str, tuple[str, ...]] = {}
        for county in self.counties:
            for t in county.townships:
                self._by[t.name] = self._by[t.code] = self._by[t.code + "000"] = t
            names = tuple(t.name for t in county.townships)
            self._areas[county.code] = self._areas[county.name] = names

    @property
    def townships(self) -> list[Township]:
        return [t for c in self.counties for t in c.townships]

    def township(self, value: str) -> Township | None:
        """The township a name, 9-digit code or 12-digit code names, or None."""
        return self._by.get(trim(value))

    def canonical(self, value: str) -> str | None:
        """The stored form (the Chinese name) of a township given in any accepted form."""
        found = self.township(value)
        return found.name if found else None

    def name_of(self, value: str) -> str | None:
        """The name of the township or county a name or code stands for, or None."""
        found = self.canonical(value)
        if found is not None:
            return found
        wanted = trim(value)
        return next((c.name for c in self.counties if wanted in (c.code, c.name)), None)

    def code_of(self, name: str) -> str:
        """The 9-digit code of a stored region, or "" when it is not (or no longer) listed."""
        found = self._by.get(name)
        return found.code if found else ""

    def area(self, value: str) -> tuple[str, ...] | None:
        """A filter: the township names a township or a whole county stands for."""
        found = self.township(value)
        if found is not None:
            return (found.name,)
        return self._areas.get(trim(value))

    def problem(self, value: str, *, counties: bool = False) -> str:
        """Why `value` names no region here, with the nearest known ones."""
        near = self.nearest(value, counties=counties)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        what = "town/street (镇街) or county" if counties else "town/street (镇街)"
        return (
            f"unknown region {value[:QUOTE]!r}: not a {what} of rulesets/regions.yaml "
            f"(send the name, e.g. 稠城街道, or the code, e.g. 330782001; ListRegions "
            f"lists them){hint}"
        )

    def nearest(self, value: str, *, counties: bool = False, limit: int = 3) -> list[str]:
        """The closest known names (or, for digits, codes with their names)."""
        text = trim(value)[:64]
        if text.isdigit():
            codes = {t.code: t.name for t in self.townships}
            if counties:
                codes |= {c.code: c.name for c in self.counties}
            found = difflib.get_close_matches(text[:9], list(codes), n=limit, cutoff=0.6)
            return [f"{code} {codes[code]}" for code in found]
        names = [t.name for t in self.townships]
        if counties:
            names += [c.name for c in self.counties]
        return difflib.get_close_matches(text, names, n=limit, cutoff=0.3)


def region_filter(
    regions: RegionRegistry | None, value: str, field: str = "region"
) -> tuple[str, ...]:
    """A region filter as the stored names it matches: empty (every region), a township,
    or a county (all its townships), each by name or code; INVALID_ARGUMENT naming `field`
    otherwise. Without a registry (unit tests of a domain) any value is taken as it is."""
    if not value:
        return ()
    if regions is None:
        return (value,)
    names = regions.area(value)
    if names is None:
        raise ValidationError([FieldViolation(field, regions.problem(value, counties=True))])
    return names


def registry_from_data(data: Any, where: str = "regions.yaml") -> RegionRegistry:
    """Check the parsed YAML and build the registry; RegionsError names what is wrong."""
    raw = data.get("counties") if isinstance(data, Mapping) else None
    if not isinstance(raw, list) or not raw:
        raise RegionsError(f"{where}: field counties: must be a non-empty list")
    counties: list[County] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        at = f"{where}: counties[{i}]"
        if not isinstance(entry, Mapping):
            raise RegionsError(f"{at}: must be a map")
        _known_fields(at, entry, {"code", "name", "parent", "townships"})
        code, name = str(entry.get("code", "")), trim(str(entry.get("name", "")))
        if not COUNTY_CODE.match(code):
            raise RegionsError(f"{at}: field code: a 6-digit GB/T 2260 code, got {code[:QUOTE]!r}")
        if not name:
            raise RegionsError(f"{at}: field name: required")
        townships = _townships(at, code, name, entry.get("townships"))
        for key in (code, name, *[t.code for t in townships], *[t.name for t in townships]):
            if key in seen:
                raise RegionsError(f"{at}: {key!r} appears twice in the file")
            seen.add(key)
        counties.append(County(code, name, str(entry.get("parent", "")), tuple(townships)))
    return RegionRegistry(tuple(counties))


def _townships(at: str, county: str, county_name: str, raw: Any) -> list[Township]:
    if not isinstance(raw, list) or not raw:
        raise RegionsError(f"{at}: field townships: must be a non-empty list")
    out = []
    for j, item in enumerate(raw):
        where = f"{at}.townships[{j}]"
        if not isinstance(item, Mapping):
            raise RegionsError(f"{where}: must be a map")
        _known_fields(where, item, {"code", "name"})
        code, name = str(item.get("code", "")), trim(str(item.get("name", "")))
        if not TOWNSHIP_CODE.match(code) or not code.startswith(county):
            raise RegionsError(
                f"{where}: field code: 9 digits starting with the county's {county}, "
                f"got {code[:QUOTE]!r}"
            )
        if not name or len(name) > 50:
            raise RegionsError(f"{where}: field name: 1-50 characters")
        out.append(Township(code, name, county, county_name))
    return out


def _known_fields(where: str, entry: Mapping[str, Any], allowed: Iterable[str]) -> None:
    for name in sorted(set(entry) - set(allowed)):
        raise RegionsError(f"{where}: field {name}: unknown field")


def load_regions(path: Path | str) -> RegionRegistry:
    """Read and check a regions file."""
    file = Path(path)
    try:
        data = read_yaml_file(file)
    except YamlFileError as exc:
        raise RegionsError(str(exc)) from None
    return registry_from_data(data, file.name)
