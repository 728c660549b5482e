"""The expert pool: what an expert entry must satisfy (pure).

`parse_expert` checks every field of an upsert at once and names each bad one; the 镇街 an
expert serves are checked against the deployment's regions (rulesets/regions.yaml) when
the caller has them, and stored by their Chinese names. An expert id is taken as sent,
never trimmed: ' E-01 ' would otherwise overwrite E-01, and a look-alike ('E-01' with a
zero-width space) would make a second expert, so ids keep to EXPERT_ID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from services.common.errors import FieldViolation, ValidationError
from services.common.values import control_problem, invisible, trim
from services.common.vocabulary import DOMAINS, mask_mobile, uscc_problem

from . import messages
from .orders import PHONE, clean_phone
from .records import Expert
from .slots import parse_slot

EXPERT_ID_MAX = 64
# an expert id: ASCII letters and digits, then also '-', '_' and '.'; no spaces (E-FIRE-01)
EXPERT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{EXPERT_ID_MAX - 1}}}")
VISITS_PER_DAY = (1, 2)
DEFAULT_VISITS_PER_DAY = 2  # what an upsert that leaves the field out (proto3: 0) means
NAME_MAX = 50
MAX_REGIONS, REGION_MAX = 50, 100
MAX_SLOTS = 400
MAX_CONFLICTS = 500
MASK_MARK = "*"  # what vocabulary.mask_mobile puts for the hidden digits


class Regions(Protocol):
    """What checking an expert's regions needs of the region registry."""

    def canonical(self, value: str) -> str | None: ...
    def nearest(self, value: str) -> list[str]: ...


def parse_expert(
    data: Mapping[str, Any],
    known: Regions | None,
    *,
    on_record: bool = False,
    stored_phone: str = "",
) -> Expert:
    """An Expert from an upsert's fields, or ValidationError naming every bad field.
    `on_record`: an expert with exactly this id is stored (from before ids were checked):
    its id is taken as it is, so that the expert can still be updated or deactivated.
    `stored_phone`: that expert's stored mobile; its mask sent back (a client that read
    the entry masked and writes it back) keeps it (`_phone`)."""
    bad: list[FieldViolation] = []
    expert_id = str(data.get("expert_id", ""))
    if not on_record and not EXPERT_ID.fullmatch(expert_id):
        bad.append(FieldViolation("expert.expert_id", messages.EXPERT_ID.format(n=EXPERT_ID_MAX)))
    name = trim(str(data.get("name", "")))
    if invisible(name) or len(name) > NAME_MAX or control_problem(name):
        bad.append(FieldViolation("expert.name", messages.EXPERT_NAME.format(n=NAME_MAX)))
    sent_domains = [str(d) for d in data.get("domains", [])]
    domains = list(dict.fromkeys(sent_domains))
    if not domains:
        bad.append(FieldViolation("expert.domains", messages.EXPERT_DOMAINS))
    bad.extend(  # each unknown one by its index as sent, as rules names list items
        FieldViolation(f"expert.domains[{n}]", messages.EXPERT_DOMAINS)
        for n, d in enumerate(sent_domains)
        if d not in DOMAINS and d not in sent_domains[:n]
    )
    sent_slots = [str(s) for s in data.get("slots", [])]
    slots = list(dict.fromkeys(sent_slots))
    _check_slots(sent_slots, len(slots), bad)
    per_day = data.get("max_visits_per_day") or DEFAULT_VISITS_PER_DAY
    if per_day not in VISITS_PER_DAY:
        bad.append(FieldViolation("expert.max_visits_per_day", messages.EXPERT_PER_DAY))
    regions = _regions(data, known, bad)
    sent_conflicts = [str(c) for c in data.get("conflicts", [])]
    conflicts = list(dict.fromkeys(sent_conflicts))
    if len(conflicts) > MAX_CONFLICTS:
        bad.append(
            FieldViolation("expert.conflicts", messages.EXPERT_CONFLICTS.format(n=MAX_CONFLICTS))
        )
    else:  # each bad code by its index as sent
        bad.extend(
            FieldViolation(
                f"expert.conflicts[{n}]", messages.EXPERT_CONFLICTS.format(n=MAX_CONFLICTS)
            )
            for n, c in enumerate(sent_conflicts)
            if uscc_problem(c) and c not in sent_conflicts[:n]
        )
    phone = _phone(str(data.get("phone", "")), stored_phone, bad)
    if bad:
        raise ValidationError(bad)
    active = bool(data.get("active", True))
    return Expert(expert_id, name, phone, domains, regions, slots, int(per_day), active, conflicts)


def _phone(sent: str, stored: str, bad: list[FieldViolation]) -> str:
    """The mobile an upsert stores: as sent, as its 11 digits (as an order's
    contact_phone: its mask, 138****5678, then shows the number's ends, where
    "138-1234-5678" masked to "***"); the stored one when the sent value is its mask
    (review 66: every reader but booking.admin reads it masked, and a client writing back
    what it read must not lose it nor be refused for it). Any other masked value is
    refused with EXPERT_PHONE_MASKED, saying why."""
    phone = clean_phone(sent)
    if MASK_MARK in phone:
        kept = clean_phone(stored)
        if stored and phone in (mask_mobile(stored), mask_mobile(kept)):
            return kept if PHONE.fullmatch(kept) else stored
        bad.append(FieldViolation("expert.phone", messages.EXPERT_PHONE_MASKED))
        return ""
    if phone and not PHONE.fullmatch(phone):
        bad.append(FieldViolation("expert.phone", messages.EXPERT_PHONE))
    return phone


def _check_slots(sent: list[str], distinct: int, bad: list[FieldViolation]) -> None:
    """The first slot that is not one, named by its index as sent (expert.slots[3])."""
    for n, s in enumerate(sent):
        try:
            parse_slot(s)
        except ValueError:
            bad.append(
                FieldViolation(
                    f"expert.slots[{n}]", messages.EXPERT_SLOT.format(slot=messages.quoted(s))
                )
            )
            break
    if distinct > MAX_SLOTS:
        bad.append(FieldViolation("expert.slots", messages.EXPERT_SLOTS_MAX.format(n=MAX_SLOTS)))


def _regions(
    data: Mapping[str, Any], known: Regions | None, bad: list[FieldViolation]
) -> list[str]:
    """The 镇街 an expert serves, each a listed one, stored as its Chinese name."""
    sent = [str(r) for r in data.get("regions", [])]
    regions = list(dict.fromkeys(sent))
    # each one named by its index as sent (expert.regions[2]), repeats once
    firsts = [(n, r) for n, r in enumerate(sent) if r not in sent[:n]]
    if len(regions) > MAX_REGIONS:
        bad.append(
            FieldViolation(
                "expert.regions", messages.EXPERT_REGIONS.format(n=MAX_REGIONS, m=REGION_MAX)
            )
        )
        return regions
    if unwritten := [n for n, r in firsts if not trim(r) or len(r) > REGION_MAX]:
        bad.extend(
            FieldViolation(
                f"expert.regions[{n}]", messages.EXPERT_REGIONS.format(n=MAX_REGIONS, m=REGION_MAX)
            )
            for n in unwritten
        )
        return regions
    if known is None:
        return regions
    canonical: list[str] = []
    for n, r in firsts:
        name = known.canonical(r)
        if name is None:
            bad.append(FieldViolation(f"expert.regions[{n}]", _unknown_region(known, r)))
        canonical.append(name or r)
    return list(dict.fromkeys(canonical))


def _unknown_region(known: Regions, value: str) -> str:
    near = known.nearest(value)
    hint = messages.NEAREST_REGIONS.format(names="、".join(near)) if near else ""
    return messages.UNKNOWN_REGION.format(value=messages.quoted(value), hint=hint)
