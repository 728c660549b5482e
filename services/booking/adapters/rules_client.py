"""The booking service's client of the rules service (gRPC): firms, clauses, events, codes.

The only module of booking that knows how rules.v1 spells things: booking's events
(domain/events.py) become EnterpriseEvents here, and a failed call becomes a RulesError
carrying its gRPC status code (domain/rules_service.py), which callers decide by.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import grpc
from google.protobuf import json_format

from services.booking.adapters.circuit_breaker import CircuitBreaker
from services.booking.domain.events import (
    BookingEvent,
    HazardDueChanged,
    HazardFound,
    HazardVerified,
)
from services.booking.domain.rules_service import (
    BlockerInfo,
    ClauseInfo,
    EventUnreadable,
    FindingInfo,
    FirmInfo,
    FirmStatus,
    FirmSummary,
    InspectionInfo,
    PickableClause,
    Question,
    RulesError,
    RulesRejected,
    RulesUnavailable,
    WhitelistSize,
    rules_error,
)
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.context import time_left
from services.common.errors import DeadlineExceeded
from services.common.paging import MAX_PAGE
from services.common.proto_values import fact_value
from services.common.values import trim
from services.common.vocabulary import MOBILE, Severity

# How the rules service spells a finding's kind (rules.v1 EventKind) and severity.
_FOUND = {
    Severity.MAJOR: pb.EVENT_KIND_MAJOR_HAZARD_FOUND,
    Severity.GENERAL: pb.EVENT_KIND_GENERAL_HAZARD_FOUND,
}
_SEVERITIES = {Severity.MAJOR: pb.SEVERITY_MAJOR, Severity.GENERAL: pb.SEVERITY_GENERAL}
_SEVERITY_NAMES = {number: severity.value for severity, number in _SEVERITIES.items()}


# A replica that refuses (down, draining) or does not answer in time (hung, partitioned):
# the call moves to the next replica. Safe: every call booking makes may be repeated.
FAILOVER = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def event_message(event: BookingEvent) -> pb.EnterpriseEvent:
    """A booking event as the rules service's EnterpriseEvent."""
    message = pb.EnterpriseEvent(
        event_id=event.event_id,
        enterprise_id=event.enterprise_id,
        occurred_on=event.occurred_on.isoformat(),
    )
    if isinstance(event, HazardFound):
        message.kind = _FOUND[event.severity]
        message.hazard.CopyFrom(
            pb.HazardDetail(
                hazard_id=event.hazard_id,
                clause_ref=event.clause_ref,
                severity=_SEVERITIES[event.severity],
                due_on=event.due_on.isoformat(),
            )
        )
    elif isinstance(event, HazardVerified):
        message.kind = pb.EVENT_KIND_HAZARD_VERIFIED
        message.verification.CopyFrom(
            pb.VerificationDetail(hazard_id=event.hazard_id, late=event.late)
        )
    elif isinstance(event, HazardDueChanged):
        message.kind = pb.EVENT_KIND_HAZARD_DUE_CHANGED
        message.due_change.CopyFrom(
            pb.DueChangeDetail(hazard_id=event.hazard_id, due_on=event.due_on.isoformat())
        )
    else:
        message.kind = pb.EVENT_KIND_RECTIFICATION_OVERDUE
        message.overdue.CopyFrom(pb.OverdueDetail(hazard_id=event.hazard_id))
    return message


def event_json(event: BookingEvent) -> dict[str, Any]:
    """The event as the outbox stores it: the proto3 JSON mapping of its EnterpriseEvent
    (field names as in the proto), which `RulesClient.report` sends as it is."""
    return json_format.MessageToDict(
        event_message(event),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


# How long a replica that failed to answer is left alone before one call probes it again
# (circuit_breaker.py), and how many calls may wait on rules at once: past that, a call
# waits up to SLOT_WAIT_SECONDS for one of them to end, then is refused as unavailable.
BREAKER_OPEN_SECONDS = 5.0
_CALLER_GAVE_UP = "the caller's deadline passed before the rules service answered"
MAX_CALLS = 4
SLOT_WAIT_SECONDS = 1.0


@dataclass
class _Replica:
    """One rules replica: its stub, its breaker and the calls waiting on it now."""

    target: str
    stub: rules_pb2_grpc.RulesServiceStub
    breaker: CircuitBreaker
    in_flight: int = 0


def _from_the_server(exc: grpc.RpcError) -> bool:
    """Whether a failure was answered by a rules process itself: its errors carry a
    google.rpc.Status or a retry hint in the trailers; a connection refused, reset or cut
    by the deadline carries neither."""
    trailers = getattr(exc, "trailing_metadata", lambda: None)() or ()
    return any(key in ("grpc-status-details-bin", "retry-after") for key, _ in trailers)


class RulesClient:
    """Thin, thread-safe wrapper; caches standards' clause lists (they change by restart only).

    `address` may name several rules replicas (`host:p1,host:p2`): calls go round-robin,
    and a call a replica answers UNAVAILABLE (down, draining) or lets run past its deadline
    (hung, partitioned) moves on to the next one.
    Every call booking makes is safe to repeat (reads, and ReportEvent, which rules
    applies once per event id), so a killed replica costs no call a user made.

    A call made for a caller with a deadline (`context.time_left`: booking's gRPC server
    sets it per call; the pages, the command line and the outbox worker have none) waits
    on rules no longer than that caller does: the smaller of `timeout` and the time it
    has left. Once the caller's time is up, booking stops: DeadlineExceeded (nothing of
    that call is committed), no other replica is asked, and no breaker counts it (the
    replica was not too slow for `timeout`).

    A stalled rules service must never hold booking's threads (README, "Reliability and
    operations"), so two guards sit in front of every call:

    - **A circuit breaker per replica** (circuit_breaker.py). A call the replica answers
      UNAVAILABLE (not its own refusal: a status or retry hint in the trailers) or lets
      run past `timeout` opens it: for `breaker_seconds` that replica
      is skipped, and a call with no replica left fails at once with RulesUnavailable
      (status UNAVAILABLE, `retry_after` the seconds until the next probe) instead of
      waiting `timeout` per replica. Then one call probes the replica; an answer (any,
      a refusal included) closes the breaker, another failure opens it again.
    - **A bound on waiting calls**: `max_calls` at once, shared out among the replicas
      (at least one each; a replica whose peers' breakers are all open may take what
      their running calls leave of all `max_calls`). A call takes a slot of the replica
      it asks; when no replica it
      may ask has one free, it waits up to `slot_wait` seconds (a healthy rules frees
      slots in milliseconds; a breaker that opens meanwhile ends the wait), then fails
      with RulesUnavailable. So even before a breaker
      opens, at most `max_calls` threads wait on a stalled rules service: keep it below
      the smallest thread pool that asks rules (`--db-workers`, 8 by default; the web
      pages' pool has 40), and calls that need no rules keep their threads.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str = "",
        timeout: float = 5.0,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        breaker_seconds: float = BREAKER_OPEN_SECONDS,
        max_calls: int = MAX_CALLS,
        slot_wait: float = SLOT_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`credentials`: TLS to the rules service (grpc.ssl_channel_credentials, with a
        client certificate for mutual TLS); without them the channel is plain text.
        `breaker_seconds`, `max_calls`, `slot_wait`: the guards above (`clock`, monotonic
        seconds, is the breakers')."""
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.address = address
        options = [
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 10_000),
        ]
        targets = [t for a in address.split(",") if (t := trim(a))]
        if channel is not None:
            channels = [channel]
            targets = [address]
        elif credentials:
            channels = [grpc.secure_channel(t, credentials, options=options) for t in targets]
        else:
            channels = [grpc.insecure_channel(t, options=options) for t in targets]
        self._channels = channels
        self._replicas = [
            _Replica(
                t, rules_pb2_grpc.RulesServiceStub(c), CircuitBreaker(breaker_seconds, clock=clock)
            )
            for t, c in zip(targets, channels, strict=True)
        ]
        self._max_calls = max_calls
        self._per_replica = max(1, max_calls // len(self._replicas))
        self._slot_wait = slot_wait
        self._slots = threading.Condition()
        self._turn = itertools.count()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self._clauses: dict[str, dict[str, tuple[str, str]]] = {}
        self._severities: dict[str, str] = {}  # clause ref → "major" | "general"
        self._standards: dict[str, tuple[str, str]] = {}  # id → (title, edition)
        # id → (edition, superseded_on, successor): an edition rules says a successor replaced
        self._replaced: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def breaker_states(self) -> dict[str, str]:
        """Each replica's breaker: closed, open or half-open (for logs and tests)."""
        return {r.target: r.breaker.state for r in self._replicas}

    def waiting(self) -> int:
        """Calls waiting on the rules service now (holding a slot)."""
        with self._slots:
            return sum(r.in_flight for r in self._replicas)

    def _call(self, method: str, request: Any) -> Any:
        """Call `method` on the next replica; on UNAVAILABLE or a stall try the others in
        turn, skipping those whose breaker is open; RulesUnavailable at once when none
        may be asked (see the class)."""
        first = next(self._turn)
        count = len(self._replicas)
        left = [self._replicas[(first + i) % count] for i in range(count)]
        failure: RulesError | None = None
        while left:
            replica = self._enter(left, wait=failure is None)
            if replica is None:
                break
            left = left[left.index(replica) + 1 :]
            answered: bool | None = True  # None: tells nothing of the replica
            cut_by_caller = False
            try:
                timeout, cut_by_caller = self._time_for_call()
                return getattr(replica.stub, method)(
                    request, timeout=timeout, metadata=self._metadata
                )
            except DeadlineExceeded:
                answered = None
                raise
            except grpc.RpcError as exc:
                code = exc.code()
                if code is grpc.StatusCode.DEADLINE_EXCEEDED and cut_by_caller:
                    answered = None
                    raise DeadlineExceeded(_CALLER_GAVE_UP) from exc
                if code in FAILOVER:  # that replica is down, draining or hung: the next one
                    # a rules process's own refusal (its database busy, it drains) came
                    # back at once from a live server: no breaker (review 50 F4)
                    answered = _from_the_server(exc)
                    failure = rules_error(code.name, exc.details() or "")
                    failure.__cause__ = exc
                    continue
                raise rules_error(code.name, exc.details() or "") from exc
            finally:
                self._leave(replica, answered)
        if failure is not None:
            raise failure
        raise self._refusal(left)

    def _time_for_call(self) -> tuple[float, bool]:
        """The timeout of the next call to a replica: `timeout`, or the time the caller
        has left when that is shorter (True: the caller's deadline bounds it);
        DeadlineExceeded when the caller's time is up."""
        caller = time_left()
        if caller is None or caller >= self._timeout:
            return self._timeout, False
        if caller <= 0:
            raise DeadlineExceeded(_CALLER_GAVE_UP)
        return caller, True

    def _enter(self, replicas: list[_Replica], *, wait: bool) -> _Replica | None:
        """The first of `replicas` whose breaker lets a call through and that has a free
        slot, its slot taken; None when every breaker is open, or (after `slot_wait`
        seconds when `wait`, or the caller's time left if shorter) every slot is taken."""
        patience = self._slot_wait if wait else 0.0
        caller = time_left()
        deadline = time.monotonic() + (patience if caller is None else min(patience, caller))
        with self._slots:
            while True:
                full = False
                for replica in replicas:
                    if replica.breaker.blocked():
                        continue
                    if replica.in_flight >= self._limit(replica):
                        full = True
                    elif replica.breaker.allow():
                        replica.in_flight += 1
                        return replica
                remaining = deadline - time.monotonic()
                if not full or remaining <= 0:
                    return None
                self._slots.wait(remaining)

    def _limit(self, replica: _Replica) -> int:
        """The calls `replica` may hold now (under `_slots`): its share of `max_calls`, or,
        while every other replica's breaker is open, whatever of `max_calls` the others'
        calls still running leave (review 50 F3: with one replica down, the other kept
        its half and answered half as many calls as it alone would have)."""
        others = [o for o in self._replicas if o is not replica]
        if others and all(o.breaker.blocked() for o in others):
            return self._max_calls - sum(o.in_flight for o in others)
        return self._per_replica

    def _leave(self, replica: _Replica, answered: bool | None) -> None:
        """The call on `replica` ended: it answered (True), did not (False), or its caller's
        deadline ended it first (None: the breaker learns nothing); its slot is free."""
        if answered is None:
            replica.breaker.released()
        elif answered:
            replica.breaker.succeeded()
        else:
            replica.breaker.failed()
        with self._slots:
            replica.in_flight -= 1
            # every waiter looks again: one takes the slot, or (its breaker just opened)
            # those waiting on that replica give up at once
            self._slots.notify_all()

    def _refusal(self, replicas: list[_Replica]) -> RulesUnavailable:
        """Why no replica was asked: all stalled lately (breakers open), or all busy."""
        waits = [r.breaker.retry_in() for r in replicas if r.breaker.blocked()]
        if len(waits) == len(replicas):
            retry = max(1.0, min(waits))
            return RulesUnavailable(
                "UNAVAILABLE",
                f"the rules service did not answer lately; not asked again for {retry:.0f} s",
                retry_after=retry,
            )
        return RulesUnavailable(
            "UNAVAILABLE",
            f"{self._per_replica * len(replicas)} calls already wait on the rules service",
            retry_after=1.0,
        )

    def firm(self, enterprise_id: str) -> FirmInfo | None:
        """The firm as the rules register has it, or None when it is not registered. Its
        contact mobile only when whole: without the scope rules.contact rules answers it
        masked (138****5678), which is no number to send a code to."""
        status = self._status(enterprise_id)
        if status is None:
            return None
        p = status.profile
        contact = p.contact_mobile if MOBILE.fullmatch(p.contact_mobile) else ""
        return FirmInfo(enterprise_id, p.name, p.region, contact)

    def enterprises(self, region: str, page_size: int = MAX_PAGE) -> list[FirmSummary]:
        """Every firm of `region` (a 镇街 or a county, by name or code) by enterprise_id,
        through all of ListEnterprises' pages of `page_size` (scope rules.read)."""
        found: list[FirmSummary] = []
        token = ""
        while True:
            page = self._call(
                "ListEnterprises",
                pb.ListEnterprisesRequest(region=region, page_size=page_size, page_token=token),
            )
            found += [_summary(e) for e in page.enterprises]
            token = page.next_page_token
            if not token:
                return found

    def warm_clauses(self) -> int:
        """Fetch every standard's clauses (text and guidance), so findings validate and
        tickets show guidance while the rules service is down."""
        listed = self._call("ListStandards", pb.ListStandardsRequest())
        catalogue: dict[str, dict[str, tuple[str, str]]] = {}
        severities: dict[str, str] = {}
        standards: dict[str, tuple[str, str]] = {}
        replaced: dict[str, tuple[str, str, str]] = {}
        for standard in listed.standards:
            full = self._call("GetStandard", pb.GetStandardRequest(standard_id=standard.id))
            catalogue[standard.id] = {c.clause: (c.text, c.guidance) for c in full.clauses}
            severities |= {f"{standard.id}:{c.clause}": _severity(c.severity) for c in full.clauses}
            standards[standard.id] = (full.title, full.edition)
            if full.superseded_on:  # rules' editions data (rulesets' superseded_on, successor)
                replaced[standard.id] = (full.edition, full.superseded_on, full.successor)
        with self._lock:
            self._clauses, self._severities = catalogue, severities
            self._standards, self._replaced = standards, replaced
        return sum(len(v) for v in catalogue.values())

    def clause(self, clause_ref: str) -> tuple[str, str] | None:
        """(text, guidance) of a clause the rules service knows, or None when its catalogue
        answered that it does not know it. Served from the cached catalogue, refreshed on a
        miss (a new standard, a removed clause). RulesUnavailable when the refresh cannot be
        had: a ref the cache lacks may be a clause added since, or one removed; while rules
        is down nobody can tell (a page said a valid new clause was "no longer in the
        rulesets", a visit citing it was refused as unknown: now UNAVAILABLE, retried)."""
        standard_id, _, clause = clause_ref.partition(":")
        with self._lock:
            found = self._clauses.get(standard_id, {}).get(clause)
        if found is not None:
            return found
        self.warm_clauses()
        with self._lock:
            return self._clauses.get(standard_id, {}).get(clause)

    def clause_exists(self, clause_ref: str) -> bool:
        return self.clause(clause_ref) is not None

    def standard_name(self, standard_id: str) -> tuple[str, str] | None:
        """(title, edition) of a standard as the cached catalogue has it (`clause` fills
        it), or None: never a call, so a page may ask it for every clause it shows."""
        with self._lock:
            return self._standards.get(standard_id)

    def replaced_edition(self, standard_id: str, on: date) -> tuple[str, str] | None:
        """(edition, successor) when the edition of the standard the cached catalogue
        holds was replaced on or before `on` (rules' superseded_on), else None; as
        `standard_name`, never a call."""
        with self._lock:
            found = self._replaced.get(standard_id)
        if found is None or not found[0] or found[1] > on.isoformat():
            return None
        return found[0], found[2]

    def clause_severity(self, clause_ref: str) -> str | None:
        """The severity ("major" | "general") the standard gives a clause the rules service
        knows, or None; from the catalogue `clause` keeps (and refreshes on a miss)."""
        if self.clause(clause_ref) is None:
            return None
        with self._lock:
            return self._severities.get(clause_ref, Severity.GENERAL.value)

    def applicable_clauses(self, enterprise_id: str) -> list[PickableClause]:
        """The clauses that apply to a firm of the register (ListApplicableClauses on its
        stored profile); for a firm the register does not know, every clause of every
        standard in force (GetStandard), so the expert can still cite one."""
        try:
            found = self._call(
                "ListApplicableClauses",
                pb.ListApplicableClausesRequest(enterprise_id=enterprise_id),
            )
            clauses = list(found.clauses)
        except RulesRejected as exc:
            if exc.status not in ("NOT_FOUND", "FAILED_PRECONDITION"):
                raise
            listed = self._call("ListStandards", pb.ListStandardsRequest())
            clauses = []
            for standard in listed.standards:
                full = self._call("GetStandard", pb.GetStandardRequest(standard_id=standard.id))
                clauses.extend(full.clauses)
        unique = {
            c.clause_ref or f"{c.standard_id}:{c.clause}": c for c in clauses
        }  # one entry a clause, the last edition listed
        return [
            PickableClause(ref, c.title, c.text, _severity(c.severity), c.edition)
            for ref, c in unique.items()
        ]

    def report(self, payload: Mapping[str, Any]) -> None:
        """Deliver one event as the outbox stored it (`event_json`, or an event written in
        the same proto3 JSON form by hand); idempotent at the rules side by event_id.
        EventUnreadable, before anything is sent, when it is not in that form (a field or
        value this version does not know, a payload that is no JSON object)."""
        try:
            message = json_format.ParseDict(dict(payload), pb.EnterpriseEvent())
        except (json_format.Error, TypeError, ValueError) as exc:
            said = " ".join(str(exc).split())[:300]  # on one line (protobuf's has two)
            raise EventUnreadable(
                f"booking cannot encode this event for the rules service (written by "
                f"another version of booking, or by hand?): {type(exc).__name__}: {said}"
            ) from exc
        self._call("ReportEvent", pb.ReportEventRequest(event=message))

    def verify_code(self, code: str) -> InspectionInfo | None:
        try:
            found = self._call("VerifyInspectionCode", pb.VerifyInspectionCodeRequest(code=code))
        except RulesRejected as exc:
            if exc.status in ("NOT_FOUND", "INVALID_ARGUMENT"):  # no such code
                return None
            raise
        return InspectionInfo(
            found.inspection_code,
            found.enterprise_name,
            found.authority,
            pb.InspectionKind.Name(found.kind).removeprefix("INSPECTION_KIND_"),
            found.planned_on,
            found.grounds,
            tuple(found.joint_authorities),
        )

    def whitelist_sizes(self, region: str, from_month: str, to_month: str) -> list[WhitelistSize]:
        """The white list's size month by month (ListWhitelistSizes, scope rules.read)."""
        found = self._call(
            "ListWhitelistSizes",
            pb.ListWhitelistSizesRequest(region=region, from_month=from_month, to_month=to_month),
        )
        return [WhitelistSize(s.month, s.size, s.granted, s.closed) for s in found.sizes]

    # -- the firm's own page: status, applicable clauses, the self-check

    def _status(self, enterprise_id: str) -> Any | None:
        """GetEnterpriseStatus of the firm (its latest decision only); None: not registered."""
        try:
            return self._call(
                "GetEnterpriseStatus",
                pb.GetEnterpriseStatusRequest(enterprise_id=enterprise_id, history_limit=1),
            )
        except RulesRejected as exc:
            if exc.status == "NOT_FOUND":
                return None
            raise

    def status(self, enterprise_id: str) -> FirmStatus | None:
        """The firm's latest decision, its blockers with their dates and its findings with
        the open hazards' deadlines; None when rules does not know the firm."""
        found = self._status(enterprise_id)
        if found is None:
            return None
        d = found.decision
        due = {h.hazard_id: h.due_on for h in found.profile.hazards}
        entry = found.whitelist_entry
        return FirmStatus(
            status=_name(pb.Status, d.status, "STATUS_"),
            risk_level=_name(pb.RiskLevel, d.risk_level, "RISK_LEVEL_"),
            valid_until=d.valid_until,
            whitelist_until=entry.valid_until
            if entry.enterprise_id and not entry.revoked_on
            else "",
            blockers=tuple(
                BlockerInfo(b.code, b.reason, b.arose_on, b.ends_on) for b in d.whitelist_blockers
            ),
            findings=tuple(_finding(f, due.get(f.hazard_id, "")) for f in d.findings),
            recommended_services=tuple(d.recommended_services),
        )

    def applicable(self, enterprise_id: str, major_only: bool = False) -> list[ClauseInfo]:
        """The clauses that apply to the firm today, with their questions (catalogue order)."""
        answer = self._call(
            "ListApplicableClauses",
            pb.ListApplicableClausesRequest(
                enterprise_id=enterprise_id,
                severity=pb.SEVERITY_MAJOR if major_only else pb.SEVERITY_UNSPECIFIED,
            ),
        )
        standards = {s.id: s for s in answer.standards}
        return [_clause(c, standards.get(c.standard_id)) for c in answer.clauses]

    def self_check(self, enterprise_id: str, answers: Mapping[str, Any]) -> list[FindingInfo]:
        """Evaluate (stateless: nothing is stored) the firm's stored profile with the
        answered facts laid over it; the findings, MAJOR first."""
        found = self._status(enterprise_id)
        if found is None:
            return []
        profile = pb.EnterpriseProfile()
        profile.CopyFrom(found.profile)
        profile.ClearField("contact_mobile")  # no decision reads it; masked, it is refused
        for key, value in answers.items():
            profile.facts[key].CopyFrom(fact_value(value))
        decision = self._call("Evaluate", pb.EvaluateRequest(profile=profile))
        due = {h.hazard_id: h.due_on for h in found.profile.hazards}
        return [_finding(f, due.get(f.hazard_id, "")) for f in decision.findings]


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _summary(e: Any) -> FirmSummary:
    industry = _name(pb.Industry, e.industry, "INDUSTRY_") if e.industry else ""
    status = _name(pb.Status, e.status, "STATUS_") if e.status else ""
    return FirmSummary(e.enterprise_id, e.name, e.region, industry, status)


def _severity(value: Any) -> str:
    """rules.v1 Severity as booking spells it ("general" when unspecified)."""
    return _SEVERITY_NAMES.get(value, Severity.GENERAL.value)


def _clause_fields(m: Any) -> dict[str, Any]:
    """What a rules.v1 Clause and Finding both say of the clause (a finding cites one)."""
    return {
        "standard_id": m.standard_id,
        "clause": m.clause,
        "severity": _severity(m.severity),
        "text": m.text,
        "guidance": m.guidance,
        "services": tuple(m.services),
    }


def _finding(f: Any, due_on: str) -> FindingInfo:
    """A rules.v1 Finding as booking shows it. Decisions rules stored before stop 35 end an
    open hazard's guidance with its deadline ("（整改期限 2026-06-19）"; rules no longer
    writes it, the deadline being the hazard's own field), which the pages show beside it
    as 整改期限：2026年6月19日: such a guidance is kept without it, once (review 62), and
    the deadline is taken from it when the profile's hazard gave none. Kept for the
    stored decisions of existing registers until each firm's next decision."""
    fields = _clause_fields(f)
    said = _GUIDANCE_DEADLINE.search(fields["guidance"]) if f.hazard_id else None
    if said is not None and (not due_on or said[1] == due_on):
        fields["guidance"] = fields["guidance"][: said.start()]
        due_on = said[1]
    return FindingInfo(
        ref=f.clause_ref or f"{f.standard_id}:{f.clause}",
        **fields,
        hazard_id=f.hazard_id,
        due_on=due_on,
        edition=f.edition,
        superseded=f.superseded,
        successor=f.successor,
    )


# the deadline rules appended to an open hazard's guidance before stop 35 (`_finding`)
_GUIDANCE_DEADLINE = re.compile(r"（整改期限 ([0-9]{4}-[0-9]{2}-[0-9]{2})）$")


_ANSWER_TYPES = {
    pb.ANSWER_TYPE_YES_NO: "yes_no",
    pb.ANSWER_TYPE_COUNT: "count",
    pb.ANSWER_TYPE_NUMBER: "number",
    pb.ANSWER_TYPE_TEXT: "text",
}


def _clause(c: Any, standard: Any) -> ClauseInfo:
    """A rules.v1 Clause with the edition in force it comes from (`standard`, from the
    same answer; None when rules listed none)."""
    return ClauseInfo(
        ref=c.clause_ref,
        **_clause_fields(c),
        standard_title=standard.title if standard is not None else c.standard_id,
        edition=c.edition or (standard.edition if standard is not None else ""),
        superseded=standard is not None and standard.superseded,
        successor=standard.successor if standard is not None else "",
        title=c.title,
        questions=tuple(
            Question(q.key, q.question, _ANSWER_TYPES.get(q.answer_type, "text"), q.unit)
            for q in c.questions
        ),
    )
