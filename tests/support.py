"""Helpers shared by the tests: valid credit codes, profile builders, case-file loading."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from services.common.vocabulary import uscc_check_char

ROOT = Path(__file__).resolve().parent.parent
RULESETS = ROOT / "rulesets"
CASES = Path(__file__).resolve().parent / "cases"


def uscc(n: int, head: str = "91330782MA2") -> str:
    """A unified social credit code with a correct GB 32100-2015 check character."""
    body = head + f"{n:0{17 - len(head)}d}"
    return body + uscc_check_char(body)


def profile(n: int = 1, **fields: Any) -> dict[str, Any]:
    """A clean, white-list-eligible profile (JSON shape) with the given fields replaced."""
    base: dict[str, Any] = {
        "enterprise_id": uscc(n),
        "name": f"测试企业{n}",
        "industry": "machinery",
        "region": "稠城街道",
        "employees": 30,
        "specialized_sme": True,
        "standardization_grade": 2,
        "credit_rating": "A",
        "blacklisted": False,
        "merchant_score": 12,
        "high_risk_domains": [],
        "accidents": [],
        "penalties": [],
        "hazards": [],
        "facts": {},
    }
    base.update(copy.deepcopy(fields))
    return base


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def case_files(folder: str) -> list[Path]:
    return sorted((CASES / folder).glob("*.yaml"))


def complaint_event(n: int, event_id: str) -> Any:
    """A ReportEventRequest of a complaint about firm `n` (uscc(n)): the smallest event
    that re-evaluates a firm and writes to the register, for the fault tests."""
    from services.common._generated.rules.v1 import rules_pb2 as pb

    return pb.ReportEventRequest(
        event=pb.EnterpriseEvent(
            event_id=event_id,
            enterprise_id=uscc(n),
            kind=pb.EVENT_KIND_COMPLAINT,
            occurred_on="2026-06-01",
            complaint=pb.ComplaintDetail(text="投诉"),
        )
    )
