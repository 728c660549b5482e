"""The documents an integrator reads agree with the code (issue 14.8): which methods need
no bearer token, what a zero inspection cap and a joint_id mean, the unit of retry-after."""

from __future__ import annotations

import re

from services.booking.entrypoints.access import BOOKING_METHODS
from services.rules.entrypoints.access import RULES_METHODS
from tests.support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
RULES_PROTO = (ROOT / "proto/rules/v1/rules.proto").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _field_comment(message: str, field: str) -> str:
    """The comment lines right above `field` in `message`, plus its trailing comment."""
    body = RULES_PROTO[RULES_PROTO.index(f"message {message} {{") :]
    body = body[: body.index("\n}")]
    lines = body.splitlines()
    at = next(i for i, line in enumerate(lines) if re.search(rf"\b{field} = \d+;", line))
    above = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("//"):
            break
        above.append(line)
    return "\n".join([*reversed(above), lines[at]])


def test_the_readme_names_every_method_open_without_a_bearer_token() -> None:
    security = _section("Security")
    for methods in (RULES_METHODS, BOOKING_METHODS):
        for path, rule in methods.items():
            if rule.qr_ok or rule.public:
                name = path.rsplit("/", 1)[1]
                assert f"`{name}`" in security, f"{name} needs no bearer token: say so"


def test_retry_after_is_documented_in_seconds_with_retry_info() -> None:
    security = _section("Security")
    assert "seconds" in security and "google.rpc.RetryInfo" in security


def test_a_zero_cap_and_joint_id_are_documented() -> None:
    cap = _field_comment("Decision", "inspection_cap_per_year")
    assert "0" in cap and "WHITELIST" in cap
    joint_id = _field_comment("InspectionVerdict", "joint_id")
    assert "joint" in joint_id and "false" in joint_id
