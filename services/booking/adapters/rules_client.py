"""The booking service's client of the rules service (gRPC): firms, clauses, events, codes."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

import grpc

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc

TRANSIENT = {  # retried with backoff; an auth problem is a configuration to fix, not a loss
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


# A replica that refuses (down, draining) or does not answer in time (hung, partitioned):
# the call moves to the next replica. Safe: every call booking makes may be repeated.
FAILOVER = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class RulesUnavailable(Exception):
    """The rules service did not answer (down, overloaded, timed out): try again later."""


class RulesRejected(Exception):
    """The rules service answered with a permanent error (bad event, unknown firm)."""


@dataclass(frozen=True)
class FirmInfo:
    enterprise_id: str
    name: str
    region: str


@dataclass(frozen=True)
class InspectionInfo:
    code: str
    enterprise_name: str
    authority: str
    kind: str
    planned_on: str
    grounds: str
    joint_authorities: tuple[str, ...]


class RulesClient:
    """Thin, thread-safe wrapper; caches standards' clause lists (they change by restart only).

    `address` may name several rules replicas (`host:p1,host:p2`): calls go round-robin,
    and a call a replica answers UNAVAILABLE (down, draining) or lets run past its deadline
    (hung, partitioned) moves on to the next one.
    Every call booking makes is safe to repeat (reads, and ReportEvent, which rules
    applies once per event id), so a killed replica costs no call a user made.
    """

    def __init__(
        self,
        address: str,
        *,
        token: str = "",
        timeout: float = 5.0,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """`credentials`: TLS to the rules service (grpc.ssl_channel_credentials, with a
        client certificate for mutual TLS); without them the channel is plain text."""
        self.address = address
        options = [
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 10_000),
        ]
        targets = [a.strip() for a in address.split(",") if a.strip()]
        if channel is not None:
            channels = [channel]
        elif credentials:
            channels = [grpc.secure_channel(t, credentials, options=options) for t in targets]
        else:
            channels = [grpc.insecure_channel(t, options=options) for t in targets]
        self._channels = channels
        self._stubs = [rules_pb2_grpc.RulesServiceStub(c) for c in channels]
        self._turn = itertools.count()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self._clauses: dict[str, dict[str, tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def _call(self, method: str, request: Any) -> Any:
        """Call `method` on the next replica; on UNAVAILABLE try the others in turn."""
        first = next(self._turn)
        count = len(self._stubs)
        for attempt in range(count):
            stub = self._stubs[(first + attempt) % count]
            try:
                return getattr(stub, method)(
                    request, timeout=self._timeout, metadata=self._metadata
                )
            except grpc.RpcError as exc:
                code = exc.code()
                if code in FAILOVER and attempt + 1 < count:
                    continue  # that replica is down, draining or hung: the next one
                if code in TRANSIENT:
                    raise RulesUnavailable(f"{code.name}: {exc.details()}") from exc
                raise RulesRejected(f"{code.name}: {exc.details()}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def firm(self, enterprise_id: str) -> FirmInfo | None:
        """The firm as the rules register has it, or None when it is not registered."""
        try:
            status = self._call(
                "GetEnterpriseStatus",
                pb.GetEnterpriseStatusRequest(enterprise_id=enterprise_id, history_limit=1),
            )
        except RulesRejected as exc:
            if str(exc).startswith("NOT_FOUND"):
                return None
            raise
        return FirmInfo(enterprise_id, status.profile.name, status.profile.region)

    def warm_clauses(self) -> int:
        """Fetch every standard's clauses (text and guidance), so findings validate and
        tickets show guidance while the rules service is down."""
        listed = self._call("ListStandards", pb.ListStandardsRequest())
        catalogue: dict[str, dict[str, tuple[str, str]]] = {}
        for standard in listed.standards:
            full = self._call("GetStandard", pb.GetStandardRequest(standard_id=standard.id))
            catalogue[standard.id] = {c.clause: (c.text, c.guidance) for c in full.clauses}
        with self._lock:
            self._clauses = catalogue
        return sum(len(v) for v in catalogue.values())

    def clause(self, clause_ref: str) -> tuple[str, str] | None:
        """(text, guidance) of a clause the rules service knows, or None. Served from the
        cached catalogue, refreshed on a miss (a new standard) when rules is reachable."""
        standard_id, _, clause = clause_ref.partition(":")
        with self._lock:
            found = self._clauses.get(standard_id, {}).get(clause)
            warm = bool(self._clauses)
        if found is not None:
            return found
        try:
            self.warm_clauses()
        except RulesUnavailable:
            if not warm:
                raise  # never fetched: cannot tell
            return None
        with self._lock:
            return self._clauses.get(standard_id, {}).get(clause)

    def clause_exists(self, clause_ref: str) -> bool:
        return self.clause(clause_ref) is not None

    def report(self, event: dict[str, Any]) -> None:
        """Deliver one event (the outbox's JSON); idempotent at the rules side by event_id."""
        from google.protobuf import json_format

        message = json_format.ParseDict(event, pb.EnterpriseEvent())
        self._call("ReportEvent", pb.ReportEventRequest(event=message))

    def verify_code(self, code: str) -> InspectionInfo | None:
        try:
            found = self._call("VerifyInspectionCode", pb.VerifyInspectionCodeRequest(code=code))
        except RulesRejected as exc:
            if str(exc).startswith(("NOT_FOUND", "INVALID_ARGUMENT")):
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
