"""The enterprise profile (docs/api.md, EnterpriseProfile; rulesets/facts.yaml) and its
validation.

`parse_profile` takes the JSON-shaped dict that both the CLI's files and the gRPC
entrypoint produce, checks every field, and returns a frozen `EnterpriseProfile` or
raises `ValidationError` naming every bad field, so one path validates all input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from services.common import vocabulary
from services.common.values import (
    MULTILINE_FIELDS,
    PREVIEW_CHARS,
    control_problem,
    invisible,
    parse_iso_date,
    preview,
    written_day,
)
from services.common.vocabulary import (
    MOBILE,
    MOBILE_MASKED,
    Domain,
    Severity,
    mobile_problem,
    uscc_problem,
)

from .errors import FieldViolation, ValidationError


class Industry(StrEnum):
    METALLURGY = "metallurgy"
    NONFERROUS = "nonferrous"
    BUILDING_MATERIALS = "building_materials"
    MACHINERY = "machinery"
    LIGHT_INDUSTRY = "light_industry"
    TEXTILE = "textile"
    TOBACCO = "tobacco"
    COMMERCE_TRADE = "commerce_trade"
    CHEMICALS = "chemicals"
    FIREWORKS = "fireworks"
    SMALL_VENUE = "small_venue"
    OTHER = "other"


class Venue(StrEnum):
    """The kinds of venue GB 35181 judges item by item (a firm lists the ones it runs).

    The 2017 edition's venue types, plus the two terms GB 35181-2025 adds, so a 2025
    ruleset can scope by them without a code change.
    """

    PUBLIC_ENTERTAINMENT = "public_entertainment"  # 公共娱乐场所
    SHOP = "shop"  # 商店
    HOTEL = "hotel"  # 旅馆
    UNDERGROUND_CROWDED = "underground_crowded"  # 地下人员密集场所
    CROWDED_PLACE = "crowded_place"  # 其他人员密集场所
    KINDERGARTEN = "kindergarten"  # 托儿所、幼儿园
    ELDERLY_ACTIVITY = "elderly_activity"  # 老年人活动场所（老年人照料设施）
    CROWDED_RESIDENCE = "crowded_residence"  # 人员密集场所内的居住场所
    FLAMMABLES_PLANT = "flammables_plant"  # 易燃易爆危险品工厂、仓库、专用车站、码头、储罐区
    FUEL_STATION = "fuel_station"  # 加油站、加气站、加油加气合建站
    TANK_AREA = "tank_area"  # 易燃可燃液体、可燃气体储罐（区）
    LABOUR_INTENSIVE = "labour_intensive"  # 劳动密集型企业 (GB 35181-2025)
    MIXED_USE = "mixed_use"  # 多业态混合生产经营场所 (GB 35181-2025)


class HazchemRole(StrEnum):
    """What a firm does with hazardous chemicals: CHEM2017 covers producers and dealers."""

    PRODUCER = "producer"  # 生产
    DEALER = "dealer"  # 经营（含带储存经营）
    USER = "user"  # 仅使用


class CreditRating(StrEnum):
    """The firm's public credit rating, A (best) to D (worst); a profile without one is
    unrated (None). The policy (rulesets/policy.yaml, domain/policy.py) says what each
    means, by default: D makes the firm at least ORANGE, C at least YELLOW, and the white
    list needs A or B (an unrated firm stays off it); A and B have no colour effect."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


class AccidentLevel(StrEnum):
    """An accident's grade under 《生产安全事故报告和调查处理条例》 Art. 3, least first:
    一般 (fewer than 3 deaths), 较大 (3–9), 重大 (10–29), 特别重大 (30 or more), or
    higher by the seriously injured or the direct loss. Recorded as reported and shown
    in the ACCIDENT event's summary; no rule reads it (the colours and the white list
    read an accident's date, RED also its deaths)."""

    GENERAL = "general"
    LARGER = "larger"
    MAJOR = "major"
    ESPECIALLY_MAJOR = "especially_major"


class HazardStatus(StrEnum):
    OPEN = "open"
    RECTIFIED = "rectified"
    VERIFIED = "verified"


FactValue = bool | int | float | str
E = TypeVar("E", bound=StrEnum)
# How a caller writes an enum's value, for the errors that list them: the CLI's files and
# the stored profiles write the short names (`metallurgy`, `A`), a gRPC or HTTP/JSON
# caller the proto names (`INDUSTRY_METALLURGY`), which the entrypoint passes in
# (rules/entrypoints/convert.py `proto_spelling`, through RulesContext.spelling).
EnumSpelling = Callable[[type[StrEnum], str], str]


def short_names(enum: type[StrEnum], value: str) -> str:
    """The value as the domain, the CLI's files and the stored data write it."""
    return value


CLAUSE_REF = re.compile(rf"^{vocabulary.CLAUSE_REF.pattern}$")  # the shared grammar
MAX_NAME = vocabulary.FIRM_NAME_LENGTH
MAX_REGION = vocabulary.REGION_LENGTH
MAX_TEXT = 2000
# a penalty's amount_yuan on input: 0 to 一万亿元 (10^12), far above any fine the law
# provides, and where a double still holds every fen; a stored one above it (accepted
# before the bound) is read as it is
MAX_PENALTY_YUAN = 1e12
MAX_LIST = 500
MAX_EMPLOYEES = 10_000_000
MAX_FACTS = 500  # entries in a profile's facts map; the registry has fewer keys
MAX_HINTS = 5  # unknown keys answered with their nearest known keys


@dataclass(frozen=True)
class Accident:
    """A production-safety accident at the firm (the profile's history, or an ACCIDENT
    event). Any accident within the policy's windows makes the firm at least ORANGE (36
    months by default) and keeps it off the white list (36 months); one with at least
    `fatal_accident_min_deaths` deaths (1) within 12 months makes it RED. Windows end on
    the decision's as_of: an accident dated after it does not count yet."""

    occurred_on: date
    level: AccidentLevel
    deaths: int


@dataclass(frozen=True)
class Penalty:
    """An administrative penalty decided against the firm: within 12 months of
    `decided_on` (by default) it makes the firm at least YELLOW, within 24 it keeps it
    off the white list. The amount (shown in the PENALTY event's summary) and the basis
    are kept for the record; no rule reads them."""

    decided_on: date
    amount_yuan: float
    basis: str


@dataclass(frozen=True)
class Hazard:
    hazard_id: str
    clause_ref: str
    severity: Severity
    found_on: date
    due_on: date
    status: HazardStatus
    closed_on: date | None = None
    closed_late: bool = False

    @property
    def is_open(self) -> bool:
        """Found on site and not yet verified fixed (a firm's own 'rectified' is not proof)."""
        return self.status is not HazardStatus.VERIFIED

    def open_on(self, day: date) -> bool:
        """Open as a decision as of `day` sees it (docs/policy.md §1): found by then
        (`found_on` <= day) and not yet verified fixed by then (not verified, or verified
        after `day`). A hazard found after `day` had not been found yet, one verified after
        it was still open on it, so a past as_of gives the same answer whatever came later
        (review 51 D2). A verified hazard stored without `closed_on` counts as closed."""
        if self.found_on > day:
            return False
        if self.status is not HazardStatus.VERIFIED:
            return True
        return self.closed_on is not None and self.closed_on > day


@dataclass(frozen=True)
class EnterpriseProfile:
    enterprise_id: str
    name: str
    industry: Industry
    region: str
    employees: int = 0
    specialized_sme: bool = False
    standardization_grade: int = 0
    credit_rating: CreditRating | None = None
    blacklisted: bool = False
    merchant_score: int = 12
    high_risk_domains: frozenset[Domain] = frozenset()
    venues: frozenset[Venue] = frozenset()
    hazchem_roles: frozenset[HazchemRole] = frozenset()
    accidents: tuple[Accident, ...] = ()
    penalties: tuple[Penalty, ...] = ()
    hazards: tuple[Hazard, ...] = ()
    facts: Mapping[str, FactValue] = field(default_factory=dict)
    # the firm's contact mobile, for its sign-in on booking's phone page; never decides
    contact_mobile: str = ""


PROFILE_FIELDS = frozenset(
    {
        "enterprise_id",
        "name",
        "industry",
        "region",
        "employees",
        "specialized_sme",
        "standardization_grade",
        "credit_rating",
        "blacklisted",
        "merchant_score",
        "high_risk_domains",
        "venues",
        "hazchem_roles",
        "accidents",
        "penalties",
        "hazards",
        "facts",
        "contact_mobile",
    }
)
# profile_to_data writes contact_mobile only when the firm has one, so a profile stored
# before it existed reads (and is written back) exactly as it was
_STORED_FIELDS = (PROFILE_FIELDS - {"contact_mobile"}, PROFILE_FIELDS)


class FieldChecker:
    """Collects violations while reading fields, so one pass reports every bad field.

    `max_list` bounds lists in requests; a stored profile's history may grow past it.
    `controls`: text holding a control character is refused, as the servers' transports
    refuse it (services/common/malformed.py) before any of this runs; checked here too
    so that no path (the CLI's files, a servicer reached some other way) stores one.
    A stored profile is read as it was kept (False).
    """

    def __init__(
        self,
        prefix: str,
        max_list: int | None = MAX_LIST,
        *,
        controls: bool = True,
        spelling: EnumSpelling = short_names,
    ) -> None:
        self.prefix = prefix
        self.max_list = max_list
        self.controls = controls
        self.spelling = spelling  # how the caller writes enum values (EnumSpelling)
        self.violations: list[FieldViolation] = []

    def bad(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(self.prefix + path, description))

    def violations_of(self, path: str) -> bool:
        """Whether `path` is already named by a violation."""
        return any(v.field == self.prefix + path for v in self.violations)

    def string(
        self, data: Mapping[str, Any], key: str, path: str, *, max_len: int, required: bool
    ) -> str:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.bad(path, "is required")
            return ""
        if not isinstance(value, str):
            self.bad(path, "must be a string")
            return ""
        if required and self.controls and invisible(value):  # input only, as controls:
            # a stored profile keeps what an older release took (review 48 F1)
            self.bad(path, "is required: it holds nothing visible")
            return ""
        if len(value) > max_len:
            self.bad(path, f"must be at most {max_len} characters")
        elif value != value.strip():
            self.bad(path, "must not start or end with spaces")
        elif self.controls and (
            problem := control_problem(value, multiline=key in MULTILINE_FIELDS)
        ):
            self.bad(path, problem)
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, path: str, *, default: int, low: int, high: int
    ) -> int:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(path, "must be an integer")
            return default
        if not low <= value <= high:
            self.bad(path, f"must be between {low} and {high}")
            return default
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.bad(path, "must be true or false")
            return False
        return value

    def enum(self, enum: type[E], value: Any, path: str, *, required: bool) -> E | None:
        choices = ", ".join(self.spelling(enum, e.value) for e in enum)
        if value is None or value == "":
            if required:
                self.bad(path, f"is required; one of {choices}")
            return None
        try:
            return enum(value)
        except ValueError:
            self.bad(path, f"unknown value {preview(value)}; one of {choices}")
            return None

    def day(self, value: Any, path: str, *, required: bool = True) -> date | None:
        if value is None or value == "":
            if required:
                self.bad(path, "is required (YYYY-MM-DD)")
            return None
        if not isinstance(value, str):
            self.bad(path, "must be a date string YYYY-MM-DD")
            return None
        try:
            return parse_iso_date(value)
        except ValueError as exc:
            if written_day(value):  # a real day outside 1949-2199 says so (review 72)
                self.bad(path, f"{preview(value)}: {exc}")
            else:
                self.bad(path, f"{preview(value)} is not a calendar date YYYY-MM-DD")
            return None

    def items(self, data: Mapping[str, Any], key: str) -> list[Any]:
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.bad(key, "must be a list")
            return []
        if self.max_list is not None and len(value) > self.max_list:
            self.bad(key, f"at most {self.max_list} entries")
            return []
        return list(value)


def parse_profile(
    data: Mapping[str, Any],
    fact_types: Mapping[str, str],
    *,
    prefix: str = "",
    max_list: int | None = MAX_LIST,
    stored: bool = False,
    controls: bool | None = None,
    spelling: EnumSpelling = short_names,
) -> EnterpriseProfile:
    """Validate a JSON-shaped profile against docs/api.md and the fact registry; raise
    ValidationError naming each field.

    `fact_types` is the fact-key registry (key → bool|int|number|string); `prefix` is the
    path of the profile in the request (e.g. "profile.") so violations name request fields.
    `stored` reads a profile the register kept: a retired fact key the data migration
    could not map is kept as it is (no clause reads it) instead of refusing the firm, so
    events still apply and `reevaluate` can name the firm for a person to re-enter.
    `controls`: refuse text holding control characters (default: unless `stored`).
    `spelling`: how the caller writes enum values, in the errors that list them.
    """
    check = FieldChecker(
        prefix,
        max_list,
        controls=not stored if controls is None else controls,
        spelling=spelling,
    )
    if not isinstance(data, Mapping):
        check.bad("", "must be an object")
        raise ValidationError(check.violations)
    for unknown in sorted(set(data) - PROFILE_FIELDS):
        check.bad(str(unknown), "unknown field")
    enterprise_id = check.string(data, "enterprise_id", "enterprise_id", max_len=18, required=True)
    if enterprise_id and (problem := uscc_problem(enterprise_id)):
        check.bad("enterprise_id", problem)
    name = check.string(data, "name", "name", max_len=MAX_NAME, required=True)
    industry = check.enum(Industry, data.get("industry"), "industry", required=True)
    region = check.string(data, "region", "region", max_len=MAX_REGION, required=True)
    employees = check.integer(data, "employees", "employees", default=0, low=0, high=MAX_EMPLOYEES)
    grade = check.integer(
        data, "standardization_grade", "standardization_grade", default=0, low=0, high=3
    )
    merchant_score = check.integer(
        data, "merchant_score", "merchant_score", default=12, low=0, high=100
    )
    credit = check.enum(CreditRating, data.get("credit_rating"), "credit_rating", required=False)
    profile = EnterpriseProfile(
        enterprise_id=enterprise_id,
        name=name,
        industry=industry or Industry.OTHER,
        region=region,
        employees=employees,
        specialized_sme=check.boolean(data, "specialized_sme", "specialized_sme"),
        standardization_grade=grade,
        credit_rating=credit,
        blacklisted=check.boolean(data, "blacklisted", "blacklisted"),
        merchant_score=merchant_score,
        high_risk_domains=_enum_set(check, data, "high_risk_domains", Domain),
        venues=_enum_set(check, data, "venues", Venue),
        hazchem_roles=_enum_set(check, data, "hazchem_roles", HazchemRole),
        accidents=tuple(_accidents(check, data)),
        penalties=tuple(_penalties(check, data, stored)),
        hazards=tuple(_hazards(check, data)),
        facts=_facts(check, data, fact_types, stored),
        contact_mobile=_contact_mobile(check, data),
    )
    if check.violations:
        raise ValidationError(check.violations)
    return profile


def plain_profile(
    candidate: EnterpriseProfile, fact_types: Mapping[str, str]
) -> EnterpriseProfile | None:
    """`candidate`, a request's profile built field by field from typed values (a proto's:
    enums, dates and lists already translated) with its facts as sent, when every field
    passes the checks `parse_profile` makes: then its facts are coerced to their
    registered types in place (the candidate's own dict) and it is returned. None when
    anything might be refused: `parse_profile` then names what is wrong. A fast path for
    the servers; tests/unit/rules/test_plain_profile.py compares the two on generated
    profiles, valid and malformed. Hazards are left to `parse_profile` (rare in a request
    and checked against one another)."""
    c = candidate
    if (
        c.hazards
        or not _plain_text(c.enterprise_id, 18)
        or uscc_problem(c.enterprise_id) is not None
        or not _plain_text(c.name, MAX_NAME)
        or not _plain_text(c.region, MAX_REGION)
        or not 0 <= c.employees <= MAX_EMPLOYEES
        or not 0 <= c.standardization_grade <= 3
        or not 0 <= c.merchant_score <= 100
        or not isinstance(c.facts, dict)
        or len(c.facts) > MAX_FACTS
        or (c.contact_mobile and mobile_problem(c.contact_mobile) is not None)
    ):
        return None
    for accident in c.accidents:
        if not 0 <= accident.deaths <= 100_000:
            return None
    for penalty in c.penalties:
        if amount_problem(penalty.amount_yuan) is not None or (
            penalty.basis and not _plain_text(penalty.basis, MAX_TEXT, multiline=True)
        ):
            return None
    facts = c.facts
    for key, value in facts.items():
        kind = fact_types.get(key)
        parsed = None if kind is None else _fact_value(kind, value)
        if parsed is None or (type(parsed) is str and control_problem(parsed)):
            return None
        if parsed is not value:
            facts[key] = parsed
    return c


def canonical_stored_profile(data: Any, fact_types: Mapping[str, str]) -> EnterpriseProfile | None:
    """The profile `parse_profile(data, fact_types, max_list=None, stored=True)` gives,
    when `data` is exactly what `profile_to_data` writes for it (every field present,
    lists sorted without repeats, numbers of their registered types, no hazards, no
    retired fact); None otherwise, and then `parse_profile` (and `profile_to_data`) must
    be asked. A fast path for `reevaluate --all`, which reads every stored profile: what
    it returns needs no re-storing (`profile_to_data` of it equals `data`), and it skips
    building the checker and the per-field paths that only a refusal needs. Hazards are
    left to `parse_profile` (rare, and checked against one another).
    tests/unit/rules/test_stored_profile.py compares the two on generated profiles, as
    stored and altered."""
    if type(data) is not dict or data.keys() not in _STORED_FIELDS or data["hazards"]:
        return None
    contact = data.get("contact_mobile", "")
    if "contact_mobile" in data and (type(contact) is not str or not MOBILE.fullmatch(contact)):
        return None
    enterprise_id, name, region = data["enterprise_id"], data["name"], data["region"]
    if (
        not _stored_text(enterprise_id, 18)
        or uscc_problem(enterprise_id) is not None
        or not _stored_text(name, MAX_NAME)
        or not _stored_text(region, MAX_REGION)
    ):
        return None
    industry = _member(Industry, data["industry"])
    credit_value = data["credit_rating"]
    credit = None if credit_value is None else _member(CreditRating, credit_value)
    employees, grade = data["employees"], data["standardization_grade"]
    score, sme, blacklisted = data["merchant_score"], data["specialized_sme"], data["blacklisted"]
    if (
        industry is None
        or (credit is None and credit_value is not None)
        or type(employees) is not int
        or not 0 <= employees <= MAX_EMPLOYEES
        or type(grade) is not int
        or not 0 <= grade <= 3
        or type(score) is not int
        or not 0 <= score <= 100
        or type(sme) is not bool
        or type(blacklisted) is not bool
        or type(data["hazards"]) is not list
    ):
        return None
    domains = _sorted_members(Domain, data["high_risk_domains"])
    venues = _sorted_members(Venue, data["venues"])
    roles = _sorted_members(HazchemRole, data["hazchem_roles"])
    accidents = _stored_accidents(data["accidents"])
    penalties = _stored_penalties(data["penalties"])
    facts = _stored_facts(data["facts"], fact_types)
    if (
        domains is None
        or venues is None
        or roles is None
        or accidents is None
        or penalties is None
        or facts is None
    ):
        return None
    return EnterpriseProfile(
        enterprise_id,
        name,
        industry,
        region,
        employees,
        sme,
        grade,
        credit,
        blacklisted,
        score,
        domains,
        venues,
        roles,
        accidents,
        penalties,
        (),
        facts,
        contact,
    )


def _stored_text(value: Any, max_len: int) -> bool:
    """A required text that `FieldChecker.string` accepts from a stored profile (which is
    not checked for control characters)."""
    return type(value) is str and 0 < len(value) <= max_len and value == value.strip()


def _member(enum: type[E], value: Any) -> E | None:
    """The member whose value is `value` (a plain str), or None."""
    if type(value) is not str:
        return None
    return enum._value2member_map_.get(value)  # type: ignore[return-value]


def _sorted_members(enum: type[E], values: Any) -> frozenset[E] | None:
    """The members of a list as `profile_to_data` writes it (sorted, no repeats)."""
    if type(values) is not list:
        return None
    found: list[E] = []
    last = ""
    for value in values:
        member = _member(enum, value)
        if member is None or (found and value <= last):
            return None
        found.append(member)
        last = value
    return frozenset(found)


def _stored_day(value: Any) -> date | None:
    """A date written as `isoformat` writes it, within `parse_iso_date`'s range."""
    if type(value) is not str:
        return None
    try:
        day = parse_iso_date(value)
    except ValueError:
        return None
    return day if day.isoformat() == value else None


def _stored_accidents(values: Any) -> tuple[Accident, ...] | None:
    if type(values) is not list:
        return None
    out = []
    for entry in values:
        if type(entry) is not dict or entry.keys() != ACCIDENT_FIELDS:
            return None
        day = _stored_day(entry["occurred_on"])
        level = _member(AccidentLevel, entry["level"])
        deaths = entry["deaths"]
        if day is None or level is None or type(deaths) is not int or not 0 <= deaths <= 100_000:
            return None
        out.append(Accident(day, level, deaths))
    return tuple(out)


def _stored_penalties(values: Any) -> tuple[Penalty, ...] | None:
    if type(values) is not list:
        return None
    out = []
    for entry in values:
        if type(entry) is not dict or entry.keys() != PENALTY_FIELDS:
            return None
        day = _stored_day(entry["decided_on"])
        amount, basis = entry["amount_yuan"], entry["basis"]
        if (
            day is None
            or type(amount) is not float
            or not (math.isfinite(amount) and amount >= 0)
            or type(basis) is not str
            or len(basis) > MAX_TEXT
            or basis != basis.strip()
        ):
            return None
        out.append(Penalty(day, amount, basis))
    return tuple(out)


def _stored_facts(values: Any, fact_types: Mapping[str, str]) -> dict[str, FactValue] | None:
    """The facts, each of an active key and already of its registered type."""
    if type(values) is not dict or len(values) > MAX_FACTS:
        return None
    for key, value in values.items():
        kind = fact_types.get(key) if type(key) is str else None
        if kind is None:
            return None
        parsed = _fact_value(kind, value)
        if parsed is None or type(parsed) is not type(value) or parsed != value:
            return None
    return dict(values)


def _plain_text(value: str, max_len: int, *, multiline: bool = False) -> bool:
    """A required text that `FieldChecker.string` accepts (control characters included:
    the transports refuse them first, but this path does not count on it)."""
    return (
        bool(value)
        and len(value) <= max_len
        and value == value.strip()
        and control_problem(value, multiline=multiline) is None
    )


def _enum_set(
    check: FieldChecker, data: Mapping[str, Any], key: str, enum: type[E]
) -> frozenset[E]:
    found: set[E] = set()
    for i, raw in enumerate(check.items(data, key)):
        value = check.enum(enum, raw, f"{key}[{i}]", required=True)
        if value is not None:
            found.add(value)
    return frozenset(found)


ACCIDENT_FIELDS = frozenset({"occurred_on", "level", "deaths"})
PENALTY_FIELDS = frozenset({"decided_on", "amount_yuan", "basis"})
HAZARD_FIELDS = frozenset(
    {
        "hazard_id",
        "clause_ref",
        "severity",
        "found_on",
        "due_on",
        "status",
        "closed_on",
        "closed_late",
    }
)


def _entry(check: FieldChecker, raw: Any, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        check.bad(path, "must be an object")
        return {}
    for unknown in sorted(set(raw) - allowed):
        check.bad(f"{path}.{unknown}", "unknown field")
    return raw


def _entries(
    check: FieldChecker, data: Mapping[str, Any], key: str, allowed: frozenset[str]
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each object of the list `key` with its path (`key[i]`), unknown fields refused."""
    for i, raw in enumerate(check.items(data, key)):
        path = f"{key}[{i}]"
        yield path, _entry(check, raw, path, allowed)


def _accidents(check: FieldChecker, data: Mapping[str, Any]) -> list[Accident]:
    out = []
    for path, entry in _entries(check, data, "accidents", ACCIDENT_FIELDS):
        occurred = check.day(entry.get("occurred_on"), f"{path}.occurred_on")
        level = check.enum(AccidentLevel, entry.get("level"), f"{path}.level", required=True)
        deaths = check.integer(entry, "deaths", f"{path}.deaths", default=0, low=0, high=100_000)
        if occurred and level:
            out.append(Accident(occurred, level, deaths))
    return out


def amount_problem(amount: object, stored: bool = False) -> str | None:
    """Why a penalty's `amount_yuan` is refused, or None: a number from 0 to
    MAX_PENALTY_YUAN (`stored`: any finite number >= 0, as kept before the bound)."""
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int | float)
        or not math.isfinite(amount)
        or amount < 0
    ):
        return "must be a finite number >= 0"
    if amount > MAX_PENALTY_YUAN and not stored:
        return f"must be at most {MAX_PENALTY_YUAN:.0f} (yuan)"
    return None


def _penalties(check: FieldChecker, data: Mapping[str, Any], stored: bool) -> list[Penalty]:
    out = []
    for path, entry in _entries(check, data, "penalties", PENALTY_FIELDS):
        decided = check.day(entry.get("decided_on"), f"{path}.decided_on")
        amount = entry.get("amount_yuan", 0)
        if (problem := amount_problem(amount, stored)) is not None:
            check.bad(f"{path}.amount_yuan", problem)
            amount = 0
        basis = check.string(entry, "basis", f"{path}.basis", max_len=MAX_TEXT, required=False)
        if decided:
            out.append(Penalty(decided, float(amount), basis))
    return out


def _hazards(check: FieldChecker, data: Mapping[str, Any]) -> list[Hazard]:
    out: list[Hazard] = []
    seen: set[str] = set()
    for path, entry in _entries(check, data, "hazards", HAZARD_FIELDS):
        hazard_id = check.string(entry, "hazard_id", f"{path}.hazard_id", max_len=64, required=True)
        if hazard_id in seen:
            check.bad(f"{path}.hazard_id", f"duplicate hazard_id {preview(hazard_id)}")
        seen.add(hazard_id)
        ref = check.string(entry, "clause_ref", f"{path}.clause_ref", max_len=48, required=True)
        if ref and not CLAUSE_REF.match(ref):
            check.bad(f"{path}.clause_ref", "must be <standard_id>:<clause>, e.g. GM2023:11(1)")
        severity = check.enum(Severity, entry.get("severity"), f"{path}.severity", required=True)
        status = check.enum(HazardStatus, entry.get("status"), f"{path}.status", required=True)
        found = check.day(entry.get("found_on"), f"{path}.found_on")
        due = check.day(entry.get("due_on"), f"{path}.due_on")
        closed = check.day(entry.get("closed_on"), f"{path}.closed_on", required=False)
        late = check.boolean(entry, "closed_late", f"{path}.closed_late")
        if found and due and due < found:
            check.bad(f"{path}.due_on", "must not be before found_on")
        if closed and found and closed < found:
            check.bad(f"{path}.closed_on", "must not be before found_on")
        if closed and status is not HazardStatus.VERIFIED:
            check.bad(f"{path}.closed_on", "only a verified hazard has a closed_on date")
        if late and not closed:
            check.bad(f"{path}.closed_late", "a late closure needs its closed_on date")
        if severity and status and found and due:
            out.append(Hazard(hazard_id, ref, severity, found, due, status, closed, late))
    return out


def _contact_mobile(check: FieldChecker, data: Mapping[str, Any]) -> str:
    """The optional contact mobile: empty, a mainland mobile, or one masked as a caller
    without `rules.contact` reads it (138****5678: the register keeps the number on
    record it masks, events.contact_kept; Evaluate reads no contact at all). Control
    characters are refused by `FieldChecker.string`, as in every text field."""
    mobile = check.string(data, "contact_mobile", "contact_mobile", max_len=64, required=False)
    if MOBILE_MASKED.fullmatch(mobile):
        return mobile
    if mobile and not check.violations_of("contact_mobile") and (problem := mobile_problem(mobile)):
        check.bad("contact_mobile", f"{preview(mobile)}: {problem}")
        return ""
    return mobile


def fact_path(key: object) -> str:
    """A sent fact's path as a violation names it, relative to the profile: the key as
    sent (`facts["…"]`), or its short prefix when long."""
    short = isinstance(key, str) and len(key) <= PREVIEW_CHARS
    return f'facts["{key}"]' if short else f"facts[{preview(key)}]"


def given_twice(new: str) -> str:
    """Why a fact sent under its former name is refused when `new`, its current name, is
    sent too (FactRegistry.renamed): one value only."""
    return f"the former name of {new}, which is given too: send one"


def _facts(
    check: FieldChecker, data: Mapping[str, Any], fact_types: Mapping[str, str], stored: bool
) -> dict[str, FactValue]:
    raw = data.get("facts")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        check.bad("facts", "must be a map of fact key to value")
        return {}
    if len(raw) > MAX_FACTS:
        check.bad("facts", f"at most {MAX_FACTS} entries (the registry has fewer keys)")
        return {}
    out: dict[str, FactValue] = {}
    hints = MAX_HINTS  # the nearest-key hint costs a string comparison with every key
    renamed: Mapping[str, str] = getattr(fact_types, "renamed", {})
    for key, value in raw.items():
        path = fact_path(key)
        kind = fact_types.get(key) if isinstance(key, str) else None
        if kind is None and isinstance(key, str) and (new := renamed.get(key)) is not None:
            if new in raw:
                check.bad(path, given_twice(new))
                continue
            key, kind = new, fact_types.get(new)  # a plain rename: read as its current name
        if kind is None:
            retired = getattr(fact_types, "retired", {})
            if stored and key in retired and isinstance(value, bool | int | float):
                out[key] = value
                continue
            problem = getattr(fact_types, "unknown_key_problem", None)
            known = isinstance(key, str) and key in retired
            if problem and isinstance(key, str) and (known or hints > 0):
                hints -= 0 if known else 1
                check.bad(path, problem(key))
            else:
                check.bad(path, "unknown fact key (see the fact-key registry, ListFacts)")
            continue
        parsed = _fact_value(kind, value)
        if parsed is None:
            check.bad(path, f"must be {_KIND_TEXT[kind]}")
            continue
        if problem := _value_problem(kind, parsed, controls=check.controls, stored=stored):
            check.bad(path, problem)
            continue
        out[key] = parsed
    return out


def _value_problem(kind: str, value: FactValue, *, controls: bool, stored: bool) -> str | None:
    """What is wrong with a fact value of the right type: a control character in text,
    or a negative number on input (every number fact measures something, a pressure or a
    ratio of widths or distances: a negative one is a typo, and would breach a "< 0.75"
    clause as if measured). A stored profile's numbers are read as kept."""
    if isinstance(value, str) and controls:
        return control_problem(value)
    if kind == "number" and not stored and isinstance(value, float) and value < 0:
        return "must be a number >= 0 (a measured quantity)"
    return None


_KIND_TEXT = {
    "bool": "true or false",
    "int": "a whole number >= 0",
    "number": "a finite number",
    "string": "a string of at most 200 characters",
}


def _fact_value(kind: str, value: Any) -> FactValue | None:
    """Coerce a fact value to its registered type; None when it does not fit.

    JSON and google.protobuf.Value carry every number as a float, so 3.0 is accepted
    for an int fact; True is never accepted as a number.
    """
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind == "int":
        if isinstance(value, int | float) and math.isfinite(value) and value == int(value):
            return int(value) if value >= 0 else None
        return None
    if kind == "number":
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        return None
    if kind == "string" and isinstance(value, str) and len(value) <= 200:
        return value
    return None


def profile_to_data(p: EnterpriseProfile) -> dict[str, Any]:
    """The JSON shape `parse_profile` reads: how the register stores a profile."""
    return {
        "enterprise_id": p.enterprise_id,
        "name": p.name,
        "industry": p.industry.value,
        "region": p.region,
        "employees": p.employees,
        "specialized_sme": p.specialized_sme,
        "standardization_grade": p.standardization_grade,
        "credit_rating": p.credit_rating.value if p.credit_rating else None,
        "blacklisted": p.blacklisted,
        "merchant_score": p.merchant_score,
        "high_risk_domains": sorted(d.value for d in p.high_risk_domains),
        "venues": sorted(v.value for v in p.venues),
        "hazchem_roles": sorted(r.value for r in p.hazchem_roles),
        "accidents": [
            {"occurred_on": a.occurred_on.isoformat(), "level": a.level.value, "deaths": a.deaths}
            for a in p.accidents
        ],
        "penalties": [
            {"decided_on": x.decided_on.isoformat(), "amount_yuan": x.amount_yuan, "basis": x.basis}
            for x in p.penalties
        ],
        "hazards": [_hazard_data(h) for h in p.hazards],
        "facts": dict(p.facts),
    } | ({"contact_mobile": p.contact_mobile} if p.contact_mobile else {})


def _hazard_data(h: Hazard) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hazard_id": h.hazard_id,
        "clause_ref": h.clause_ref,
        "severity": h.severity.value,
        "found_on": h.found_on.isoformat(),
        "due_on": h.due_on.isoformat(),
        "status": h.status.value,
    }
    if h.closed_on:
        out["closed_on"] = h.closed_on.isoformat()
    if h.closed_late:
        out["closed_late"] = True
    return out
