"""Load rulesets/ (data files) → schema check → domain objects.

Every problem is a `RulesetError` whose message names the file, the clause and the
field, e.g. `gm2023.yaml: clause 11(3): when.fact: unknown fact key 'dust.foo'`:
an unknown fact key, a duplicate clause id or a bad operator is a load error, never
a silent miss at evaluation time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from services.rules.domain.policy import (
    CapPolicy,
    ColourPolicy,
    GatePolicy,
    Policy,
    WhitelistPolicy,
)
from services.rules.domain.profile import CreditRating, Domain, Industry, Severity
from services.rules.domain.standards import (
    OPERATORS,
    ORDERING_OPERATORS,
    AllOf,
    AnyOf,
    Catalogue,
    Clause,
    Comparison,
    Condition,
    Scope,
    Standard,
)

SPECIAL_FILES = ("facts.yaml", "policy.yaml", "menu.yaml")
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
                "published_on": {},  # YAML reads an unquoted date as a date
                "in_force_on": {},
                "source": {"type": "string", "minLength": 1},
                "note": {"type": "string"},
                "applies_to": {"$ref": "#/$defs/scopes"},
            },
        },
        "clauses": {
            "type": "array",
            "minItems": 1,
            "maxItems": 60,  # durable_rules fails past 64 conditions matched by one fact
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "severity", "text", "when", "guidance", "services", "verified"],
                "properties": {
                    "id": {"type": "string", "pattern": r"^[^\s:]{1,32}$"},
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
    fact_types: Mapping[str, str]
    menu_codes: frozenset[str]
    directory: Path


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
    menu_codes = _load_menu(root / "menu.yaml", hashes)
    policy = _load_policy(root / "policy.yaml", hashes, menu_codes)
    files = sorted(p for p in root.glob("*.yaml") if p.name not in SPECIAL_FILES)
    if not files:
        raise RulesetError(f"{root}: no standard files")
    standards = [_load_standard(p, fact_types, menu_codes, hashes) for p in files]
    ids = [s.id for s in standards]
    if len(set(ids)) != len(ids):
        raise RulesetError(f"{root}: a standard id appears in two files: {ids}")
    combined = hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(hashes.items())).encode())
    catalogue = Catalogue(standards=tuple(standards), version="rs-" + combined.hexdigest()[:16])
    return Rulebook(catalogue, policy, fact_types, menu_codes, root)


def _read(path: Path, hashes: dict[str, str]) -> Any:
    raw = path.read_bytes()
    hashes[path.name] = hashlib.sha256(raw).hexdigest()
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise RulesetError(f"{path.name}: not valid YAML: {exc}") from exc


def _load_facts(path: Path, hashes: dict[str, str]) -> dict[str, str]:
    data = _read(path, hashes)
    facts = data.get("facts") if isinstance(data, dict) else None
    if not isinstance(facts, dict) or not facts:
        raise RulesetError(f"{path.name}: field facts: must be a map of fact key to definition")
    out = {}
    for key, spec in facts.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in FACT_TYPES:
            raise RulesetError(f"{path.name}: fact {key}: field type: must be one of {FACT_TYPES}")
        out[str(key)] = str(kind)
    return out


def _load_menu(path: Path, hashes: dict[str, str]) -> frozenset[str]:
    data = _read(path, hashes)
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise RulesetError(f"{path.name}: field items: must be a non-empty list")
    codes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            raise RulesetError(f"{path.name}: item {i}: field code: required")
        domain = item.get("domain")
        if domain is not None and domain not in {d.value for d in Domain}:
            raise RulesetError(
                f"{path.name}: item {item['code']}: field domain: unknown {domain!r}"
            )
        codes.append(item["code"])
    if len(set(codes)) != len(codes):
        raise RulesetError(f"{path.name}: field items: duplicate item code")
    return frozenset(codes)


def _load_standard(
    path: Path, fact_types: Mapping[str, str], menu: frozenset[str], hashes: dict[str, str]
) -> Standard:
    data = _read(path, hashes)
    _schema_check(path.name, data)
    head = data["standard"]
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
                note=raw.get("note", ""),
            )
        )
    return Standard(
        id=head["id"],
        title=head["title"],
        issuer=head["issuer"],
        source=head["source"],
        in_force_on=str(head.get("in_force_on", "")),
        version=f"{head['id']}-{hashes[path.name][:12]}",
        clauses=tuple(clauses),
        scopes=default_scopes,
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
        max_employees=raw.get("max_employees"),
    )


def _condition(
    raw: Mapping[str, Any], fact_types: Mapping[str, str], where: str, field: str
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
        raise RulesetError(f"{where}: field {field}.fact: unknown fact key {key!r}")
    if kind == "bool" and (op not in ("eq", "ne") or not isinstance(value, bool)):
        raise RulesetError(f"{where}: field {field}.op: bool fact {key!r} takes eq/ne true/false")
    if kind in ("int", "number") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise RulesetError(f"{where}: field {field}.value: {kind} fact {key!r} needs a number")
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
