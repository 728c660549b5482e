"""What booking learns from the rules service, and how asking it can fail (pure).

The rules client (adapters/rules_client.py) answers with these records and raises these
errors; the service layer's port (service_layer/ports.py) names the calls. A failure
carries the gRPC status code's name (`status`, e.g. "NOT_FOUND"): callers decide by it,
never by a message's text.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Codes the rules service answers when it cannot help now: retried with backoff. An
# authentication problem is a configuration to fix, not a lost event: retried too.
TRANSIENT = frozenset(
    {
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "INTERNAL",
        "UNKNOWN",
        "CANCELLED",
    }
)
# Of those, the codes that mean the service is not there at all (down, unreachable, gone
# past the deadline): the outbox stops sending anything until it answers again.
UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})


class RulesError(Exception):
    """A call to the rules service failed with the gRPC status `status` ("NOT_FOUND" …);
    `retry_after`: seconds before asking again is worth it, when known (the rules client
    refusing at once while a breaker is open, adapters/rules_client.py)."""

    def __init__(self, status: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {detail}" if detail else status)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    @property
    def unreachable(self) -> bool:
        """The service did not answer at all (rather than refusing this one request)."""
        return self.status in UNREACHABLE


class RulesUnavailable(RulesError):
    """The rules service did not do it now (down, overloaded, timed out): try again later."""


class RulesRejected(RulesError):
    """The rules service answered with a permanent error (a bad event, an unknown firm)."""


# booking's own status for an event it cannot encode (EventUnreadable), never rules'
UNREADABLE = "UNREADABLE"


class EventUnreadable(RulesRejected):
    """Booking cannot put one of its stored events into the form rules reads (a field or
    value its EnterpriseEvent does not know: an event written by another version of
    booking during a rolling upgrade, or by hand). It was never sent; trying again cannot
    help until the version that reads it runs, so the outbox parks it like a refusal for
    good. Its `status` is UNREADABLE, booking's own, never one of rules' codes."""

    def __init__(self, detail: str) -> None:
        super().__init__(UNREADABLE, detail)


def rules_error(status: str, detail: str = "") -> RulesError:
    """The error for a failed call: transient codes are RulesUnavailable, the rest
    RulesRejected."""
    kind = RulesUnavailable if status in TRANSIENT else RulesRejected
    return kind(status, detail)


@dataclass(frozen=True)
class InspectionInfo:
    """What an inspection code (行政检查码) stands for."""

    code: str
    enterprise_name: str
    authority: str
    kind: str  # ROUTINE, COMPLAINT …: the rules service's inspection kinds
    planned_on: str
    grounds: str
    joint_authorities: tuple[str, ...]


@dataclass(frozen=True)
class FirmInfo:
    """A firm as the rules register has it; `contact_mobile`: the register's contact
    mobile (EnterpriseProfile.contact_mobile, read whole with the scope rules.contact),
    "" when it has none or booking may not read it."""

    enterprise_id: str
    name: str
    region: str
    contact_mobile: str = ""


@dataclass(frozen=True)
class FirmSummary:
    """A firm of a region's listing (ListEnterprises)."""

    enterprise_id: str
    name: str
    region: str  # the 镇街's Chinese name
    industry: str  # machinery, light_industry …; "" when rules did not say
    status: str  # whitelist | routine | priority; "" before a first decision


@dataclass(frozen=True)
class Question:
    """A fact's question, as the rules service words it for a firm's owner."""

    key: str
    text: str
    answer_type: str  # yes_no | count | number | text
    unit: str = ""


@dataclass(frozen=True)
class ClauseInfo:
    """One clause that applies to a firm: what the self-check and the poster show."""

    ref: str
    standard_id: str
    standard_title: str
    clause: str
    title: str
    severity: str  # general | major
    text: str
    guidance: str
    services: tuple[str, ...]
    questions: tuple[Question, ...] = ()
    edition: str = ""  # the edition in force it comes from (GB 35181-2017)
    superseded: bool = False  # that edition was replaced (by `successor`) on or before today
    successor: str = ""  # GB 35181-2025《重大火灾隐患判定规则》, when superseded


@dataclass(frozen=True)
class FindingInfo:
    """One finding of a decision (a breached clause or an open hazard)."""

    ref: str
    standard_id: str
    clause: str
    severity: str  # general | major
    text: str
    guidance: str
    services: tuple[str, ...]
    hazard_id: str = ""
    due_on: str = ""  # an open hazard's deadline, YYYY-MM-DD
    edition: str = ""  # the edition judged by (GB 35181-2017)
    superseded: bool = False  # that edition was replaced (by `successor`) on or before today
    successor: str = ""  # GB 35181-2025《重大火灾隐患判定规则》, when superseded


@dataclass(frozen=True)
class BlockerInfo:
    code: str
    reason: str
    arose_on: str = ""  # YYYY-MM-DD
    ends_on: str = ""  # YYYY-MM-DD: the first day it no longer blocks


@dataclass(frozen=True)
class FirmStatus:
    """The rules service's latest decision about a firm, as booking shows it."""

    status: str  # whitelist | routine | priority
    risk_level: str  # blue | yellow | orange | red
    valid_until: str
    whitelist_until: str
    blockers: tuple[BlockerInfo, ...]
    findings: tuple[FindingInfo, ...]
    recommended_services: tuple[str, ...]


@dataclass(frozen=True)
class WhitelistSize:
    """The white list at the end of a month, as the rules service counts it."""

    month: str  # YYYY-MM
    size: int
    granted: int
    closed: int


@dataclass(frozen=True)
class PickableClause:
    """A clause an expert may cite, as the clause picker shows it."""

    clause_ref: str  # <standard_id>:<clause>, e.g. GM2023:11(1)
    title: str  # short title (at most 16 characters)
    text: str  # the clause text in Chinese
    severity: str  # "major" | "general": the severity a finding under it has
    edition: str = ""  # the standard as people name it (GB 35181-2017); "" for a rule without


# what a search ignores in a standard's number as people type it: spaces and dashes
# ("GB35181", "GB 35181-2017", "ＧＢ３５１８１" all find GB 35181-2017)
_IGNORED = frozenset(" -‐‑‒–—―－_")


def _folded(text: str) -> str:
    """`text` as the search compares it: full-width letters and digits as ASCII (NFKC),
    any case, without spaces and dashes."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c not in _IGNORED)


def search_clauses(clauses: list[PickableClause], query: str) -> list[PickableClause]:
    """The clauses whose reference, standard (its number as people write it: GB 35181,
    GB35181-2017), title or text holds every word of `query` (an empty query keeps them
    all). Words and clauses are compared folded (`_folded`), each field on its own."""
    words = [w for w in (_folded(w) for w in unicodedata.normalize("NFKC", query).split()) if w]
    found = []
    for c in clauses:
        fields = [_folded(f) for f in (c.clause_ref, c.edition, c.title, c.text)]
        if all(any(w in f for f in fields) for w in words):
            found.append(c)
    return found
