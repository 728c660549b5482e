"""The RulesService servicer: proto ↔ domain translation and nothing more."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import grpc
from sqlalchemy import Engine

from services.common import server as common_server
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.auth import AuthInterceptor
from services.common.clock import today_shanghai
from services.common.context import (
    ANONYMOUS,
    Principal,
    current_caller,
    current_principal,
    deadline_in,
    ending_with,
    require_scope,
)
from services.common.errors import Unavailable
from services.common.grpc_errors import abort_for, item_status, unary
from services.common.malformed import text_violations
from services.common.read_ahead import ReadAhead
from services.common.regions import region_filter
from services.common.security import Security
from services.common.stream_slots import CallSlot, StreamSlots
from services.common.values import preview
from services.rules.adapters.engine import engine_for
from services.rules.adapters.feed import FeedStore
from services.rules.adapters.orm import start_mappers
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.domain.errors import (
    FieldViolation,
    NotFound,
    PreconditionFailed,
    ValidationError,
)
from services.rules.domain.profile import EnumSpelling, short_names
from services.rules.entrypoints import convert
from services.rules.entrypoints.access import RULES_METHODS
from services.rules.service_layer import (
    feed,
    handlers,
    inspection_handlers,
    register_handlers,
    whitelist_history,
)
from services.rules.service_layer.event_groups import EventGroups, GroupLimits, UpsertGroups
from services.rules.service_layer.unit_of_work import UnitOfWork

T = TypeVar("T")
# a register listing of one region's page: (uow, ctx, region, page size, page token)
RegionListing = Callable[[UnitOfWork, handlers.RulesContext, str, int, str], tuple[list[T], str]]
RegionPageRequest = pb.ListWhitelistRequest | pb.ListEnterprisesRequest

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RulesService"].full_name
MAX_BATCH = 1000  # profiles in one EvaluateBatch
MAX_REQUEST_ID = 128  # a caller's id for an evaluation, echoed in its Decision
MAX_FOLLOWERS = 4  # WatchChanges streams per process; each holds a server thread
READ_AHEAD_GROUPS = 2  # ReportEventStream reads ahead at most this many groups' events
# ReportEventStreams per process at most: each holds a database worker thread for its
# lifetime, so fewer with fewer than 8 workers (services/common/stream_slots.py)
MAX_EVENT_STREAMS = 4
# how a long-lived stream ends when the server drains (UNAVAILABLE, retry after a second)
_STREAM_DRAINED = (
    "the server is shutting down: every event answered is stored; reconnect and send the others"
)
_FEED_DRAINED = "the server is shutting down: reconnect from the last change's cursor"
# a stream's caller's rate: 0.0 to go on (the event counted), else seconds to wait
Pace = Callable[[Principal], float]


class RulesServicer(rules_pb2_grpc.RulesServiceServicer):
    def __init__(
        self,
        ctx: handlers.RulesContext,
        engine: Engine | None = None,
        followers: feed.Followers | None = None,
        event_groups: GroupLimits | None = None,
        pace: Pace | None = None,
        db_workers: int = 8,
        draining: threading.Event | None = None,
    ) -> None:
        self._ctx = ctx
        # set when the server drains (common_server.CallPools.draining): streams end
        self._draining = draining or threading.Event()
        self._pace = pace  # each event of a ReportEventStream against the caller's rate
        self._engine = engine
        self._feed = FeedStore(engine) if engine is not None else None
        self._followers = followers or feed.Followers(MAX_FOLLOWERS)
        self._event_streams = StreamSlots("ReportEventStream", db_workers, MAX_EVENT_STREAMS)
        # ReportEvent's and UpsertEnterprise's group commits: one grouper of each per
        # process (event_groups.py)
        self._events = EventGroups(self._uow, ctx, event_groups)
        self._upserts = UpsertGroups(self._uow, ctx, event_groups)  # the same limits

    def _uow(self) -> UnitOfWork:
        if self._engine is None:
            raise PreconditionFailed("this server runs without a register database (--db)")
        return UnitOfWork(self._engine)

    @unary
    def Evaluate(self, request: pb.EvaluateRequest) -> pb.Decision:
        return self._evaluate(request)

    def _evaluate(self, request: pb.EvaluateRequest) -> pb.Decision:
        """The request's Decision: a plainly valid profile is read straight from the proto,
        any other through its JSON shape, which names every bad field."""
        if len(request.request_id) > MAX_REQUEST_ID:
            raise ValidationError(
                [FieldViolation("request_id", f"at most {MAX_REQUEST_ID} characters")]
            )
        profile = request.profile
        decision = handlers.evaluate_typed(
            self._ctx,
            convert.profile_candidate(profile),
            lambda: convert.profile_to_dict(profile),
            request.as_of,
        )
        return convert.decision_to_proto(decision, request_id=request.request_id)

    def EvaluateStream(
        self, requests: Iterator[pb.EvaluateRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.Decision]:
        """One Decision per request, in order; a bad item carries its error, the stream goes on."""
        for request in requests:
            if not context.is_active():
                return  # cancelled or past the caller's deadline
            yield self._item(request)

    @unary
    def EvaluateBatch(self, request: pb.EvaluateBatchRequest) -> pb.EvaluateBatchResponse:
        """One Decision per item, in order, with EvaluateStream's per-item errors."""
        if not 1 <= len(request.items) <= MAX_BATCH:
            raise ValidationError([FieldViolation("items", f"1 to {MAX_BATCH} profiles")])
        return pb.EvaluateBatchResponse(decisions=[self._item(item) for item in request.items])

    def _item(self, request: pb.EvaluateRequest) -> pb.Decision:
        """A Decision, or the item's error in it (EvaluateStream, EvaluateBatch). Neither
        method's items pass the whole-request control-character check (a stream's are
        checked for bytes only; EvaluateBatch is in ITEMS_CHECKED), so each is checked
        here and a bad one answers alone."""
        try:
            if bad := text_violations(request):
                raise ValidationError(bad)
            return self._evaluate(request)
        except Exception as exc:
            return pb.Decision(  # echoed ids no longer than valid ones can be
                request_id=request.request_id[:MAX_REQUEST_ID],
                enterprise_id=request.profile.enterprise_id[:MAX_REQUEST_ID],
                error=item_status(exc),
            )

    @unary
    def ListStandards(self, request: pb.ListStandardsRequest) -> pb.ListStandardsResponse:
        today = self._ctx.today()
        return pb.ListStandardsResponse(
            standards=[
                convert.standard_to_proto(s, today=today, with_clauses=False)
                for s in self._ctx.catalogue.standards
            ],
            ruleset_version=self._ctx.catalogue.version,
        )

    @unary
    def GetStandard(self, request: pb.GetStandardRequest) -> pb.Standard:
        if not request.standard_id:
            raise ValidationError([FieldViolation("standard_id", "is required")])
        day = handlers.parse_as_of(request.as_of) if request.as_of else None
        standard = self._ctx.catalogue.standard(request.standard_id, day)
        if standard is None:
            known = ", ".join(dict.fromkeys(s.id for s in self._ctx.catalogue.standards))
            when = f" in force on {day.isoformat()}" if day else ""
            raise NotFound(f"no standard {preview(request.standard_id)}{when}; known: {known}")
        return convert.standard_to_proto(
            standard, today=day or self._ctx.today(), facts=self._ctx.fact_types, with_clauses=True
        )

    @unary
    def ListApplicableClauses(
        self, request: pb.ListApplicableClausesRequest
    ) -> pb.ListApplicableClausesResponse:
        severity = convert.SEVERITIES.get(request.severity)
        which = request.WhichOneof("firm")
        if which is None:
            raise ValidationError([FieldViolation("firm", "set enterprise_id or profile")])
        if request.severity and severity is None:
            raise ValidationError([FieldViolation("severity", "unknown severity")])
        if which == "enterprise_id":
            require_scope("rules.read", "a firm of the register (enterprise_id)")
            found = register_handlers.clauses_for_firm(
                self._uow(), self._ctx, request.enterprise_id, request.as_of, severity
            )
        else:
            found = handlers.clauses_for_data(
                self._ctx, convert.profile_to_dict(request.profile), request.as_of, severity
            )
        return pb.ListApplicableClausesResponse(
            clauses=[convert.clause_to_proto(c, self._ctx.fact_types) for c in found.clauses],
            standards=[
                convert.standard_to_proto(s, today=found.as_of, with_clauses=False)
                for s in found.standards
            ],
            as_of=found.as_of.isoformat(),
            ruleset_version=self._ctx.catalogue.version,
        )

    @unary
    def ListFacts(self, request: pb.ListFactsRequest) -> pb.ListFactsResponse:
        registry = self._ctx.fact_types
        return pb.ListFactsResponse(
            facts=convert.facts_to_proto(registry, handlers.fact_readers(self._ctx.catalogue)),
            retired=convert.retired_to_proto(registry),
            ruleset_version=self._ctx.catalogue.version,
        )

    @unary
    def ListRegions(self, request: pb.ListRegionsRequest) -> pb.ListRegionsResponse:
        return convert.regions_to_proto(self._ctx.regions)

    @unary
    def UpsertEnterprise(self, request: pb.UpsertEnterpriseRequest) -> pb.EnterpriseStatus:
        view = self._upserts.upsert(
            convert.profile_to_dict(request.profile),
            request.as_of,
            list(request.update_mask.paths),
        )
        return convert.status_to_proto(view)

    @unary
    def GetEnterpriseStatus(self, request: pb.GetEnterpriseStatusRequest) -> pb.EnterpriseStatus:
        view = register_handlers.get_status(
            self._uow(), self._ctx, request.enterprise_id, request.history_limit
        )
        return convert.status_to_proto(view)

    def _region_page(
        self, listing: RegionListing[T], request: RegionPageRequest
    ) -> tuple[list[T], str, str]:
        """One page of a register listing by region (ListWhitelist, ListEnterprises), its
        next page's token and, on the first page, the change feed's cursor read before
        the page (`feed.current_cursor`: a follower that keeps what it lists follows the
        feed from there)."""
        uow = self._uow()
        cursor = ""
        if not request.page_token and self._feed is not None:
            cursor = feed.current_cursor(self._feed)
        found, token = listing(
            uow, self._ctx, request.region, request.page_size, request.page_token
        )
        return found, token, cursor

    @unary
    def ListWhitelist(self, request: pb.ListWhitelistRequest) -> pb.ListWhitelistResponse:
        entries, token, cursor = self._region_page(register_handlers.list_whitelist, request)
        return pb.ListWhitelistResponse(
            entries=[convert.entry_to_proto(e) for e in entries],
            next_page_token=token,
            feed_cursor=cursor,
        )

    @unary
    def ListEnterprises(self, request: pb.ListEnterprisesRequest) -> pb.ListEnterprisesResponse:
        found, token, cursor = self._region_page(register_handlers.list_enterprises, request)
        return pb.ListEnterprisesResponse(
            enterprises=[convert.firm_summary_to_proto(f) for f in found],
            next_page_token=token,
            feed_cursor=cursor,
        )

    @unary
    def ListWhitelistSizes(
        self, request: pb.ListWhitelistSizesRequest
    ) -> pb.ListWhitelistSizesResponse:
        found = whitelist_history.whitelist_sizes(
            self._uow(), self._ctx, request.region, request.from_month, request.to_month
        )
        return pb.ListWhitelistSizesResponse(
            sizes=[
                pb.WhitelistSize(
                    month=m.month,
                    as_of=m.as_of.isoformat(),
                    size=m.size,
                    granted=m.granted,
                    closed=m.closed,
                )
                for m in found
            ]
        )

    @unary
    def ReportEvent(self, request: pb.ReportEventRequest) -> pb.EnterpriseStatus:
        view = self._events.report(convert.event_to_dict(request.event), current_caller())
        return convert.status_to_proto(view)

    def ReportEventStream(
        self, requests: Iterator[pb.ReportEventRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ReportEventResult]:
        """One result per request, in order. A thread reads the stream ahead (at most
        READ_AHEAD_GROUPS groups' events: flow control holds a faster client back, and
        each event after the first waits for the caller's rate); the events waiting are
        taken together, up to the group size, and applied in one transaction
        (`EventGroups.report_together`), then answered. A bad item carries its error;
        the stream goes on. Ends when the client closes its side and every event read
        is answered, or when the call is cancelled or its deadline passes: then no more
        events are taken, and a group already being written still commits, unanswered
        (a resend of its event_ids is a replay). When the server drains, the stream
        reads no more events, answers those it read, and ends UNAVAILABLE with a retry
        hint (OK when its client had closed its side and every event was answered); a
        new stream is then refused the same way. At most half the database workers'
        worth of streams at once, up to MAX_EVENT_STREAMS, and half of those per caller
        (`StreamSlots`: RESOURCE_EXHAUSTED beyond, with a retry hint). A stream's slot
        is given back as soon as its call ends (a cancel, a deadline), or, when it ends
        during a group's write, once that write is done (`CallSlot`); a stream
        asked for while no slot is free waits up to a second for one, so a writer that
        cancels and reconnects at once is not refused for the stream it just left."""
        if self._engine is None:
            abort_for(
                PreconditionFailed("this server runs without a register database (--db)"), context
            )
        principal = current_principal()
        caller = None if principal is ANONYMOUS else principal.caller
        try:
            slot = CallSlot(self._event_streams.hold(caller))
        except Exception as exc:
            abort_for(exc, context)
            return
        if not context.add_callback(slot.ended):  # the call has ended already
            slot.ended()
        try:
            yield from self._event_stream(requests, context, slot)
        finally:
            slot.release()

    def _event_stream(
        self,
        requests: Iterator[pb.ReportEventRequest],
        context: grpc.ServicerContext,
        slot: CallSlot,
    ) -> Iterator[pb.ReportEventResult]:
        """ReportEventStream once admitted: read ahead, take, apply, answer."""
        principal, pace = current_principal(), self._pace
        size = self._events.limits.max_size
        ahead = ReadAhead(
            requests,
            READ_AHEAD_GROUPS * size,
            (lambda: pace(principal)) if pace is not None else None,
            name="report-stream",
        )
        slot.waking(ahead.stop)  # the call's end wakes the handler waiting for events
        try:
            answer = functools.partial(self._answered, ahead, size, principal.caller, context, slot)
            yield from answer(self._taking(context))
            if self._draining.is_set() and context.is_active():
                ahead.stop()  # from here on nothing enters the buffer (review 39 F1)
                yield from answer(lambda: False)
                # else every event sent was answered: OK; or the call was cancelled meanwhile
                if context.is_active() and not ahead.closed_by_client:
                    raise Unavailable(_STREAM_DRAINED, retry_after=1)
            if not context.is_active():  # the log line says so, not OK
                context.set_code(grpc.StatusCode.CANCELLED)
        except Exception as exc:
            if context.is_active():  # a malformed message; a cancelled call ends quietly
                abort_for(exc, context)
        finally:
            ahead.stop()

    def _answered(
        self,
        ahead: ReadAhead[pb.ReportEventRequest],
        size: int,
        caller: str,
        context: grpc.ServicerContext,
        slot: CallSlot,
        waiting: Callable[[], bool],
    ) -> Iterator[pb.ReportEventResult]:
        """The results of the events `ahead` holds, group by group, until it holds none
        and `waiting()` is false or the stream has ended, or the call is seen to have
        ended (a group taken as the caller cancels is still applied, unanswered: a resend
        is a replay); once the server drains, the reader is stopped, so what it had read
        is still answered and nothing more is. Events taken just as the call ended
        (its wait returned them to a cancelled call) are dropped, not applied: their
        caller, having cancelled, cannot learn that they were. The stream's slot counts
        as taken while a group is written (`slot.begin` … `slot.done`), even once the
        call has ended: its database worker is."""
        while (taken := ahead.take(size, waiting)) and context.is_active() and slot.begin():
            try:
                results = self._reported(taken, caller, context)
            finally:
                slot.done()
            yield from results
            if self._draining.is_set():
                ahead.stop()

    def _taking(self, context: grpc.ServicerContext) -> Callable[[], bool]:
        """Whether a long-lived stream should go on waiting (for its client's next
        message, for the feed's next change): not once the call has ended, nor once the
        server drains."""
        return lambda: context.is_active() and not self._draining.is_set()

    def _reported(
        self,
        requests: list[pb.ReportEventRequest],
        source: str,
        context: grpc.ServicerContext,
    ) -> list[pb.ReportEventResult]:
        """The results of events taken from a ReportEventStream together, in order: the
        valid ones applied in one transaction, bounded by the call's deadline; a bad one
        (or, when the group fails as a whole, each) answers with its error."""
        results: list[Exception | register_handlers.StatusView | None] = [None] * len(requests)
        items, where = [], []
        for n, request in enumerate(requests):
            try:  # a stream's requests are checked for bytes only (malformed.py)
                if bad := text_violations(request):
                    raise ValidationError(bad)
                items.append(self._events.parsed(convert.event_to_dict(request.event), source))
                where.append(n)
            except Exception as exc:
                results[n] = exc
        left = context.time_remaining()
        with deadline_in(left if left is not None and left < common_server.NO_DEADLINE else None):
            if items:
                try:
                    answers = self._events.report_together(items)
                except Exception as exc:  # the group failed as a whole: none is applied
                    answers = [exc] * len(items)
                for n, answer in zip(where, answers, strict=True):
                    results[n] = answer
            return [_event_result(r) for r in results]

    @unary
    def CheckInspection(self, request: pb.CheckInspectionRequest) -> pb.InspectionVerdict:
        result = inspection_handlers.check_inspection(
            self._uow(), self._ctx, convert.check_request_to_dict(request), current_caller()
        )
        return convert.verdict_to_proto(result)

    def WatchChanges(
        self, request: pb.WatchChangesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Change]:
        """Replay, then follow; an error ends the call with its code. When the server
        drains, the stream ends with UNAVAILABLE: the follower reconnects from the cursor
        of the last change it got (to another replica), instead of being cut at the end
        of the grace period. At most MAX_FOLLOWERS streams a process, one caller at most
        half of them (`feed.Followers`). A stream's slot is held until its thread has
        ended (review 61 R61-2); the call's end (a cancel, a deadline) wakes the thread
        wherever it waits (for news, for the SQLite write lock: `ending_with`), so a
        follower that reconnects at once finds its slot back, or waits a moment for it
        (review 58 F4)."""
        if self._feed is None:
            abort_for(
                PreconditionFailed("this server runs without a register database (--db)"), context
            )
            return
        principal = current_principal()
        caller = None if principal is ANONYMOUS else principal.caller
        try:
            release = self._followers.hold(caller)
        except Exception as exc:
            abort_for(exc, context)
            return
        feed_store, over = self._feed, threading.Event()

        def ended() -> None:  # gRPC calls it when the call ends, however it ends
            over.set()  # a wait for the SQLite write lock gives up (db._take_gate)
            feed_store.notify()  # the stream's thread, waiting for news, sees it ended

        if not context.add_callback(ended):  # the call has ended already
            ended()
        try:
            with ending_with(over):
                regions = region_filter(self._ctx.regions, request.region)
                following = self._taking(context)
                changes = feed.follow(self._feed, request.after_cursor, regions, following)
                for change in changes:
                    yield convert.change_to_proto(change)
            if context.is_active() and self._draining.is_set():
                raise Unavailable(_FEED_DRAINED, retry_after=1)
            if not context.is_active():  # cancelled or past its deadline: not OK
                context.set_code(grpc.StatusCode.CANCELLED)
        except Exception as exc:
            if context.is_active():  # a cancelled call ends quietly
                abort_for(exc, context)
            else:
                context.set_code(grpc.StatusCode.CANCELLED)
        finally:
            release()  # only now: the slot stands for this thread (review 61 R61-2)

    @unary
    def VerifyInspectionCode(self, request: pb.VerifyInspectionCodeRequest) -> pb.Inspection:
        return convert.inspection_to_proto(
            inspection_handlers.verify_code(self._uow(), request.code)
        )


def _event_result(
    answer: Exception | register_handlers.StatusView | None,
) -> pb.ReportEventResult:
    """One ReportEventStream answer: the event's status, or its error."""
    if isinstance(answer, Exception):
        return pb.ReportEventResult(error=item_status(answer))
    assert answer is not None
    return pb.ReportEventResult(status=convert.status_to_proto(answer))


def context_from(
    rulebook: Rulebook,
    today: Callable[[], date] = today_shanghai,
    spelling: EnumSpelling = short_names,
) -> handlers.RulesContext:
    """The context of the server (its callers write the proto enum names: `build` passes
    convert.proto_spelling) or of a CLI command (its files write the short names)."""
    return handlers.RulesContext(
        catalogue=rulebook.catalogue,
        policy=rulebook.policy,
        fact_types=rulebook.fact_types,
        engine=engine_for(rulebook.catalogue),
        today=today,
        regions=rulebook.regions,
        spelling=spelling,
    )


@dataclass
class RunningServer(common_server.RunningServer):
    servicer: RulesServicer | None = None
    auth: AuthInterceptor | None = None  # shared with the HTTP/JSON gateway (one rate limit)


# the streams that end when the server drains, and are refused while it does
# (common_server.AdmissionInterceptor); EvaluateStream goes on until its client closes it
LONG_LIVED = frozenset(f"/{SERVICE_NAME}/{m}" for m in ("ReportEventStream", "WatchChanges"))
# the unary methods that check each item's control characters themselves (`_item`), on
# gRPC (malformed.py's interceptor) and HTTP/JSON (the gateway) alike
ITEMS_CHECKED = frozenset({f"/{SERVICE_NAME}/EvaluateBatch"})
# the methods that never touch the register: served even while the database hangs.
# WatchChanges reads the register briefly between waits; it runs here so that a follower
# (at most MAX_FOLLOWERS per process) never holds a database worker for its lifetime.
DB_FREE = frozenset(
    f"/{SERVICE_NAME}/{m}"
    for m in (
        "Evaluate",
        "EvaluateStream",
        "EvaluateBatch",
        "ListStandards",
        "GetStandard",
        "ListFacts",
        "ListRegions",
        "WatchChanges",
    )
)


def create_server(
    rulebook: Rulebook,
    *,
    engine: Engine | None = None,
    address: str = "127.0.0.1:0",
    max_workers: int = 8,
    today: Callable[[], date] = today_shanghai,
    security: Security | None = None,
    limits: common_server.Limits | None = None,
    event_groups: GroupLimits | None = None,
) -> tuple[grpc.Server, int]:
    """Build (not start) the rules server bound to `address`; port 0 picks a free port.

    `engine` is the register's database, already migrated; without it the register RPCs
    answer FAILED_PRECONDITION. `today` is the clock (tests pin it). `security` adds
    authentication, rate limits and TLS. `max_workers` sizes both thread pools unless
    `limits` says otherwise. `event_groups` bounds ReportEvent's and
    UpsertEnterprise's group commits (default GroupLimits(); max_size 1 turns them off).
    """
    running = build(
        rulebook,
        engine=engine,
        address=address,
        limits=limits or common_server.Limits(max_workers, max_workers),
        today=today,
        security=security,
        event_groups=event_groups,
    )
    return running.server, running.port


def build(
    rulebook: Rulebook,
    *,
    engine: Engine | None,
    address: str,
    limits: common_server.Limits | None = None,
    max_workers: int = 8,
    today: Callable[[], date] = today_shanghai,
    security: Security | None = None,
    event_groups: GroupLimits | None = None,
) -> RunningServer:
    security = security or Security()
    auth = security.auth(RULES_METHODS)
    start_mappers()  # once, before serving: concurrent first calls must not map it again
    server, pools = common_server.new_server(
        limits=limits or common_server.Limits(max_workers, max_workers),
        db_free=DB_FREE,
        items_checked=ITEMS_CHECKED,
        long_lived=LONG_LIVED,
        interceptors=[auth] if auth is not None else [],
    )
    servicer = RulesServicer(
        context_from(rulebook, today, convert.proto_spelling),
        engine,
        event_groups=event_groups,
        pace=auth.charge if auth is not None else None,
        db_workers=(limits or common_server.Limits(max_workers, max_workers)).db_workers,
        draining=pools.draining,
    )
    rules_pb2_grpc.add_RulesServiceServicer_to_server(servicer, server)
    checker = common_server.add_health_and_reflection(server, [SERVICE_NAME], pools.draining)
    port = common_server.bind_port(server, address, security.tls)
    return RunningServer(server, port, checker, pools, servicer, auth)
