"""What the use cases need from outside the register: the rules service (a port the rules
client implements) and the rest of their context (keys, menu, clock, limits, regions).

A rules call that cannot be made now (RulesUnavailable, domain/rules_service.py) becomes
the caller's UNAVAILABLE through `ask_rules`; the outbox decides by the error's status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, TypeVar

from services.booking.adapters.menu import MenuItem
from services.booking.domain import qr, rules_service
from services.common.clock import today_shanghai
from services.common.errors import Unavailable
from services.common.ratelimit import RateLimiter
from services.common.regions import RegionRegistry

T = TypeVar("T")


class SmsFailed(Exception):
    """The SMS gateway did not take the message."""


class SmsSender(Protocol):
    """Sends one text message (adapters/sms.py: console, in-memory, a real gateway);
    raises SmsFailed when the gateway refuses or cannot be reached."""

    def send(self, phone: str, text: str) -> None: ...


class RulesPort(Protocol):
    """What booking asks of the rules service (adapters/rules_client.py). Each call may
    raise rules_service.RulesUnavailable (try later) or RulesRejected (a permanent refusal)."""

    def firm(self, enterprise_id: str) -> rules_service.FirmInfo | None: ...
    def enterprises(self, region: str) -> list[rules_service.FirmSummary]: ...
    def clause(self, clause_ref: str) -> tuple[str, str] | None: ...
    def clause_exists(self, clause_ref: str) -> bool: ...
    def clause_severity(self, clause_ref: str) -> str | None: ...
    def standard_name(self, standard_id: str) -> tuple[str, str] | None: ...
    def replaced_edition(self, standard_id: str, on: date) -> tuple[str, str] | None: ...
    def applicable_clauses(self, enterprise_id: str) -> list[rules_service.PickableClause]: ...
    def report(self, payload: Mapping[str, Any]) -> None: ...
    def verify_code(self, code: str) -> rules_service.InspectionInfo | None: ...
    def status(self, enterprise_id: str) -> rules_service.FirmStatus | None: ...
    def applicable(
        self, enterprise_id: str, major_only: bool = False
    ) -> list[rules_service.ClauseInfo]: ...
    def self_check(
        self, enterprise_id: str, answers: Mapping[str, Any]
    ) -> list[rules_service.FindingInfo]: ...
    def whitelist_sizes(
        self, region: str, from_month: str, to_month: str
    ) -> list[rules_service.WhitelistSize]: ...


def ask_rules(call: Callable[[], T]) -> T:
    """`call()`, with a rules service that cannot answer now as UNAVAILABLE (retry), with
    the client's retry hint when it has one (a breaker open: refused without asking)."""
    try:
        return call()
    except rules_service.RulesUnavailable as exc:
        raise Unavailable(
            f"the rules service is unavailable, try again: {exc}", retry_after=exc.retry_after
        ) from exc


@dataclass(frozen=True)
class BookingContext:
    """Everything a use case needs besides its unit of work, shared by every request."""

    keyring: qr.Keyring
    menu: Mapping[str, MenuItem]
    rules: RulesPort
    public_url: str
    hotline: str = "12345"
    today: Callable[[], date] = today_shanghai
    # orders per QR token (one phone cannot book a thousand visits); None: unlimited
    order_limiter: RateLimiter | None = None
    # refused CreateOrder calls per QR token (a bad form, key or token, the order limit
    # spent, a key reused): past it a call that fails the checks needing no database is
    # refused unread, a valid one still taken (orders.py `refusals_limited`); None:
    # unlimited
    refused_order_limiter: RateLimiter | None = None
    # rulesets/regions.yaml: the 镇街 an expert may serve and a filter may name; None: any
    regions: RegionRegistry | None = None
    # the firm's sign-in codes go out here (adapters/sms.py); None: cannot send any
    sms: SmsSender | None = None
