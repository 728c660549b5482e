"""The expert pool: what an expert entry must satisfy (pure).

`parse_expert` checks every field of an upsert at once and names each bad one; the 镇街 an
expert serves are checked against the deployment's regions (rulesets/regions.yaml) when
the caller has them, and stored by their Chinese names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from services.common.errors import FieldViolation, ValidationError
from services.common.values import preview
from services.common.vocabulary import DOMAINS, uscc_problem

from .orders import PHONE
from .records import Expert
from .slots import parse_slot

EXPERT_ID_MAX = 64
NAME_MAX = 50
MAX_REGIONS, REGION_MAX = 50, 100
MAX_SLOTS = 400
MAX_CONFLICTS = 500


class Regions(Protocol):
    """What checking an expert's regions needs of the region registry."""

    def canonical(self, value: str) -> str | None: ...
    def problem(self, value: str, *, counties: bool = False) -> str: ...


def parse_expert(data: Mapping[str, Any], known: Regions | None) -> Expert:
    """An Expert from an upsert's fields, or ValidationError naming every bad field."""
    bad: list[FieldViolation] = []
    expert_id = str(data.get("expert_id", "")).strip()
    if not expert_id or len(expert_id) > EXPERT_ID_MAX:
        bad.append(
            FieldViolation("expert.expert_id", f"required, at most {EXPERT_ID_MAX} characters")
        )
    name = str(data.get("name", "")).strip()
    if not name or len(name) > NAME_MAX:
        bad.append(FieldViolation("expert.name", f"required, at most {NAME_MAX} characters"))
    domains = [str(d) for d in dict.fromkeys(data.get("domains", []))]
    if not domains or not set(domains) <= DOMAINS:
        bad.append(FieldViolation("expert.domains", "one or more of the nine high-risk domains"))
    slots = [str(s) for s in dict.fromkeys(data.get("slots", []))]
    _check_slots(slots, bad)
    per_day = data.get("max_visits_per_day", 2)
    if per_day not in (1, 2):
        bad.append(FieldViolation("expert.max_visits_per_day", "1 or 2"))
    regions = _regions(data, known, bad)
    conflicts = [str(c) for c in dict.fromkeys(data.get("conflicts", []))]
    if len(conflicts) > MAX_CONFLICTS or any(uscc_problem(c) for c in conflicts):
        bad.append(
            FieldViolation(
                "expert.conflicts",
                f"at most {MAX_CONFLICTS} unified social credit codes, "
                "each with its check character",
            )
        )
    phone = str(data.get("phone", "")).strip()
    if phone and not PHONE.fullmatch(phone.replace("-", "").replace(" ", "")):
        bad.append(FieldViolation("expert.phone", "a mainland mobile number (11 digits)"))
    if bad:
        raise ValidationError(bad)
    active = bool(data.get("active", True))
    return Expert(expert_id, name, phone, domains, regions, slots, int(per_day), active, conflicts)


def _check_slots(slots: list[str], bad: list[FieldViolation]) -> None:
    for s in slots:
        try:
            parse_slot(s)
        except ValueError as exc:
            bad.append(FieldViolation("expert.slots", f"{preview(s)}: {exc}"))
            break
    if len(slots) > MAX_SLOTS:
        bad.append(FieldViolation("expert.slots", f"at most {MAX_SLOTS} half-days"))


def _regions(
    data: Mapping[str, Any], known: Regions | None, bad: list[FieldViolation]
) -> list[str]:
    """The 镇街 an expert serves, each a listed one, stored as its Chinese name."""
    regions = [str(r) for r in dict.fromkeys(data.get("regions", []))]
    if len(regions) > MAX_REGIONS or any(not r.strip() or len(r) > REGION_MAX for r in regions):
        bad.append(
            FieldViolation(
                "expert.regions",
                f"at most {MAX_REGIONS} regions of 1-{REGION_MAX} characters",
            )
        )
        return regions
    if known is None:
        return regions
    canonical: list[str] = []
    for i, r in enumerate(regions):
        name = known.canonical(r)
        if name is None:
            bad.append(FieldViolation(f"expert.regions[{i}]", known.problem(r)))
        canonical.append(name or r)
    return list(dict.fromkeys(canonical))
