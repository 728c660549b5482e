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


API = (ROOT / "docs/api.md").read_text(encoding="utf-8")


def _api_row(name: str) -> str:
    """The row of docs/api.md's booking table (generated from booking.proto) for `name`."""
    start = API.index("## `booking.v1.BookingService`")
    found = re.search(rf"^\| `{name}` \|.*$", API[start:], re.M)
    assert found, name
    return found.group(0)


def test_the_booking_reference_tells_the_merged_behaviour() -> None:
    """Review 54 D7: CancelOrder was documented as working with the QR token alone; the
    move back to SUBMITTED, the system's cancellation, DispatchOrder's refusal of passed
    half-days and the sign-in mobile a visit gives were not described."""
    cancel = _api_row("CancelOrder")
    assert "or the firm's session |" in cancel and "(QR token)" not in cancel
    assert "QR token alone is PERMISSION_DENIED" in cancel and '"dispatcher"' in cancel
    for name in ("ListOrders", "SubmitRectification"):
        assert "or the firm's session |" in _api_row(name), name
    assert "DISPATCHED → SUBMITTED" in API[API.index("#### `OrderStatus`") :]
    dispatch = _api_row("DispatchOrder")
    assert "FAILED_PRECONDITION" in dispatch and "order_id" in dispatch
    assert "DISPATCHED →" in _api_row("UpsertExpert")
    assert "contact_confirmed" in _api_row("RecordVisit")
    visit = API[API.index("#### `RecordVisitRequest`") :]
    assert "`contact_confirmed` (6)" in visit and "stranger" in visit
    assert "cancelled" in re.search(r"^\| `dispatch_note`.*$", API, re.M).group(0)  # type: ignore[union-attr]
