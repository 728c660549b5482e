"""Load rulesets/ (data files) → schema check → domain objects.

Every problem is a `RulesetError` whose message names the file, the clause and the
field, e.g. `gm2023.yaml: clause 11(3): when.fact: unknown fact key 'dust.foo'`:
an unknown fact key, a duplicate clause id or a bad operator is a load error, never
a silent miss at evaluation time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema

from services.common.regions import RegionRegistry, RegionsError, registry_from_data
from services.common.vocabulary import Domain, Severity
from services.common.yaml_files import YamlFileError, parse_yaml
from services.rules.adapters.engine import exponent_free
from services.rules.domain.facts import FactDefinition, FactRegistry, RetiredFact
from services.rules.domain.policy import (
    CapPolicy,
    ColourPolicy,
    GatePolicy,
    Policy,
    WhitelistPolicy,
)
from services.rules.domain.profile import CreditRating, HazchemRole, Industry, Venue
from services.rules.domain.standards import (
    OPERATORS,
    ORDERING_OPERATORS,
    AllOf,
    AnyOf,
    Catalogue,
    Clause,
    Comparison,
    Condition,
    Edition,
    Scope,
    Standard,
)

SPECIAL_FILES = ("facts.yaml", "policy.yaml", "menu.yaml", "regions.yaml")
FACT_TYPES = ("bool", "int", "number", "string")

_SCOPE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "industries": {
            "type": "array",
            "items": {"enum": [i.value for i in Industry]},
            "minItems": 1,
        },
        "domains": {"type": "array", "items": {"enum": [d.value for d in Domain]}, "minItems": 1},
        "venues": {"type": "array", "items": {"enum": [v.value for v in Venue]}, "minItems": 1},
        "hazchem_roles": {
            "type": "array",
            "items": {"enum": [r.value for r in HazchemRole]},
            "minItems": 1,
        },
        "max_employees": {"type": "integer", "minimum": 0},
    },
}
_CONDITION: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["fact", "op", "value"],
            "properties": {
                "fact": {"type": "string", "minLength": 1},
                "op": {"enum": sorted(OPERATORS)},
                "value": {"type": ["boolean", "number", "string"]},
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["all"],
            "properties": {
                "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
            },
        },
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["any"],
            "properties": {
                "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
            },
        },
    ]
}
RULESET_SCHEMA: dict[str, Any] = {
    "$defs": {"condition": _CONDITION, "scopes": {"type": "array", "items": _SCOPE}},
    "type": "object",
    "additionalProperties": False,
    "required": ["standard", "clauses"],
    "properties": {
        "standard": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "title", "issuer", "source", "applies_to"],
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Z][A-Z0-9]{1,15}$"},
                "title": {"type": "string", "minLength": 1},
                "issuer": {"type": "string", "minLength": 1},
                "edition": {"type": "string", "minLength": 1},
                "published_on": {},  # YAML reads an unquoted date as a date (checked below)
                "effective_from": {},
                "superseded_on": {},
                "successor": {"type": "string", "minLength": 1},
                "source": {"type": "string", "minLength": 1},
                "reference": {"type": "string", "minLength": 1},
                "note": {"type": "string"},
                "applies_to": {"$ref": "#/$defs/scopes"},
            },
        },
        "clauses": {
            "type": "array",
            "minItems": 1,
            "maxItems": 300,  # the engine shards a standard into small rulesets
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "id",
                    "title",
                    "severity",
                    "text",
                    "when",
                    "guidance",
                    "services",
                    "verified",
                ],
                "properties": {
                    "id": {"type": "string", "pattern": r"^[^\s:]{1,32}$"},
                    "title": {"type": "string", "minLength": 1, "maxLength": 16},
                    "severity": {"enum": ["MAJOR", "GENERAL"]},
                    "text": {"type": "string", "minLength": 1},
                    "guidance": {"type": "string", "minLength": 1},
                    "when": {"$ref": "#/$defs/condition"},
                    "applies_to": {"$ref": "#/$defs/scopes"},
                    "services": {"type": "array", "items": {"type": "string"}},
                    "verified": {"type": "boolean"},
                    "note": {"type": "string"},
                },
            },
        },
    },
}


class RulesetError(Exception):
    """A ruleset file is wrong; the message names file, clause and field."""


@dataclass(frozen=True)
class Rulebook:
    """Everything loaded from one rulesets directory."""

    catalogue: Catalogue
    policy: Policy
    fact_types: FactRegistry  # a Mapping of active key → type, with questions and retired keys
    menu_codes: frozenset[str]
    directory: Path
    regions: RegionRegistry  # rulesets/regions.yaml: the 镇街 a firm's region may name
    menu_names: Mapping[str, str]  # menu.yaml: item code → its Chinese name


def load_rulebook(directory: Path | str) -> Rulebook:
    """Load and check every file of a rulesets directory; RulesetError on the first problem."""
    root = Path(directory)
    if not root.is_dir():
        raise RulesetError(f"{root}: rulesets directory not found")
    for name in SPECIAL_FILES:
        if not (root / name).is_file():
            raise RulesetError(f"{name}: missing from {root}")
    hashes: dict[str, str] = {}
    fact_types = _load_facts(root / "facts.yaml", hashes)
    menu_names = _load_menu(root / "menu.yaml", hashes)
    menu_codes = frozenset(menu_names)
    policy = _load_policy(root / "policy.yaml", hashes, menu_codes)
    files = sorted(p for p in root.glob("*.yaml") if p.name not in SPECIAL_FILES)
    if not files:
        raise RulesetError(f"{root}: no standard files")
    standards = [_load_standard(p, fact_types, menu_codes, hashes) for p in files]
    _check_editions(root, standards)
    standards.sort(key=lambda s: (s.id, s.edition.effective_from or date.min))
    combined = hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(hashes.items())).encode())
    catalogue = Catalogue(standards=tuple(standards), version="rs-" + combined.hexdigest()[:16])
    # regions.yaml changes no decision, so it is not part of ruleset_version
    regions = _load_regions(root / "regions.yaml")
    return Rulebook(catalogue, policy, fact_types, menu_codes, root, regions, menu_names)


def _load_regions(path: Path) -> RegionRegistry:
    try:
        return registry_from_data(_read(path, {}), path.name)
    except RegionsError as exc:
        raise RulesetError(str(exc)) from exc


def _read(path: Path, hashes: dict[str, str]) -> Any:
    raw = path.read_bytes()
    hashes[path.name] = hashlib.sha256(raw).hexdigest()
    try:
        return parse_yaml(raw, path.name)  # the parser booking reads the shared files with
    except YamlFileError as exc:
        raise RulesetError(str(exc)) from None


_FACT_FIELDS = frozenset({"type", "standard", "label", "question", "unit"})
_RETIRED_FIELDS = frozenset(
    {"retired", "replaced_by", "reason", "when_true", "when_false", "when_value"}
)


def _load_facts(path: Path, hashes: dict[str, str]) -> FactRegistry:
    """Active keys need a type, a label and a question; retired ones name replacements."""
    data = _read(path, hashes)
    facts = data.get("facts") if isinstance(data, dict) else None
    if not isinstance(facts, dict) or not facts:
        raise RulesetError(f"{path.name}: field facts: must be a map of fact key to definition")
    active: dict[str, FactDefinition] = {}
    retired_raw: dict[str, dict[str, Any]] = {}
    for key, spec in facts.items():
        where = f"{path.name}: fact {key}"
        if not isinstance(spec, dict):
            raise RulesetError(f"{where}: must be a map of fields")
        if spec.get("retired") is True:
            _unknown_fields(where, spec, _RETIRED_FIELDS)
            retired_raw[str(key)] = spec
            continue
        _unknown_fields(where, spec, _FACT_FIELDS)
        kind = spec.get("type")
        if kind not in FACT_TYPES:
            raise RulesetError(f"{where}: field type: must be one of {FACT_TYPES}")
        for name in ("standard", "label", "question"):
            if not isinstance(spec.get(name), str) or not spec[name].strip():
                raise RulesetError(f"{where}: field {name}: required text")
        unit = spec.get("unit", "")
        if kind in ("int", "number") and not unit:
            raise RulesetError(f"{where}: field unit: a {kind} fact needs its unit")
        active[str(key)] = FactDefinition(
            str(key), kind, spec["standard"], spec["label"].strip(), spec["question"].strip(), unit
        )
    retired = {k: _retired(path.name, k, v, active) for k, v in retired_raw.items()}
    return FactRegistry(active, retired)


def _unknown_fields(where: str, spec: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in sorted(set(spec) - allowed):
        raise RulesetError(f"{where}: field {name}: unknown field")


def _retired(
    name: str, key: str, spec: Mapping[str, Any], active: Mapping[str, FactDefinition]
) -> RetiredFact:
    where = f"{name}: fact {key}"
    if key in active:
        raise RulesetError(f"{where}: retired and active at once")
    replaced = spec.get("replaced_by") or []
    if not isinstance(replaced, list) or any(r not in active for r in replaced):
        raise RulesetError(f"{where}: field replaced_by: must list active fact keys")
    if not isinstance(spec.get("reason"), str) or not spec["reason"].strip():
        raise RulesetError(f"{where}: field reason: required text")
    if spec.get("when_value") is not None:
        raise RulesetError(f"{where}: field when_value: only null (ambiguous) is supported")
    maps: dict[str, dict[str, Any] | None] = {}
    for field in ("when_true", "when_false"):
        raw = spec.get(field)
        if raw is None:
            maps[field] = None
            continue
        if not isinstance(raw, dict) or any(k not in active for k in raw):
            raise RulesetError(f"{where}: field {field}: must map active fact keys to values")
        maps[field] = dict(raw)
    return RetiredFact(
        key, tuple(replaced), spec["reason"].strip(), maps["when_true"], maps["when_false"]
    )


def _load_menu(path: Path, hashes: dict[str, str]) -> dict[str, str]:
    """Item code → name, in file order."""
    data = _read(path, hashes)
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise RulesetError(f"{path.name}: field items: must be a non-empty list")
    codes, names = [], {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise RulesetError(f"{path.name}: item {i}: field code: required")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RulesetError(f"{path.name}: item {item['code']}: field name: required text")
        domain = item.get("domain")
        if domain is not None and domain not in {d.value for d in Domain}:
            raise RulesetError(
                f"{path.name}: item {item['code']}: field domain: unknown {domain!r}"
            )
        codes.append(item["code"])
        names[item["code"]] = name.strip()
    if len(set(codes)) != len(codes):
        raise RulesetError(f"{path.name}: field items: duplicate item code")
    return names


def _load_standard(
    path: Path, fact_types: FactRegistry, menu: frozenset[str], hashes: dict[str, str]
) -> Standard:
    data = _read(path, hashes)
    _schema_check(path.name, data)
    head = data["standard"]
    edition = _edition(path.name, head)
    default_scopes = tuple(_scope(s) for s in head["applies_to"])
    clauses = []
    seen: set[str] = set()
    for raw in data["clauses"]:
        where = f"{path.name}: clause {raw['id']}"
        if raw["id"] in seen:
            raise RulesetError(f"{where}: field id: duplicate clause id")
        seen.add(raw["id"])
        for service in raw["services"]:
            if service not in menu:
                raise RulesetError(f"{where}: field services: {service!r} is not in menu.yaml")
        if not raw["verified"] and not raw.get("note", "").strip():
            raise RulesetError(f"{where}: field note: an unverified clause says why")
        scopes = (
            tuple(_scope(s) for s in raw["applies_to"]) if "applies_to" in raw else default_scopes
        )
        clauses.append(
            Clause(
                standard_id=head["id"],
                clause=raw["id"],
                severity=Severity(raw["severity"].lower()),
                text=raw["text"].strip(),
                guidance=raw["guidance"].strip(),
                condition=_condition(raw["when"], fact_types, where, "when"),
                scopes=scopes,
                services=tuple(raw["services"]),
                verified=raw["verified"],
                note=raw.get("note", "").strip(),
                title=raw["title"].strip(),
                edition=edition,
            )
        )
    return Standard(
        id=head["id"],
        title=head["title"],
        issuer=head["issuer"],
        source=head["source"],
        in_force_on=edition.effective_from.isoformat() if edition.effective_from else "",
        version=f"{head['id']}-{hashes[path.name][:12]}",
        clauses=tuple(clauses),
        scopes=default_scopes,
        edition=edition,
    )


def _edition(name: str, head: Mapping[str, Any]) -> Edition:
    """The edition fields of a standard's head; dates checked, successor with its date."""
    days: dict[str, date | None] = {}
    for field in ("published_on", "effective_from", "superseded_on"):
        value = head.get(field)
        if value is not None and not isinstance(value, date):
            raise RulesetError(f"{name}: field standard.{field}: must be a date YYYY-MM-DD")
        days[field] = value
    if (head.get("successor") is None) != (days["superseded_on"] is None):
        raise RulesetError(
            f"{name}: field standard.successor: superseded_on and successor go together"
        )
    start, end = days["effective_from"], days["superseded_on"]
    if start and end and end <= start:
        raise RulesetError(f"{name}: field standard.superseded_on: must be after effective_from")
    return Edition(
        name=head.get("edition", ""),
        effective_from=start,
        superseded_on=end,
        successor=head.get("successor", ""),
    )


def _check_editions(root: Path, standards: Sequence[Standard]) -> None:
    """Several files may hold editions of one standard id, each with its own start date."""
    seen: dict[tuple[str, date | None], Standard] = {}
    for standard in standards:
        slot = (standard.id, standard.edition.effective_from)
        if slot in seen:
            raise RulesetError(
                f"{root}: standard {standard.id} has two editions in force from the same day "
                f"({seen[slot].edition.name or '-'} and {standard.edition.name or '-'})"
            )
        seen[slot] = standard
        if standard.edition.effective_from is None and any(
            s.id == standard.id and s is not standard for s in standards
        ):
            raise RulesetError(
                f"{root}: standard {standard.id}: every edition of a standard loaded "
                "from several files needs effective_from"
            )


def _schema_check(name: str, data: Any) -> None:
    validator = jsonschema.Draft202012Validator(RULESET_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors) or errors[0]
    path = list(error.absolute_path)
    where = name
    if len(path) >= 2 and path[0] == "clauses" and isinstance(path[1], int):
        clause = data["clauses"][path[1]]
        ident = clause.get("id", f"#{path[1] + 1}") if isinstance(clause, dict) else path[1] + 1
        where += f": clause {ident}"
        path = path[2:]
    field = ".".join(str(p) for p in path) or "(top level)"
    raise RulesetError(f"{where}: field {field}: {error.message}")


def _scope(raw: Mapping[str, Any]) -> Scope:
    return Scope(
        industries=frozenset(Industry(i) for i in raw.get("industries", ())),
        domains=frozenset(Domain(d) for d in raw.get("domains", ())),
        venues=frozenset(Venue(v) for v in raw.get("venues", ())),
        hazchem_roles=frozenset(HazchemRole(r) for r in raw.get("hazchem_roles", ())),
        max_employees=raw.get("max_employees"),
    )


def _condition(
    raw: Mapping[str, Any], fact_types: FactRegistry, where: str, field: str
) -> Condition:
    if "all" in raw:
        return AllOf(
            tuple(
                _condition(p, fact_types, where, f"{field}.all[{i}]")
                for i, p in enumerate(raw["all"])
            )
        )
    if "any" in raw:
        return AnyOf(
            tuple(
                _condition(p, fact_types, where, f"{field}.any[{i}]")
                for i, p in enumerate(raw["any"])
            )
        )
    key, op, value = raw["fact"], raw["op"], raw["value"]
    kind = fact_types.get(key)
    if kind is None:
        raise RulesetError(
            f"{where}: field {field}.fact: {key!r}: {fact_types.unknown_key_problem(key)}"
        )
    if kind == "bool" and (op not in ("eq", "ne") or not isinstance(value, bool)):
        raise RulesetError(f"{where}: field {field}.op: bool fact {key!r} takes eq/ne true/false")
    if kind in ("int", "number") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise RulesetError(f"{where}: field {field}.value: {kind} fact {key!r} needs a number")
    if isinstance(value, float) and not exponent_free(value):
        raise RulesetError(
            f"{where}: field {field}.value: {value!r}: a threshold must be 0 or between "
            "0.0001 and 1e16 in size (the rules engine cannot read an exponent)"
        )
    if kind == "string" and (op in ORDERING_OPERATORS or not isinstance(value, str)):
        raise RulesetError(f"{where}: field {field}.op: string fact {key!r} takes eq/ne a string")
    return Comparison(key, op, value)


def _load_policy(path: Path, hashes: dict[str, str], menu: frozenset[str]) -> Policy:
    data = _read(path, hashes)
    try:
        p = data["policy"]
        c, w, caps, gate = p["colour"], p["whitelist"], p["inspection_caps"], p["gate"]
        service = p["recommendations"]["high_risk_grade_zero_service"]
        if service not in menu:
            raise RulesetError(f"{path.name}: field recommendations: {service!r} not in menu.yaml")
        policy = Policy(
            version=hashes[path.name][:12],
            colour=ColourPolicy(
                fatal_accident_window_months=_int(c["red"]["fatal_accident_window_months"]),
                fatal_accident_min_deaths=_int(c["red"]["fatal_accident_min_deaths"]),
                red_if_blacklisted=bool(c["red"]["blacklisted"]),
                orange_min_general_findings=_int(c["orange"]["min_general_findings"]),
                orange_accident_window_months=_int(c["orange"]["accident_window_months"]),
                orange_credit_ratings=frozenset(
                    CreditRating(r) for r in c["orange"]["credit_ratings"]
                ),
                orange_high_risk_grade_zero=bool(c["orange"]["high_risk_grade_zero"]),
                yellow_min_general_findings=_int(c["yellow"]["min_general_findings"]),
                yellow_penalty_window_months=_int(c["yellow"]["penalty_window_months"]),
                yellow_credit_ratings=frozenset(
                    CreditRating(r) for r in c["yellow"]["credit_ratings"]
                ),
                yellow_merchant_score_below=_int(c["yellow"]["merchant_score_below"]),
            ),
            whitelist=WhitelistPolicy(
                specialized_sme_only=bool(w["specialized_sme_only"]),
                accident_free_months=_int(w["accident_free_months"]),
                penalty_free_months=_int(w["penalty_free_months"]),
                late_closure_block_months=_int(w["late_closure_block_months"]),
                credit_ratings=frozenset(CreditRating(r) for r in w["credit_ratings"]),
                standardization_grades=frozenset(_int(g) for g in w["standardization_grades"]),
                small_firm_employees_below=_int(w["small_firm_employees_below"]),
                min_merchant_score=_int(w["min_merchant_score"]),
                valid_months=_int(w["valid_months"]),
            ),
            caps=CapPolicy(
                hazardous_domains=frozenset(Domain(d) for d in caps["hazardous_domains"]),
                ordinary=_grade_table(caps["ordinary"]),
                hazardous=_grade_table(caps["hazardous"]),
                whitelist=_int(caps["whitelist"]),
                per_authority_per_year=_int(caps["per_authority_per_year"]),
            ),
            gate=GatePolicy(
                joint_window_days=_int(gate["joint_window_days"]),
                counted_kinds=frozenset(str(k) for k in gate["counted_kinds"]),
            ),
            priority_inspection_due_days=_int(p["priority"]["inspection_due_days"]),
            decision_valid_months=_int(p["decision_valid_months"]),
            grade_zero_service=service,
        )
    except KeyError as exc:
        raise RulesetError(f"{path.name}: field {exc.args[0]}: required") from exc
    except (TypeError, ValueError) as exc:
        raise RulesetError(f"{path.name}: {exc}") from exc
    return policy


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def _grade_table(raw: Mapping[Any, Any]) -> dict[int, int]:
    table = {_int(int(k)): _int(v) for k, v in raw.items()}
    if set(table) != {0, 1, 2, 3}:
        raise ValueError(f"an inspection cap table needs grades 0, 1, 2 and 3, got {sorted(table)}")
    return table
