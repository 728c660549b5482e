"""Protocol buffers ↔ the JSON-shaped dicts and domain objects. Translation only."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common.context import ANONYMOUS, current_principal
from services.common.instants import rfc3339
from services.common.proto_values import fact_value
from services.common.regions import RegionRegistry
from services.common.values import parse_iso_date
from services.common.vocabulary import Domain, Severity, mask_mobile
from services.rules.domain.changes import Change, ChangeKind
from services.rules.domain.decision import Decision, Finding, RiskLevel
from services.rules.domain.decision import Status as DecisionStatus
from services.rules.domain.events import EventKind
from services.rules.domain.facts import FactDefinition, FactRegistry
from services.rules.domain.gate import InspectionKind
from services.rules.domain.profile import (
    MAX_LIST,
    Accident,
    AccidentLevel,
    CreditRating,
    EnterpriseProfile,
    HazardStatus,
    HazchemRole,
    Industry,
    Penalty,
    Venue,
)
from services.rules.domain.register import HistoryEntry
from services.rules.domain.standards import Clause, Standard

CONTACT_SCOPE = "rules.contact"  # reads a firm's contact mobile unmasked


def enum_value(enum: Any, number: int, prefix: str, *, lower: bool = True) -> str | None:
    """INDUSTRY_MACHINERY → "machinery"; UNSPECIFIED → None; an unknown number stays visible."""
    if number == 0:
        return None
    try:
        name = enum.Name(number)
    except ValueError:
        return f"<unknown enum value {number}>"
    value = str(name).removeprefix(prefix)
    return value.lower() if lower else value


def enum_number(enum: Any, value: str, prefix: str) -> Any:
    """ "machinery" → INDUSTRY_MACHINERY's number (typed Any: the stubs want the enum type).
    Remembered per name: every decision converts the same few (an unknown name raises
    ValueError each time, never remembered)."""
    return _enum_number(enum, prefix + value.upper())


@functools.lru_cache(maxsize=4096)
def _enum_number(enum: Any, name: str) -> int:
    return int(enum.Value(name))


def _fact(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "null_value" or kind is None:
        return None
    return json_format.MessageToDict(value)  # a list or struct: the domain rejects it


def _day(text: str) -> str | None:
    return text or None


def profile_to_dict(p: pb.EnterpriseProfile) -> dict[str, Any]:
    """The JSON shape that domain.profile.parse_profile validates."""
    return {
        "enterprise_id": p.enterprise_id,
        "name": p.name,
        "industry": enum_value(pb.Industry, p.industry, "INDUSTRY_"),
        "region": p.region,
        "employees": p.employees,
        "specialized_sme": p.specialized_sme,
        "standardization_grade": p.standardization_grade,
        "credit_rating": enum_value(
            pb.CreditRating, p.credit_rating, "CREDIT_RATING_", lower=False
        ),
        "blacklisted": p.blacklisted,
        "merchant_score": p.merchant_score if p.HasField("merchant_score") else None,
        "high_risk_domains": [
            enum_value(pb.HighRiskDomain, d, "HIGH_RISK_DOMAIN_") for d in p.high_risk_domains
        ],
        "venues": [enum_value(pb.Venue, v, "VENUE_") for v in p.venues],
        "hazchem_roles": [enum_value(pb.HazchemRole, r, "HAZCHEM_ROLE_") for r in p.hazchem_roles],
        "accidents": [
            {
                "occurred_on": _day(a.occurred_on),
                "level": enum_value(pb.AccidentLevel, a.level, "ACCIDENT_LEVEL_"),
                "deaths": a.deaths,
            }
            for a in p.accidents
        ],
        "penalties": [
            {"decided_on": _day(x.decided_on), "amount_yuan": x.amount_yuan, "basis": x.basis}
            for x in p.penalties
        ],
        "hazards": [
            {
                "hazard_id": h.hazard_id,
                "clause_ref": h.clause_ref,
                "severity": enum_value(pb.Severity, h.severity, "SEVERITY_"),
                "found_on": _day(h.found_on),
                "due_on": _day(h.due_on),
                "status": enum_value(pb.HazardStatus, h.status, "HAZARD_STATUS_"),
                "closed_on": _day(h.closed_on),
                "closed_late": h.closed_late,
            }
            for h in p.hazards
        ],
        "facts": {k: _fact(v) for k, v in p.facts.items()},
        "contact_mobile": p.contact_mobile,
    }


def _members(
    enum: Any, prefix: str, domain: type[StrEnum], *, lower: bool = True
) -> dict[int, Any]:
    """Proto enum number → the domain's member, for the numbers `enum_value` turns into a
    name the domain knows (UNSPECIFIED and any other number are left out)."""
    out: dict[int, Any] = {}
    known = {m.value for m in domain}
    for number in enum.values():
        name = enum_value(enum, number, prefix, lower=lower)
        if name in known:
            out[int(number)] = domain(name)
    return out


_INDUSTRIES = _members(pb.Industry, "INDUSTRY_", Industry)
_CREDIT_RATINGS = _members(pb.CreditRating, "CREDIT_RATING_", CreditRating, lower=False)
_DOMAINS = _members(pb.HighRiskDomain, "HIGH_RISK_DOMAIN_", Domain)
_VENUES = _members(pb.Venue, "VENUE_", Venue)
_HAZCHEM_ROLES = _members(pb.HazchemRole, "HAZCHEM_ROLE_", HazchemRole)
_ACCIDENT_LEVELS = _members(pb.AccidentLevel, "ACCIDENT_LEVEL_", AccidentLevel)
_PLAIN_FACTS = {"bool_value", "number_value", "string_value"}

# the proto enum and name prefix of each domain enum a request carries, for the errors
# that list its values (proto_spelling)
_PROTO_ENUMS: dict[type[StrEnum], tuple[Any, str]] = {
    Industry: (pb.Industry, "INDUSTRY_"),
    CreditRating: (pb.CreditRating, "CREDIT_RATING_"),
    Domain: (pb.HighRiskDomain, "HIGH_RISK_DOMAIN_"),
    Venue: (pb.Venue, "VENUE_"),
    HazchemRole: (pb.HazchemRole, "HAZCHEM_ROLE_"),
    AccidentLevel: (pb.AccidentLevel, "ACCIDENT_LEVEL_"),
    Severity: (pb.Severity, "SEVERITY_"),
    HazardStatus: (pb.HazardStatus, "HAZARD_STATUS_"),
    EventKind: (pb.EventKind, "EVENT_KIND_"),
    InspectionKind: (pb.InspectionKind, "INSPECTION_KIND_"),
}


def proto_spelling(enum: type[StrEnum], value: str) -> str:
    """A domain enum's value as a gRPC or HTTP/JSON caller writes it: "metallurgy" →
    "INDUSTRY_METALLURGY" (profile.EnumSpelling; the short name when no proto name has
    it, so an error never lists a value the caller could not send)."""
    proto = _PROTO_ENUMS.get(enum)
    if proto is None:
        return value
    name = proto[1] + value.upper()
    return name if name in proto[0].DESCRIPTOR.values_by_name else value


class _NotPlain(Exception):
    """A field `profile_candidate` leaves to the JSON-shaped path (profile_to_dict)."""


def profile_candidate(p: pb.EnterpriseProfile) -> EnterpriseProfile | None:
    """The profile built straight from the proto, unvalidated (domain.profile.plain_profile
    checks it), or None for a shape only `profile_to_dict` and `parse_profile` translate
    and judge: an unset or unknown enum, a missing or bad date, a hazard, a list longer
    than a request may hold, a fact that is not yes/no, a number or text."""
    if p.hazards:
        return None
    try:
        facts = {}
        given = p.facts
        for key in given:  # (.items() of a proto map is a slower, pure-Python view)
            value = given[key]
            kind = value.WhichOneof("kind")
            if kind not in _PLAIN_FACTS:
                return None
            facts[key] = getattr(value, kind)
        credit = p.credit_rating
        accidents, penalties = p.accidents, p.penalties
        return EnterpriseProfile(
            enterprise_id=p.enterprise_id,
            name=p.name,
            industry=_INDUSTRIES[p.industry],
            region=p.region,
            employees=p.employees,
            specialized_sme=p.specialized_sme,
            standardization_grade=p.standardization_grade,
            credit_rating=_CREDIT_RATINGS[credit] if credit else None,
            blacklisted=p.blacklisted,
            merchant_score=p.merchant_score if p.HasField("merchant_score") else 12,
            high_risk_domains=_enum_set(p.high_risk_domains, _DOMAINS),
            venues=_enum_set(p.venues, _VENUES),
            hazchem_roles=_enum_set(p.hazchem_roles, _HAZCHEM_ROLES),
            accidents=tuple(
                [
                    Accident(_plain_day(a.occurred_on), _ACCIDENT_LEVELS[a.level], a.deaths)
                    for a in _short(accidents)
                ]
            )
            if accidents
            else (),
            penalties=tuple(
                [
                    Penalty(_plain_day(x.decided_on), x.amount_yuan, x.basis)
                    for x in _short(penalties)
                ]
            )
            if penalties
            else (),
            facts=facts,
            contact_mobile=p.contact_mobile,
        )
    except (KeyError, ValueError, _NotPlain):
        return None


def _short(items: Any) -> Any:
    if len(items) > MAX_LIST:
        raise _NotPlain
    return items


def _enum_set(numbers: Any, members: dict[int, Any]) -> frozenset[Any]:
    return frozenset([members[n] for n in _short(numbers)]) if numbers else frozenset()


def _plain_day(text: str) -> date:
    if not text:
        raise _NotPlain
    return parse_iso_date(text)  # ValueError on a bad date


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""


def contact_visible() -> bool:
    """Whether the current caller may read a firm's contact mobile whole: it holds the
    scope rules.contact (or nothing checks scopes: in process, a server without tokens,
    as `require_scope`). Everyone else reads it masked (138****5678)."""
    principal = current_principal()
    return principal is ANONYMOUS or principal.has(CONTACT_SCOPE)


def profile_to_proto(p: EnterpriseProfile, *, contact: bool = True) -> pb.EnterpriseProfile:
    """The profile as answered; `contact` False masks its contact mobile."""
    mobile = p.contact_mobile if contact or not p.contact_mobile else mask_mobile(p.contact_mobile)
    out = pb.EnterpriseProfile(
        contact_mobile=mobile,
        enterprise_id=p.enterprise_id,
        name=p.name,
        industry=enum_number(pb.Industry, p.industry, "INDUSTRY_"),
        region=p.region,
        employees=p.employees,
        specialized_sme=p.specialized_sme,
        standardization_grade=p.standardization_grade,
        credit_rating=_credit_number(p),
        blacklisted=p.blacklisted,
        merchant_score=p.merchant_score,
        high_risk_domains=sorted(
            enum_number(pb.HighRiskDomain, d, "HIGH_RISK_DOMAIN_") for d in p.high_risk_domains
        ),
        venues=sorted(enum_number(pb.Venue, v, "VENUE_") for v in p.venues),
        hazchem_roles=sorted(
            enum_number(pb.HazchemRole, r, "HAZCHEM_ROLE_") for r in p.hazchem_roles
        ),
        accidents=[
            pb.Accident(
                occurred_on=_iso(a.occurred_on),
                deaths=a.deaths,
                level=enum_number(pb.AccidentLevel, a.level, "ACCIDENT_LEVEL_"),
            )
            for a in p.accidents
        ],
        penalties=[
            pb.Penalty(decided_on=_iso(x.decided_on), amount_yuan=x.amount_yuan, basis=x.basis)
            for x in p.penalties
        ],
        hazards=[
            pb.Hazard(
                hazard_id=h.hazard_id,
                clause_ref=h.clause_ref,
                severity=enum_number(pb.Severity, h.severity, "SEVERITY_"),
                found_on=_iso(h.found_on),
                due_on=_iso(h.due_on),
                status=enum_number(pb.HazardStatus, h.status, "HAZARD_STATUS_"),
                closed_on=_iso(h.closed_on),
                closed_late=h.closed_late,
            )
            for h in p.hazards
        ],
    )
    for key, value in p.facts.items():
        out.facts[key].CopyFrom(fact_value(value))
    return out


def _credit_number(p: EnterpriseProfile) -> Any:
    if p.credit_rating is None:
        return pb.CREDIT_RATING_UNSPECIFIED
    return enum_number(pb.CreditRating, p.credit_rating, "CREDIT_RATING_")


def _numbers(enum: Any, prefix: str, domain: type[StrEnum]) -> dict[Any, Any]:
    """The domain enum's member → its proto number (`enum_number`, once per member;
    typed Any as enum_number is: the stubs want the enum type)."""
    return {member: enum_number(enum, member.value, prefix) for member in domain}


_SEVERITY_NUMBERS = _numbers(pb.Severity, "SEVERITY_", Severity)
_STATUS_NUMBERS = _numbers(pb.Status, "STATUS_", DecisionStatus)
_RISK_NUMBERS = _numbers(pb.RiskLevel, "RISK_LEVEL_", RiskLevel)


def _clause_fields(c: Clause | Finding) -> dict[str, Any]:
    """What a rules.v1 Clause and Finding both say of the clause (a finding cites one)."""
    return {
        "standard_id": c.standard_id,
        "clause": c.clause,
        "clause_ref": c.ref,
        "severity": _SEVERITY_NUMBERS[c.severity],
        "text": c.text,
        "guidance": c.guidance,
        "services": c.services,
        "verified": c.verified,
    }


def finding_to_proto(f: Finding) -> pb.Finding:
    out = pb.Finding(
        **_clause_fields(f),
        fact_keys=f.fact_keys,
        hazard_id=f.hazard_id,
        edition=f.edition,
        superseded=f.superseded,
        successor=f.successor,
    )
    for key, value in f.matched_facts.items():
        out.matched_facts[key].CopyFrom(fact_value(value))
    return out


def decision_to_proto(d: Decision, *, request_id: str = "", decision_id: str = "") -> pb.Decision:
    out = pb.Decision(
        enterprise_id=d.enterprise_id,
        status=_STATUS_NUMBERS[d.status],
        risk_level=_RISK_NUMBERS[d.risk_level],
        inspection_cap_per_year=d.inspection_cap_per_year,
        recommended_services=d.recommended_services,
        ruleset_version=d.ruleset_version,
        as_of=_iso(d.as_of),
        valid_until=_iso(d.valid_until),
        risk_reasons=d.risk_reasons,
        inspection_due_on=_iso(d.inspection_due_on),
        request_id=request_id,
        decision_id=decision_id,
    )
    if d.findings:
        out.findings.extend([finding_to_proto(f) for f in d.findings])
    blockers = out.whitelist_blockers
    for b in d.whitelist_blockers:
        blockers.add(
            code=b.code,
            reason=b.reason,
            arose_on=b.arose_on.isoformat() if b.arose_on else "",
            ends_on=b.ends_on.isoformat() if b.ends_on else "",
        )
    return out


SEVERITIES = {pb.SEVERITY_GENERAL: Severity.GENERAL, pb.SEVERITY_MAJOR: Severity.MAJOR}


def question_to_proto(d: FactDefinition) -> pb.FactQuestion:
    return pb.FactQuestion(
        key=d.key,
        question=d.question,
        label=d.label,
        answer_type=enum_number(pb.AnswerType, d.answer_type, "ANSWER_TYPE_"),
        unit=d.unit,
        type=d.type,
    )


def clause_to_proto(c: Clause, facts: FactRegistry | None = None) -> pb.Clause:
    keys = c.condition.fact_keys()
    definitions = [d for k in keys if facts and (d := facts.definition(k))]
    return pb.Clause(
        **_clause_fields(c),
        fact_keys=list(keys),
        note=c.note,
        applies_to=c.describe_scope(),
        condition=c.condition.describe(),
        title=c.title,
        questions=[question_to_proto(d) for d in definitions],
        edition=c.edition.name,
    )


def standard_to_proto(
    s: Standard, *, today: date, facts: FactRegistry | None = None, with_clauses: bool
) -> pb.Standard:
    e = s.edition
    return pb.Standard(
        id=s.id,
        title=s.title,
        version=s.version,
        clause_count=len(s.clauses),
        verified=s.verified,
        issuer=s.issuer,
        source=s.source,
        in_force_on=s.in_force_on,
        clauses=[clause_to_proto(c, facts) for c in s.clauses] if with_clauses else [],
        edition=e.name,
        effective_from=_iso(e.effective_from),
        superseded_on=_iso(e.superseded_on),
        successor=e.successor,
        superseded=e.superseded_by(today),
    )


def facts_to_proto(registry: FactRegistry, readers: Mapping[str, list[str]]) -> list[pb.FactInfo]:
    return [
        pb.FactInfo(
            fact=question_to_proto(d), standard_id=d.standard, clause_refs=readers.get(key, [])
        )
        for key, d in registry.definitions.items()
    ]


def retired_to_proto(registry: FactRegistry) -> list[pb.RetiredFactInfo]:
    return [
        pb.RetiredFactInfo(key=r.key, replaced_by=list(r.replaced_by), reason=r.reason)
        for r in registry.retired.values()
    ]


# enum fields of a profile in JSON: field → (enum, prefix, lower-case short name)
_PROFILE_ENUMS: dict[str, tuple[Any, str, bool]] = {
    "industry": (pb.Industry, "INDUSTRY_", True),
    "credit_rating": (pb.CreditRating, "CREDIT_RATING_", False),
    "high_risk_domains": (pb.HighRiskDomain, "HIGH_RISK_DOMAIN_", True),
    "venues": (pb.Venue, "VENUE_", True),
    "hazchem_roles": (pb.HazchemRole, "HAZCHEM_ROLE_", True),
}
_RECORD_ENUMS: dict[str, tuple[Any, dict[str, tuple[Any, str, bool]]]] = {
    "accidents": (pb.Accident, {"level": (pb.AccidentLevel, "ACCIDENT_LEVEL_", True)}),
    "penalties": (pb.Penalty, {}),
    "hazards": (
        pb.Hazard,
        {
            "severity": (pb.Severity, "SEVERITY_", True),
            "status": (pb.HazardStatus, "HAZARD_STATUS_", True),
        },
    ),
}


def short_profile_json(data: Any) -> Any:
    """A profile in JSON, in the short form `parse_profile` reads (the CLI's files).

    Accepts the proto3 JSON mapping as any proto3 library prints it (lowerCamelCase field
    names, enum value names like INDUSTRY_COMMERCE_TRADE, or enum numbers) as well as the
    short form (snake_case names, `commerce_trade`); anything else is left for validation
    to name. A value that is not an object is returned unchanged."""
    if not isinstance(data, Mapping):
        return data
    out = _snake_keys(data, pb.EnterpriseProfile.DESCRIPTOR)
    _short_enums(out, _PROFILE_ENUMS)
    for key, (message, enums) in _RECORD_ENUMS.items():
        items = out.get(key)
        if isinstance(items, list):
            out[key] = [
                _short_enums(_snake_keys(i, message.DESCRIPTOR), enums)
                if isinstance(i, Mapping)
                else i
                for i in items
            ]
    return out


def _snake_keys(data: Mapping[str, Any], descriptor: Any) -> dict[str, Any]:
    """lowerCamelCase JSON names → proto field names (facts' keys are data, not names)."""
    by_json = descriptor.fields_by_camelcase_name
    return {(by_json[k].name if k in by_json else k): v for k, v in data.items()}


def _short_enums(
    data: dict[str, Any], enums: Mapping[str, tuple[Any, str, bool]]
) -> dict[str, Any]:
    for key, (enum, prefix, lower) in enums.items():
        if isinstance(data.get(key), list):
            data[key] = [_short_enum(enum, prefix, lower, v) for v in data[key]]
        elif key in data:
            data[key] = _short_enum(enum, prefix, lower, data[key])
    return data


def _short_enum(enum: Any, prefix: str, lower: bool, value: Any) -> Any:
    """INDUSTRY_COMMERCE_TRADE or 8 → "commerce_trade"; UNSPECIFIED or 0 → None; a short
    name, or anything unknown, stays as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            value = enum.Name(value)
        except ValueError:
            return value
    if isinstance(value, str) and value.upper().startswith(prefix):
        short = value[len(prefix) :]
        if short.upper() == "UNSPECIFIED":
            return None
        return short.lower() if lower else short.upper()
    return value


def profile_from_json(data: Mapping[str, Any]) -> pb.EnterpriseProfile:
    """A profile in JSON (the short form of the CLI's files, or the proto3 JSON mapping:
    see `short_profile_json`) → proto.

    Raises json_format.ParseError or ValueError on a shape the proto cannot hold.
    """
    given = proto_json(data)
    fast = _direct_profile(given)
    if fast is not None:
        return fast
    out = pb.EnterpriseProfile()
    json_format.ParseDict(given, out)
    return out


def proto_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """A profile in JSON → the proto3 JSON mapping ParseDict reads (full enum names)."""
    shaped = dict(short_profile_json(data))
    shaped["industry"] = _enum_name("INDUSTRY_", shaped.get("industry"))
    shaped["credit_rating"] = _enum_name("CREDIT_RATING_", shaped.get("credit_rating"))
    shaped["high_risk_domains"] = [
        _enum_name("HIGH_RISK_DOMAIN_", d) for d in shaped.get("high_risk_domains") or []
    ]
    shaped["venues"] = [_enum_name("VENUE_", v) for v in shaped.get("venues") or []]
    shaped["hazchem_roles"] = [
        _enum_name("HAZCHEM_ROLE_", r) for r in shaped.get("hazchem_roles") or []
    ]
    shaped["accidents"] = [
        {**a, "level": _enum_name("ACCIDENT_LEVEL_", a.get("level"))}
        for a in shaped.get("accidents") or []
    ]
    shaped["hazards"] = [
        {
            **h,
            "severity": _enum_name("SEVERITY_", h.get("severity")),
            "status": _enum_name("HAZARD_STATUS_", h.get("status")),
        }
        for h in shaped.get("hazards") or []
    ]
    return {k: v for k, v in shaped.items() if v is not None}


_TEXT_FIELDS = frozenset({"enterprise_id", "name", "region", "contact_mobile"})
_INT32_FIELDS = frozenset({"employees", "standardization_grade", "merchant_score"})
_BOOL_FIELDS = frozenset({"specialized_sme", "blacklisted"})
_ENUM_FIELDS = {"industry": pb.Industry, "credit_rating": pb.CreditRating}
_ENUM_LISTS = {
    "high_risk_domains": pb.HighRiskDomain,
    "venues": pb.Venue,
    "hazchem_roles": pb.HazchemRole,
}
_RECORD_LISTS = frozenset({"accidents", "penalties", "hazards"})


def _direct_profile(given: Mapping[str, Any]) -> pb.EnterpriseProfile | None:
    """The profile built field by field, as ParseDict would build it, for the plain
    shapes a file of profiles holds (text, whole numbers, yes/no, enum names, facts that
    are yes/no, finite numbers or text, no records); None for anything else, which then
    goes through ParseDict (and its errors). About three times faster than ParseDict."""
    out = pb.EnterpriseProfile()
    try:
        for key, value in given.items():
            kind = type(value)
            if _plain_scalar(key, kind, value):
                setattr(out, key, value)
            elif key in _ENUM_FIELDS and kind is str:
                setattr(out, key, _ENUM_FIELDS[key].Value(value))
            elif key in _ENUM_LISTS and kind is list:
                getattr(out, key).extend(_ENUM_LISTS[key].Value(v) for v in value)
            elif key in _RECORD_LISTS and kind is list and not value:
                continue
            elif key == "facts" and kind is dict:
                if not _direct_facts(value, out.facts):
                    return None
            else:
                return None
    except (ValueError, TypeError):
        return None  # an unknown enum name, say: ParseDict says what is wrong
    return out


def _plain_scalar(key: str, kind: type, value: Any) -> bool:
    return (
        (key in _TEXT_FIELDS and kind is str)
        or (key in _INT32_FIELDS and kind is int and -(2**31) <= value < 2**31)
        or (key in _BOOL_FIELDS and kind is bool)
    )


def _direct_facts(facts: Mapping[Any, Any], into: Any) -> bool:
    for key, value in facts.items():
        kind = type(value)
        if type(key) is not str:
            return False
        if kind is bool:
            into[key].bool_value = value
        elif (kind is int and abs(value) < 2**53) or (kind is float and math.isfinite(value)):
            into[key].number_value = value
        elif kind is str:
            into[key].string_value = value
        else:
            return False
    return True


def _enum_name(prefix: str, value: Any) -> Any:
    return f"{prefix}{value.upper()}" if isinstance(value, str) and value else None


def message_to_dict(message: Message) -> dict[str, Any]:
    """Proto → JSON-ready dict with the proto's own field names (for --json output)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def facts_to_dict(facts: Mapping[str, struct_pb2.Value]) -> dict[str, Any]:
    return {k: _fact(v) for k, v in facts.items()}


# ---------------------------------------------------------------- the register


def event_to_dict(e: pb.EnterpriseEvent) -> dict[str, Any]:
    """The JSON shape domain.events.parse_event validates."""
    out: dict[str, Any] = {
        "event_id": e.event_id,
        "enterprise_id": e.enterprise_id,
        "kind": enum_value(pb.EventKind, e.kind, "EVENT_KIND_"),
        "occurred_on": e.occurred_on or None,
    }
    which = e.WhichOneof("detail")
    if which == "accident":
        out["accident"] = {
            "level": enum_value(pb.AccidentLevel, e.accident.level, "ACCIDENT_LEVEL_"),
            "deaths": e.accident.deaths,
        }
    elif which == "complaint":
        out["complaint"] = {"text": e.complaint.text}
    elif which == "hazard":
        out["hazard"] = {
            "hazard_id": e.hazard.hazard_id,
            "clause_ref": e.hazard.clause_ref,
            "severity": enum_value(pb.Severity, e.hazard.severity, "SEVERITY_"),
            "due_on": e.hazard.due_on or None,
        }
    elif which == "verification":
        out["verification"] = {"hazard_id": e.verification.hazard_id, "late": e.verification.late}
    elif which == "overdue":
        out["overdue"] = {"hazard_id": e.overdue.hazard_id}
    elif which == "penalty":
        out["penalty"] = {"amount_yuan": e.penalty.amount_yuan, "basis": e.penalty.basis}
    elif which == "profile":
        out["profile"] = profile_to_dict(e.profile)
    elif which == "due_change":
        out["due_change"] = {
            "hazard_id": e.due_change.hazard_id,
            "due_on": e.due_change.due_on or None,
        }
    return out


def check_request_to_dict(r: pb.CheckInspectionRequest) -> dict[str, Any]:
    return {
        "enterprise_id": r.enterprise_id,
        "authority": r.authority,
        "kind": enum_value(pb.InspectionKind, r.kind, "INSPECTION_KIND_"),
        "planned_on": r.planned_on or None,
        "grounds": r.grounds,
        "idempotency_key": r.idempotency_key,
    }


def entry_to_proto(e: Any) -> pb.WhitelistEntry:
    return pb.WhitelistEntry(
        enterprise_id=e.enterprise_id,
        name=e.name,
        region=e.region,
        granted_on=_iso(e.granted_on),
        valid_until=_iso(e.valid_until),
        revoked_on=_iso(e.revoked_on),
        revoked_reason=e.revoked_reason,
        decision_id=e.decision_id,
    )


def _number(enum: Any, value: str, prefix: str) -> Any:
    """Like enum_number, with "" (and a value this build does not know) → UNSPECIFIED 0."""
    try:
        return enum_number(enum, value, prefix) if value else 0
    except ValueError:
        return 0


def firm_summary_to_proto(f: Any) -> pb.EnterpriseSummary:
    """A register row (domain.register.Firm) in short; an industry or status this build
    does not know reads as UNSPECIFIED."""
    return pb.EnterpriseSummary(
        enterprise_id=f.enterprise_id,
        name=f.name,
        region=f.region,
        industry=_number(pb.Industry, str(f.profile.get("industry", "")), "INDUSTRY_"),
        status=_number(pb.Status, f.status, "STATUS_"),
    )


def history_to_proto(h: HistoryEntry) -> pb.HistoryItem:
    out = pb.HistoryItem(
        recorded_at=rfc3339(h.recorded_at),
        kind=h.kind,
        status=_number(pb.Status, h.status, "STATUS_"),
        risk_level=_number(pb.RiskLevel, h.risk_level, "RISK_LEVEL_"),
        event_id=h.event_id,
        event_kind=_number(pb.EventKind, h.event_kind, "EVENT_KIND_"),
        reason=h.reason,
        ruleset_version=h.ruleset_version,
        as_of=_iso(h.as_of),
        decision_id=h.decision_id,
    )
    if h.entry is not None:
        out.whitelist_entry.CopyFrom(entry_to_proto(h.entry))
    return out


def status_to_proto(view: Any) -> pb.EnterpriseStatus:
    """A StatusView as answered: the contact mobile masked unless `contact_visible`."""
    out = pb.EnterpriseStatus(
        profile=profile_to_proto(view.profile, contact=contact_visible()),
        decision=decision_to_proto(view.decision, decision_id=view.decision_id),
        history=[history_to_proto(r) for r in view.history],
        duplicate=view.duplicate,
    )
    if view.entry is not None:
        out.whitelist_entry.CopyFrom(entry_to_proto(view.entry))
    return out


def verdict_to_proto(result: Any) -> pb.InspectionVerdict:
    v, record = result.verdict, result.record
    return pb.InspectionVerdict(
        allowed=v.allowed,
        joint=v.joint,
        joint_id=v.joint_id,
        inspection_code=record.inspection_code or "",
        reason=v.reason,
        reason_code=v.reason_code,
        yearly_count=v.yearly_count,
        yearly_cap=v.yearly_cap,
        duplicate=result.duplicate,
    )


def inspection_to_proto(view: Any) -> pb.Inspection:
    r = view.record
    return pb.Inspection(
        inspection_code=r.inspection_code or "",
        enterprise_id=r.enterprise_id,
        enterprise_name=view.enterprise_name,
        authority=r.authority,
        kind=enum_number(pb.InspectionKind, r.kind, "INSPECTION_KIND_"),
        planned_on=_iso(r.planned_on),
        joint_id=r.joint_id,
        grounds=r.grounds,
        joint_authorities=view.joint_authorities,
    )


# ---------------------------------------------------------------- change feed

_WHITELIST_KINDS = {
    ChangeKind.WHITELIST_GRANTED,
    ChangeKind.WHITELIST_EXTENDED,
    ChangeKind.WHITELIST_EXPIRED,
    ChangeKind.WHITELIST_REVOKED,
}


def change_to_proto(c: Change) -> pb.Change:
    d = c.detail
    out = pb.Change(
        cursor=c.cursor,
        change_id=c.change_id,
        kind=enum_number(pb.ChangeKind, c.kind, "CHANGE_KIND_"),
        enterprise_id=c.enterprise_id,
        region=c.region,
        recorded_at=rfc3339(c.recorded_at),
    )
    if c.kind is ChangeKind.DECISION_CHANGED:
        out.decision.CopyFrom(
            pb.DecisionChange(
                decision_id=d.get("decision_id", ""),
                status=_number(pb.Status, d.get("status", ""), "STATUS_"),
                risk_level=_number(pb.RiskLevel, d.get("risk_level", ""), "RISK_LEVEL_"),
                blocker_codes=d.get("blocker_codes", []),
                previous_status=_number(pb.Status, d.get("previous_status", ""), "STATUS_"),
                previous_risk_level=_number(
                    pb.RiskLevel, d.get("previous_risk_level", ""), "RISK_LEVEL_"
                ),
                as_of=d.get("as_of", ""),
                cause=d.get("cause", ""),
            )
        )
    elif c.kind in _WHITELIST_KINDS:
        out.whitelist.CopyFrom(
            pb.WhitelistChange(
                granted_on=d.get("granted_on", ""),
                valid_until=d.get("valid_until", ""),
                revoked_on=d.get("revoked_on", ""),
                reason=d.get("reason", ""),
                decision_id=d.get("decision_id", ""),
            )
        )
    elif c.kind in (ChangeKind.REGION_LEFT, ChangeKind.REGION_JOINED):
        out.region_change.CopyFrom(
            pb.RegionChange(
                from_region=d.get("from_region", ""),
                to_region=d.get("to_region", ""),
                status=_number(pb.Status, d.get("status", ""), "STATUS_"),
                risk_level=_number(pb.RiskLevel, d.get("risk_level", ""), "RISK_LEVEL_"),
                decision_id=d.get("decision_id", ""),
                whitelisted=bool(d.get("whitelisted", False)),
                granted_on=d.get("granted_on", ""),
                valid_until=d.get("valid_until", ""),
            )
        )
    elif c.kind is ChangeKind.EVENT_APPLIED:
        out.event.CopyFrom(
            pb.EventChange(
                event_id=d.get("event_id", ""),
                kind=_number(pb.EventKind, d.get("kind", ""), "EVENT_KIND_"),
                occurred_on=d.get("occurred_on", ""),
                source=d.get("source", ""),
                summary=d.get("summary", ""),
            )
        )
    else:
        out.inspection.CopyFrom(
            pb.InspectionChange(
                authority=d.get("authority", ""),
                kind=_number(pb.InspectionKind, d.get("kind", ""), "INSPECTION_KIND_"),
                planned_on=d.get("planned_on", ""),
                joint=bool(d.get("joint", False)),
                joint_id=d.get("joint_id", ""),
                reason_code=d.get("reason_code", ""),
            )
        )
    return out


def change_json(c: Change) -> bytes:
    """The NATS message body: the Change in the proto3 JSON mapping."""
    return json_format.MessageToJson(change_to_proto(c), indent=None).encode("utf-8")


def regions_to_proto(regions: RegionRegistry | None) -> pb.ListRegionsResponse:
    """The townships and counties of the registry; none when there is no registry."""
    if regions is None:
        return pb.ListRegionsResponse()
    return pb.ListRegionsResponse(
        regions=[
            pb.Region(
                code=t.code,
                name=t.name,
                kind=t.kind,
                county_code=t.county_code,
                county_name=t.county_name,
            )
            for t in regions.townships
        ],
        counties=[
            pb.RegionCounty(code=c.code, name=c.name, parent=c.parent) for c in regions.counties
        ],
    )
