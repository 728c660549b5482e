"""ReportEventStream on a real gRPC server, SQLite and PostgreSQL: the events waiting on a
stream are applied as one group and answer, and store, exactly what the same events sent
one by one through unary ReportEvent do; a bad item answers its error in its place while
the others are applied; a replay answers duplicate; the scope is rules.write; every event
counts against the caller's rate; a stalled database answers UNAVAILABLE for each event
and stores nothing; a cancelled stream leaves no thread behind."""

from __future__ import annotations

import functools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from google.protobuf.json_format import MessageToDict
from google.rpc import code_pb2, error_details_pb2
from sqlalchemy import Engine, func, select

from services.common import server as common_server
from services.common import stream_slots
from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1.rules_pb2_grpc import RulesServiceStub
from services.common.audit import verify
from services.common.auth import TokenStore
from services.common.db import DbTimeouts, make_engine
from services.common.ratelimit import Rate
from services.common.read_ahead import ReadAhead
from services.common.security import Security
from services.rules.adapters.feed import FeedStore
from services.rules.adapters.orm import audit_head, audit_log, changes
from services.rules.domain.changes import parse_cursor
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from services.rules.service_layer import feed
from services.rules.service_layer.event_groups import EventGroups, GroupLimits
from tests.integration.conftest import Clock, upsert
from tests.integration.rules.test_event_groups import (
    BEFORE,
    FIRMS,
    GROUPED,
    ONE_BY_ONE,
    SENT,
    _as,
    _events,
    _Held,
    _register,
    _server,
)
from tests.integration.rules.test_event_groups import _answer as _unary_answer
from tests.integration.rules.test_events import accident, complaint
from tests.integration.rules.test_reevaluation_bulk import _rows
from tests.support import profile, uscc

WRITER = ("tok-writer-0123456789abcd", ["rules.read", "rules.write"])
READER = ("tok-reader-0123456789abcd", ["rules.read", "rules.evaluate"])


@pytest.fixture
def stub(db_engine: Engine, rulebook: Any) -> Iterator[RulesServiceStub]:
    yield from _server(db_engine, rulebook, GroupLimits(max_size=len(SENT)))


@pytest.fixture
def sizes(monkeypatch: Any) -> list[int]:
    """The sizes of the groups streams apply; each stream's first take waits until the
    client has sent everything (so the whole stream is waiting: one group)."""
    taken: list[int] = []
    real_take, real_together = ReadAhead.take, EventGroups.report_together

    def take(self: ReadAhead[Any], most: int, active: Any = lambda: True) -> list[Any]:
        with self._cond:
            self._cond.wait_for(lambda: self._ended, timeout=30)
        return real_take(self, most, active)

    def together(self: EventGroups, items: Sequence[Any]) -> Any:
        taken.append(len(items))
        return real_together(self, items)

    monkeypatch.setattr(ReadAhead, "take", take)
    monkeypatch.setattr(EventGroups, "report_together", together)
    return taken


def _stream_answer(result: pb.ReportEventResult) -> Any:
    """A stream's result as `_unary_answer` shows a unary call's: the status made
    comparable across the two heads, or the error's code name."""
    if result.HasField("error"):
        return code_pb2.Code.Name(result.error.code)
    return _unary_answer(lambda: result.status)


def test_a_stream_answers_and_stores_what_one_by_one_does(
    stub: RulesServiceStub, db_engine: Engine, sizes: list[int]
) -> None:
    for head in (ONE_BY_ONE, GROUPED):
        for n in range(1, FIRMS + 1):
            upsert(stub, profile(n, enterprise_id=uscc(n, head)))
        for e in BEFORE:
            stub.ReportEvent(pb.ReportEventRequest(event=_as(head, e)), timeout=30)
    plain = [
        _unary_answer(
            lambda e=e: stub.ReportEvent(
                pb.ReportEventRequest(event=_as(ONE_BY_ONE, e)), timeout=30
            )
        )
        for e, _ in SENT
    ]
    requests = [pb.ReportEventRequest(event=_as(GROUPED, e)) for e, _ in SENT]
    streamed = [_stream_answer(r) for r in stub.ReportEventStream(iter(requests), timeout=60)]
    assert sizes == [len(SENT)]  # one group
    assert len(streamed) == len(SENT)
    for n, ((_, expected), first, second) in enumerate(zip(SENT, plain, streamed, strict=True)):
        assert second == first, f"event {n}"
        if expected == "duplicate":
            assert first["duplicate"] is True
        elif expected != "ok":
            assert first == expected, f"event {n}"
    renamed = {
        f"{GROUPED}-{i}": f"{ONE_BY_ONE}-{i}" for i in ("p1", *(f"e{n}" for n in range(1, 15)))
    }
    assert _rows(db_engine, GROUPED, FIRMS, ONE_BY_ONE, renamed) == _rows(
        db_engine, ONE_BY_ONE, FIRMS, ONE_BY_ONE
    )
    assert _events(db_engine, GROUPED) == _events(db_engine, ONE_BY_ONE)
    with db_engine.connect() as conn:
        assert verify(conn, audit_log, audit_head).ok


def _bad_request(status: Any) -> list[str]:
    """The fields a google.rpc.Status's BadRequest names."""
    fields = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return fields


def test_bad_items_answer_their_errors_in_place_and_the_others_apply(
    stub: RulesServiceStub, db_engine: Engine, sizes: list[int]
) -> None:
    _register(stub)
    stub.ReportEvent(pb.ReportEventRequest(event=_as(GROUPED, accident(1, "r1"))), timeout=30)
    bad_date = _as(GROUPED, complaint(2, "b2"))
    bad_date.occurred_on = "2026-13-01"
    control = _as(GROUPED, complaint(3, "b3", text="投诉\x07"))
    sent = [
        _as(GROUPED, accident(2, "s1")),  # ok
        bad_date,  # INVALID_ARGUMENT naming the field
        _as(GROUPED, complaint(9, "s3")),  # NOT_FOUND: no such firm
        _as(GROUPED, accident(1, "r1")),  # a replay of the unary call's event: duplicate
        _as(GROUPED, complaint(1, "r1")),  # the same event_id, other content: ALREADY_EXISTS
        control,  # a control character: INVALID_ARGUMENT naming the field
        _as(GROUPED, complaint(3, "s7")),  # ok
    ]
    with structlog.testing.capture_logs() as logged:
        results = list(stub.ReportEventStream(iter(pb.ReportEventRequest(event=e) for e in sent)))
    assert sizes == [5]  # the two bad ones never joined the group
    rpc = [e for e in logged if e["event"] == "rpc"]  # the stream's one line counts them
    assert [(e["messages_sent"], e["items_failed"]) for e in rpc] == [(7, 4)]
    codes = [code_pb2.Code.Name(r.error.code) if r.HasField("error") else "ok" for r in results]
    assert codes == [
        "ok",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ok",
        "ALREADY_EXISTS",
        "INVALID_ARGUMENT",
        "ok",
    ]
    assert _bad_request(results[1].error) == ["event.occurred_on"]
    assert _bad_request(results[5].error) == ["event.complaint.text"]
    with pytest.raises(grpc.RpcError) as unary:  # the unary call names the same field
        stub.ReportEvent(pb.ReportEventRequest(event=bad_date), timeout=30)
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert results[1].error.message == unary.value.details()
    assert results[3].status.duplicate is True
    assert [results[n].status.duplicate for n in (0, 6)] == [False, False]
    stored = [e["event_id"] for e in _events(db_engine, GROUPED)]
    assert stored == ["-r1", "-s1", "-s7"]


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    path = tmp_path / "tokens.json"
    entries = [
        {"token": tok, "caller": name, "scopes": scopes}
        for name, (tok, scopes) in (("writer", WRITER), ("reader", READER))
    ]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    return TokenStore.load(path)


def test_the_stream_needs_rules_write(db_engine: Engine, rulebook: Any, store: TokenStore) -> None:
    for stub in _server(db_engine, rulebook, security=Security(store, Rate(1000, 1000))):
        sent = [pb.ReportEventRequest(event=_as(GROUPED, complaint(1, "w1")))]
        reader = (("authorization", f"Bearer {READER[0]}"),)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ReportEventStream(iter(sent), metadata=reader, timeout=30))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        writer = (("authorization", f"Bearer {WRITER[0]}"),)
        upsert_request = pb.UpsertEnterpriseRequest(
            profile=profile_from_json(profile(1, enterprise_id=uscc(1, GROUPED)))
        )
        stub.UpsertEnterprise(upsert_request, metadata=writer, timeout=30)
        (result,) = stub.ReportEventStream(iter(sent), metadata=writer, timeout=30)
        assert result.HasField("status") and not result.status.duplicate


def test_each_event_counts_against_the_callers_rate(
    db_engine: Engine, rulebook: Any, store: TokenStore
) -> None:
    """A burst of 3: the call and its first event take one, the next two events one each;
    the fourth waits for the bucket (the stream is held, not refused), so a unary call
    right after the stream finds the caller's budget spent."""
    writer = (("authorization", f"Bearer {WRITER[0]}"),)
    for stub in _server(db_engine, rulebook, security=Security(store, Rate(0.25, 3))):
        sent = [pb.ReportEventRequest(event=_as(GROUPED, complaint(9, f"q{n}"))) for n in range(4)]
        results = list(stub.ReportEventStream(iter(sent), metadata=writer, timeout=60))
        assert [code_pb2.Code.Name(r.error.code) for r in results] == ["NOT_FOUND"] * 4
        with pytest.raises(grpc.RpcError) as info:
            stub.ReportEvent(sent[0], metadata=writer, timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_stalled_database_answers_unavailable_for_each_event_and_stores_none(
    db_engine: Engine, rulebook: Any, sizes: list[int]
) -> None:
    if db_engine.dialect.name == "sqlite":
        pytest.skip("a table lock that lets the group's first reads through is PostgreSQL's")
    for stub in _server(db_engine, rulebook):
        _register(stub)
    url = db_engine.url.render_as_string(hide_password=False)
    stalled = make_engine(url, timeouts=DbTimeouts(statement=1.0))
    try:
        for stub in _server(stalled, rulebook):
            sent = [_as(GROUPED, complaint(1 + n % FIRMS, f"st{n}")) for n in range(4)]
            with _Held(db_engine, "decisions", 8):
                results = list(
                    stub.ReportEventStream(
                        iter(pb.ReportEventRequest(event=e) for e in sent), timeout=60
                    )
                )
    finally:
        stalled.dispose()
    assert sizes == [4]
    assert [code_pb2.Code.Name(r.error.code) for r in results] == ["UNAVAILABLE"] * 4
    assert _events(db_engine, GROUPED) == []


def _fed() -> tuple[queue.Queue[pb.ReportEventRequest | None], Iterator[pb.ReportEventRequest]]:
    """A request stream the test feeds (None half-closes it)."""
    more: queue.Queue[pb.ReportEventRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.ReportEventRequest]:
        while (item := more.get()) is not None:
            yield item

    return more, requests()


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "report-stream"]


def test_a_cancelled_stream_leaves_no_thread_behind(
    stub: RulesServiceStub, db_engine: Engine
) -> None:
    _register(stub)
    more, requests = _fed()
    call = stub.ReportEventStream(requests, timeout=60)
    more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(1, "c1"))))
    first = next(call)
    assert first.HasField("status")
    assert _stream_threads()  # the reader waits for the next event
    call.cancel()
    more.put(None)
    waited = time.monotonic() + 30
    while _stream_threads() and time.monotonic() < waited:
        time.sleep(0.05)
    assert _stream_threads() == []
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-c1"]
    # the server goes on serving streams
    (again,) = stub.ReportEventStream(
        iter([pb.ReportEventRequest(event=_as(GROUPED, complaint(2, "c2")))]), timeout=30
    )
    assert again.HasField("status")


def test_a_stream_result_is_the_status_message_the_unary_call_answers(
    stub: RulesServiceStub,
) -> None:
    """The status of a replay, byte for byte in its JSON form, as the unary replay's."""
    _register(stub)
    event = _as(GROUPED, accident(1, "u1"))
    stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=30)
    unary = stub.ReportEvent(pb.ReportEventRequest(event=event), timeout=30)
    (streamed,) = stub.ReportEventStream(iter([pb.ReportEventRequest(event=event)]), timeout=30)
    assert MessageToDict(streamed.status) == MessageToDict(unary)


def test_at_most_four_streams_at_once(stub: RulesServiceStub) -> None:
    """Each stream holds a database worker: a fifth is refused with a retry hint, and one
    may open again once another has ended."""
    _register(stub)
    gates: list[queue.Queue[pb.ReportEventRequest | None]] = []
    calls = []
    for n in range(grpc_server.MAX_EVENT_STREAMS):
        gate: queue.Queue[pb.ReportEventRequest | None] = queue.Queue()
        gates.append(gate)

        def requests(gate: Any = gate) -> Iterator[pb.ReportEventRequest]:
            while (item := gate.get()) is not None:
                yield item

        call = stub.ReportEventStream(requests(), timeout=60)
        gate.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(1, f"open{n}"))))
        assert next(call).HasField("status")  # open and served
        calls.append(call)
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.ReportEventStream(iter([]), timeout=30))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry-after" in dict(refused.value.trailing_metadata() or ())
    gates[0].put(None)  # the first stream ends
    assert list(calls[0]) == []
    (again,) = stub.ReportEventStream(
        iter([pb.ReportEventRequest(event=_as(GROUPED, complaint(2, "again")))]), timeout=30
    )
    assert again.HasField("status")
    for gate in gates[1:]:
        gate.put(None)
    for call in calls[1:]:
        assert list(call) == []


def _open_stream(stub: RulesServiceStub, tag: str, metadata: Any = ()) -> tuple[Any, Any]:
    """A stream left open after one event was answered: (its call, its gate; put None to
    end it)."""
    gate: queue.Queue[pb.ReportEventRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.ReportEventRequest]:
        while (item := gate.get()) is not None:
            yield item

    call = stub.ReportEventStream(requests(), metadata=metadata, timeout=60)
    gate.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(1, tag))))
    assert next(call).HasField("status")  # open and served
    return call, gate


def _refused(stub: RulesServiceStub, metadata: Any = ()) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.ReportEventStream(iter([]), metadata=metadata, timeout=30))
    return refused.value.code()


def test_streams_leave_half_the_database_workers_to_the_unary_calls(
    db_engine: Engine, rulebook: Any
) -> None:
    """Review 36 F1: with 4 database workers, 4 open streams took them all; unary calls
    and a fifth stream then waited out their deadlines. Now 2 streams may open there, a
    third is refused at once, and the unary calls are still served."""
    limits = common_server.Limits(16, 4)
    for stub in _server(db_engine, rulebook, limits=limits):
        _register(stub)
        opened = [_open_stream(stub, f"half{n}") for n in range(2)]
        assert _refused(stub) == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = stub.GetEnterpriseStatus(
            pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1, GROUPED)), timeout=10
        )
        assert status.profile.enterprise_id == uscc(1, GROUPED)
        stub.ReportEvent(pb.ReportEventRequest(event=_as(GROUPED, complaint(2, "u1"))), timeout=10)
        for call, gate in opened:
            gate.put(None)
            assert list(call) == []


def test_a_server_with_one_database_worker_holds_no_stream(
    db_engine: Engine, rulebook: Any
) -> None:
    for stub in _server(db_engine, rulebook, limits=common_server.Limits(8, 1)):
        assert _refused(stub) == grpc.StatusCode.FAILED_PRECONDITION


OTHER = ("tok-other-0123456789abcdef", ["rules.read", "rules.write"])
AS_WRITER = (("authorization", f"Bearer {WRITER[0]}"),)
AS_OTHER = (("authorization", f"Bearer {OTHER[0]}"),)


def _two_callers(
    db_engine: Engine, rulebook: Any, tmp_path: Path, groups: GroupLimits | None = None
) -> Iterator[RulesServiceStub]:
    """A real rules server with two writers' tokens (AS_WRITER, AS_OTHER), GROUPED's
    firms registered, and a stub on it, until the generator is closed."""
    path = tmp_path / "tokens.json"
    entries = [
        {"token": tok, "caller": name, "scopes": scopes}
        for name, (tok, scopes) in (("writer", WRITER), ("other", OTHER))
    ]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    security = Security(TokenStore.load(path), Rate(1000, 1000))
    for stub in _server(db_engine, rulebook, groups, security=security):
        for n in range(1, FIRMS + 1):
            firm = profile_from_json(profile(n, enterprise_id=uscc(n, GROUPED)))
            stub.UpsertEnterprise(
                pb.UpsertEnterpriseRequest(profile=firm), metadata=AS_WRITER, timeout=30
            )
        yield stub


def test_one_caller_holds_at_most_half_the_streams(
    db_engine: Engine, rulebook: Any, tmp_path: Path
) -> None:
    """Review 36 F1: one feeder could hold every slot and lock the others out."""
    for stub in _two_callers(db_engine, rulebook, tmp_path):
        mine = [_open_stream(stub, f"mine{n}", AS_WRITER) for n in range(2)]
        assert _refused(stub, AS_WRITER) == grpc.StatusCode.RESOURCE_EXHAUSTED
        theirs = _open_stream(stub, "theirs", AS_OTHER)  # another caller still gets in
        for call, gate in (*mine, theirs):
            gate.put(None)
            assert list(call) == []


def test_a_writer_that_cancels_and_reconnects_at_once_is_not_refused(
    db_engine: Engine, rulebook: Any, tmp_path: Path
) -> None:
    """Review 58 (left over from F4): a writer holding its share of streams cancels one
    and opens the next at once. Its slot was given back only when the stream's thread
    next looked, and the server may hear the new stream before the cancel, so the new
    one was refused for the stream just left (17 of 30 here). Now the slot is given
    back when gRPC reports the call ended, and a new stream waits a moment for it."""
    for stub in _two_callers(db_engine, rulebook, tmp_path):
        mine = [_open_stream(stub, f"m{n}", AS_WRITER) for n in range(2)]  # its share
        refusals = []
        for n in range(20):
            call, gate = mine.pop(0)
            call.cancel()
            gate.put(None)
            try:
                mine.append(_open_stream(stub, f"r{n}", AS_WRITER))
            except grpc.RpcError as exc:
                refusals.append(exc.details())
                time.sleep(0.5)  # its old stream is gone by now (then the next round)
                mine.append(_open_stream(stub, f"r{n}-again", AS_WRITER))
        for call, gate in mine:
            gate.put(None)
            assert list(call) == []
        assert refusals == []


def test_a_stream_cancelled_during_a_write_keeps_its_slot_until_the_write_is_done(
    db_engine: Engine, rulebook: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A stream's slot stands for its database worker: when its call is cancelled while
    a group is being written, the slot is given back once the write is done, not at the
    cancel (a writer cancelling and reconnecting in a loop would otherwise hold every
    worker with writes). Without the grace here, so that the refusal is at once."""
    monkeypatch.setattr(stream_slots, "GRACE_SECONDS", 0.0)
    hold = _FirstGroupHeld().install(monkeypatch)
    for stub in _two_callers(db_engine, rulebook, tmp_path, GroupLimits(max_size=len(SENT))):
        writing, more = hold.opened(stub, "x", AS_WRITER)  # its first group held
        idle = _open_stream(stub, "idle", AS_WRITER)  # the caller's share: 2
        writing.cancel()
        more.put(None)
        _wait_until(lambda: hold.readers[0]._ended, "the reader seeing the cancelled call")
        assert _refused(stub, AS_WRITER) == grpc.StatusCode.RESOURCE_EXHAUSTED
        hold.release.set()
        assert hold.applied.wait(30)
        again = None
        waited = time.monotonic() + 30
        while again is None:
            try:
                again = _open_stream(stub, "again", AS_WRITER)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < waited, "the slot was not given back after the write"
                time.sleep(0.05)
        for call, gate in (idle, again):
            gate.put(None)
            assert list(call) == []
        stored = sorted(e["event_id"] for e in _events(db_engine, GROUPED))
        assert stored == ["-again", "-idle", "-x1"]  # the group being written committed


@pytest.fixture
def built(db_engine: Engine, rulebook: Any) -> Iterator[tuple[Any, RulesServiceStub]]:
    """A real rules server built as `serve` builds it (its pools know when it drains),
    and a stub on it."""
    running = grpc_server.build(
        rulebook, engine=db_engine, address="127.0.0.1:0", today=Clock(), max_workers=16
    )
    running.server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running, RulesServiceStub(channel)
    finally:
        channel.close()
        running.server.stop(None)


def _drain(running: Any) -> tuple[threading.Thread, list[dict[str, Any]]]:
    """SIGTERM's drain (a long grace period) on a thread; what it logs."""
    logged: list[dict[str, Any]] = []

    def run() -> None:
        with structlog.testing.capture_logs() as seen:
            common_server.drain(running, grace_seconds=120, settle=0.2)
        logged.extend(seen)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, logged


def test_a_draining_server_answers_what_a_stream_sent_then_ends_it_unavailable(
    built: tuple[Any, RulesServiceStub], db_engine: Engine
) -> None:
    """Review 36 N2: on SIGTERM an open stream no longer holds the drain to the end of
    its grace period. The events it sent before are answered and stored; then the
    stream ends with UNAVAILABLE (reconnect elsewhere and send the rest), and the
    server stops as soon as it is quiet."""
    running, stub = built
    _register(stub)
    more, requests = _fed()
    call = stub.ReportEventStream(requests, timeout=120)
    for n in (1, 2):
        more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(n, f"d{n}"))))
    answered = [next(call), next(call)]
    assert all(r.HasField("status") for r in answered)
    thread, logged = _drain(running)
    with pytest.raises(grpc.RpcError) as ended:
        next(call)  # the client never closes its side: the server ends the stream
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in (ended.value.details() or "")
    more.put(None)
    thread.join(120)
    assert not thread.is_alive()
    assert not [e for e in logged if "end of the grace period" in e["event"]]
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-d1", "-d2"]


def test_a_draining_server_ends_a_follower_unavailable(
    built: tuple[Any, RulesServiceStub],
) -> None:
    """A WatchChanges follower is told to reconnect (UNAVAILABLE) when the server drains,
    after every change it was given; it is not held to the end of the grace period."""
    running, stub = built
    _register(stub)
    follower = stub.WatchChanges(pb.WatchChangesRequest(), timeout=120)
    got = [next(follower)]  # the replay has begun
    thread, logged = _drain(running)
    with pytest.raises(grpc.RpcError) as ended:
        got.extend(follower)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cursor" in (ended.value.details() or "")
    thread.join(120)
    assert not thread.is_alive()
    # every change of the register, in order, before the end: nothing skipped
    positions = [parse_cursor(c.cursor).position for c in got]
    assert len(got) >= FIRMS and positions == list(range(1, len(got) + 1))
    assert not [e for e in logged if "end of the grace period" in e["event"]]
    (line,) = [e for e in logged if e["event"] == "rpc"]  # a change cannot fail an item
    assert (line["status"], line["messages_sent"]) == ("UNAVAILABLE", len(got))
    assert "items_failed" not in line


@pytest.mark.parametrize("method", ["ReportEventStream", "EvaluateStream"])
def test_bytes_that_do_not_decode_are_named_by_their_place_in_the_stream(
    built: tuple[Any, RulesServiceStub], db_engine: Engine, method: str
) -> None:
    """Review 38 N6: the messages before the bad one are answered, and the error says
    which message it was (there is no field to name in bytes that do not decode)."""
    running, stub = built
    _register(stub)
    if method == "ReportEventStream":
        good = [
            pb.ReportEventRequest(event=_as(GROUPED, complaint(n, f"m{n}"))).SerializeToString()
            for n in (1, 2)
        ]
    else:
        good = [
            pb.EvaluateRequest(profile=profile_from_json(profile(n)), request_id=str(n))
            for n in (1, 2)
        ]
        good = [g.SerializeToString() for g in good]
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        call = channel.stream_stream(f"/rules.v1.RulesService/{method}")
        answers = []
        with pytest.raises(grpc.RpcError) as refused:
            answers.extend(call(iter([*good, b"\xff\xff\xff"]), timeout=30))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "message 3 of the stream is not a valid message"
    assert len(answers) == 2
    if method == "ReportEventStream":
        assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-m1", "-m2"]


def _wait_until(check: Callable[[], bool], what: str) -> None:
    waited = time.monotonic() + 30
    while not check():
        assert time.monotonic() < waited, what
        time.sleep(0.01)


def test_an_event_read_as_the_drain_begins_is_answered_before_an_ok_end(
    built: tuple[Any, RulesServiceStub], db_engine: Engine, monkeypatch: Any
) -> None:
    """Review 39 F1: the drain begins while the stream waits for its client; the client
    then sends one more event and closes its side. That event is read before the reader
    stops: it is applied and answered, and only then does the stream end, OK (the client
    had closed it), never OK with the event unanswered."""
    running, stub = built
    _register(stub)
    in_window, waiting, takes = threading.Event(), threading.Event(), [0]
    real_take = ReadAhead.take

    def take(self: ReadAhead[Any], most: int, active: Any = lambda: True) -> list[Any]:
        takes[0] += 1
        if takes[0] == 2:  # w1 answered: the stream waits for its client's next event
            waiting.set()
        got = real_take(self, most, active)
        if not got and running.pools.draining.is_set() and not in_window.is_set():
            in_window.set()  # the wait ended by the drain: let the reader read to the end
            with self._cond:
                assert self._cond.wait_for(lambda: self._ended, timeout=30)
        return got

    monkeypatch.setattr(ReadAhead, "take", take)
    more, requests = _fed()
    call = stub.ReportEventStream(requests, timeout=120)
    more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(1, "w1"))))
    answers = [next(call)]
    assert waiting.wait(30)
    thread, _ = _drain(running)
    assert in_window.wait(30)
    more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(2, "w2"))))
    more.put(None)
    answers.extend(call)  # ends OK: no RpcError
    thread.join(120)
    assert [a.HasField("status") for a in answers] == [True, True]
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-w1", "-w2"]


@dataclass
class _FirstGroupHeld:
    """A stream's first group held in `report_together` until `release` is set:
    `entered` once it is, `applied` once any group has been applied, `groups` the sizes
    of the groups taken, `readers` the streams' read-ahead buffers."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    applied: threading.Event = field(default_factory=threading.Event)
    groups: list[int] = field(default_factory=list)
    readers: list[ReadAhead[Any]] = field(default_factory=list)

    def install(self, monkeypatch: Any) -> _FirstGroupHeld:
        real_init, real_together = ReadAhead.__init__, EventGroups.report_together

        def init(reader: ReadAhead[Any], *args: Any, **kwargs: Any) -> None:
            real_init(reader, *args, **kwargs)
            self.readers.append(reader)

        def held(groups: EventGroups, items: Sequence[Any]) -> Any:
            self.groups.append(len(items))
            if not self.entered.is_set():
                self.entered.set()
                assert self.release.wait(30)
            try:
                return real_together(groups, items)
            finally:
                self.applied.set()

        monkeypatch.setattr(ReadAhead, "__init__", init)
        monkeypatch.setattr(EventGroups, "report_together", held)
        return self

    def opened(
        self, stub: RulesServiceStub, tag: str, metadata: Any = ()
    ) -> tuple[Any, queue.Queue[pb.ReportEventRequest | None]]:
        """A stream whose first event (`tag`1) is the group held, and whose next two
        wait in its buffer; the call and the queue that feeds it."""
        more, requests = _fed()
        call = stub.ReportEventStream(requests, metadata=metadata, timeout=120)
        more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(1, f"{tag}1"))))
        assert self.entered.wait(30)
        for n in (2, 3):
            more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(n, f"{tag}{n}"))))
        _wait_until(lambda: len(self.readers[0]._buffer) == 2, "the two events read ahead")
        return call, more


def test_a_drain_during_a_group_answers_what_was_read_and_reads_no_more(
    built: tuple[Any, RulesServiceStub], db_engine: Engine, monkeypatch: Any
) -> None:
    """The drain begins while a group is being applied and two more events wait in the
    buffer: all three are applied and answered, an event sent afterwards is neither,
    and the stream ends UNAVAILABLE with a retry hint."""
    running, stub = built
    _register(stub)
    hold = _FirstGroupHeld().install(monkeypatch)
    release = hold.release
    call, more = hold.opened(stub, "g")
    thread, _ = _drain(running)
    _wait_until(running.pools.draining.is_set, "the drain begun")
    release.set()
    answers = [next(call) for _ in range(3)]
    more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(4, "g4"))))
    with pytest.raises(grpc.RpcError) as ended:
        answers.extend(call)
    more.put(None)
    thread.join(120)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "1") in (ended.value.trailing_metadata() or ())
    assert len(answers) == 3 and all(a.HasField("status") for a in answers)
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-g1", "-g2", "-g3"]


def test_a_follower_drained_mid_replay_gets_a_prefix_of_the_feed(
    built: tuple[Any, RulesServiceStub], db_engine: Engine, monkeypatch: Any
) -> None:
    """Review 39 N2: drained between two batches of its replay, a follower has got the
    feed's first changes without a gap, so resuming from its last cursor skips none."""
    running, stub = built
    _register(stub)
    for n in range(1, FIRMS + 1):
        stub.ReportEvent(pb.ReportEventRequest(event=_as(GROUPED, accident(n, f"m{n}"))))
    with db_engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(changes)).scalar_one()
    reads, real_read, real_follow = [0], FeedStore.read, feed.follow

    def read(self: FeedStore, *args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        if reads[0] > 1:  # the second batch is read once the drain has begun
            _wait_until(running.pools.draining.is_set, "the drain begun")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(FeedStore, "read", read)
    monkeypatch.setattr(feed, "follow", functools.partial(real_follow, batch=2))
    follower = stub.WatchChanges(pb.WatchChangesRequest(), timeout=120)
    got = [next(follower)]
    thread, _ = _drain(running)
    with pytest.raises(grpc.RpcError) as ended:
        got.extend(follower)
    thread.join(120)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "1") in (ended.value.trailing_metadata() or ())
    cursors = [parse_cursor(c.cursor).position for c in got]  # one batch or two, as it fell
    assert cursors in ([1, 2], [1, 2, 3, 4]) and total > 4


_REFUSED = "the server is shutting down; reconnect to another replica"  # by the admission


def test_a_client_that_reconnects_at_once_does_not_hold_the_drain(
    built: tuple[Any, RulesServiceStub],
) -> None:
    """Review 39 F2: while the server drains, a new ReportEventStream or WatchChanges is
    refused UNAVAILABLE with a retry hint, before it holds a worker: a follower that
    reconnects at once, again and again, does not keep the server from going quiet."""
    running, stub = built
    _register(stub)
    codes: list[tuple[Any, str]] = []
    trailers: list[tuple[Any, ...]] = []
    stop, following = threading.Event(), threading.Event()

    def follower() -> None:
        while not stop.is_set():
            try:
                for _ in stub.WatchChanges(pb.WatchChangesRequest(), timeout=30):
                    following.set()
            except grpc.RpcError as exc:
                codes.append((exc.code(), exc.details() or ""))
                trailers.append(tuple(exc.trailing_metadata() or ()))
                if codes[-1][1] not in (grpc_server._FEED_DRAINED, _REFUSED):
                    return  # the server has stopped

    thread = threading.Thread(target=follower)
    thread.start()
    assert following.wait(30)  # its replay has begun
    drained, logged = _drain(running)
    drained.join(120)
    stop.set()
    thread.join(60)
    assert not [e for e in logged if "end of the grace period" in e["event"]]
    # the follower that was in ended by the drain, every reconnection by the admission
    details = [d for _, d in codes if d in (grpc_server._FEED_DRAINED, _REFUSED)]
    assert details[0] == grpc_server._FEED_DRAINED
    assert details[1:] and set(details[1:]) == {_REFUSED}
    lines = [e for e in logged if e["event"] == "rpc"]
    (first,) = [e for e in lines if e["messages_sent"]]  # the follower that was in
    refused = [e for e in lines if e is not first]  # its reconnections
    assert first["status"] == "UNAVAILABLE" and refused
    assert {(e["status"], e["messages_sent"]) for e in refused} == {("UNAVAILABLE", 0)}
    assert any(("retry-after", "1") in sent for sent in trailers)


def test_a_draining_server_refuses_new_long_lived_streams(
    built: tuple[Any, RulesServiceStub],
) -> None:
    """What a client that reconnects to a draining server gets, before any handler
    runs: UNAVAILABLE with a retry hint, for a new ReportEventStream or WatchChanges;
    a unary call already sent is still served."""
    running, stub = built
    _register(stub)
    running.pools.draining.set()  # as drain() does first
    for call in (
        lambda: list(stub.ReportEventStream(iter([]), timeout=30)),
        lambda: list(stub.WatchChanges(pb.WatchChangesRequest(), timeout=30)),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (refused.value.details() or "")
        assert ("retry-after", "1") in (refused.value.trailing_metadata() or ())
    assert stub.GetEnterpriseStatus(
        pb.GetEnterpriseStatusRequest(enterprise_id=uscc(1, GROUPED)), timeout=30
    ).profile.enterprise_id


def test_a_follower_past_its_deadline_is_logged_cancelled_not_ok(
    built: tuple[Any, RulesServiceStub],
) -> None:
    """Review 39 N5: the line of a WatchChanges that ended because its caller's deadline
    passed says so."""
    _, stub = built
    _register(stub)
    with structlog.testing.capture_logs() as logged:
        with pytest.raises(grpc.RpcError) as ended:
            list(stub.WatchChanges(pb.WatchChangesRequest(), timeout=3))
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        _wait_until(lambda: any(e["event"] == "rpc" for e in logged), "the call's line")
    (line,) = [e for e in logged if e["event"] == "rpc"]
    assert line["status"] == "CANCELLED" and line["messages_sent"] > 0


def _handler_ended(monkeypatch: Any) -> threading.Event:
    """Set when a stream's handler ends: it stops its reader last (`_event_stream`'s
    `finally`; no drain in these tests, which would stop it earlier too)."""
    ended, real_stop = threading.Event(), ReadAhead.stop

    def stop(self: ReadAhead[Any]) -> None:
        real_stop(self)
        ended.set()

    monkeypatch.setattr(ReadAhead, "stop", stop)
    return ended


def test_a_stream_cancelled_during_a_group_applies_that_group_and_no_event_after_it(
    stub: RulesServiceStub, db_engine: Engine, monkeypatch: Any
) -> None:
    """Review 40 N1: the caller cancels while its first group is being written and two
    more events wait in the buffer. The group being written still commits (unanswered: a
    resend of its event_id is a replay); the events waiting are never applied."""
    _register(stub)
    hold, ended = _FirstGroupHeld().install(monkeypatch), _handler_ended(monkeypatch)
    call, more = hold.opened(stub, "x")
    reader = hold.readers[0]
    call.cancel()
    _wait_until(lambda: reader._ended, "the reader seeing the cancelled call")
    hold.release.set()
    more.put(None)
    assert hold.applied.wait(30)
    assert ended.wait(30)  # the handler's last step: nothing is taken after it
    assert hold.groups == [1]
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-x1"]


def test_events_taken_as_the_call_is_cancelled_are_not_applied(
    stub: RulesServiceStub, db_engine: Engine, monkeypatch: Any
) -> None:
    """The handler waits for the next event; it arrives as the caller cancels, so the
    wait returns it to a call that has ended. It is dropped, not applied unanswered (the
    caller, having cancelled, does not know it was sent)."""
    _register(stub)
    takes, real_take = [0], ReadAhead.take

    def take(self: ReadAhead[Any], most: int, active: Any = lambda: True) -> list[Any]:
        got = real_take(self, most, active)
        takes[0] += 1
        if takes[0] == 2:  # y2 taken: hand it back only once the call has ended
            _wait_until(lambda: not active(), "the call seen cancelled")
        return got

    monkeypatch.setattr(ReadAhead, "take", take)
    ended = _handler_ended(monkeypatch)
    more, requests = _fed()
    call = stub.ReportEventStream(requests, timeout=120)
    more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(1, "y1"))))
    assert next(call).HasField("status")
    more.put(pb.ReportEventRequest(event=_as(GROUPED, complaint(2, "y2"))))
    _wait_until(lambda: takes[0] >= 2, "y2 taken")
    call.cancel()
    more.put(None)
    assert ended.wait(30)
    assert [e["event_id"] for e in _events(db_engine, GROUPED)] == ["-y1"]
