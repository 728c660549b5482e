"""`evaluate FILE --server`: a file of any size through EvaluateBatch, in constant memory.

BATCH profiles a message over CHANNELS connections, each carrying one batch at a time
and given the next as soon as its answer is in (so the processes of `serve --processes
N`, which the kernel hands the connections to at random, each get what their core gets
through); at most WINDOW batches are held, whatever the file's size, and results come
back in file order. A call the server's rate limit refuses is retried after the wait it
names (RetryInfo or `retry-after`), up to RETRY_ATTEMPTS. A bad profile is its own line's
rejection: the server answers it in the batch (the item's `error`); a server that
refuses the whole batch naming items (`items[2].profile.name`) gets the other lines sent
again. Only an error of the call itself (a token, a server gone) is every line's.

Per profile the client's CPU is what bounds a large file on a small machine, so a plain
profile is turned into the request's constructor arguments (`batch_json.request_fields`)
and protobuf's C code builds the whole batch in one call; anything unusual is built by
`convert.profile_from_json` (same message, tested), whose errors answer that line
locally without sending it.
"""

from __future__ import annotations

import collections
import math
import queue
import re
from collections.abc import Iterator
from time import sleep
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.errors import FieldViolation, ValidationError
from services.common.grpc_errors import status_proto
from services.common.server import MAX_ANSWER_BYTES, MAX_MESSAGE_BYTES
from services.rules.entrypoints import batch_json, convert

BATCH = 500  # profiles per EvaluateBatch message
CHANNELS = 8  # connections, one batch each at a time: `serve --processes N` shares them
WINDOW = 16  # batches held at most (sent, or answered and not yet printed)
RETRY_ATTEMPTS = 8
MAX_RETRY_WAIT = 60.0


class Unreadable:
    """A line of the file that is not JSON, and why."""

    def __init__(self, why: str) -> None:
        self.why = why


class Item:
    """One line of the file on its way through EvaluateBatch."""

    __slots__ = ("answer", "data", "request", "where")

    def __init__(self, where: int, data: Any, request: Any = None, answer: Any = None) -> None:
        self.where = where  # line number
        self.data = data  # the profile as read
        self.request = request  # EvaluateRequest or its constructor arguments; None: not sent
        self.answer: pb.Decision | None = answer  # its decision, or why it was not sent


Result = tuple[int, Any, "pb.Decision | None"]


def remote_batches(
    profiles: Iterator[tuple[int, Any]], server: str, token: str, as_of: str
) -> Iterator[list[Result]]:
    """(line, profile, decision) for every line, a batch at a time, in file order; the
    decision is None for a line that is not JSON."""
    # one connection each (no shared subchannel), so the kernel can hand each to another
    # server process of `serve --processes N`
    # and answers as large as the server may send (a batch of firms with many findings
    # is several times grpc's default 4 MB)
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    channels = [grpc.insecure_channel(server, options=options) for _ in range(CHANNELS)]
    try:
        stubs = [rules_pb2_grpc.RulesServiceStub(c) for c in channels]
        yield from _Dispatch(stubs, token).run(_chunks(profiles, as_of))
    finally:
        for channel in channels:
            channel.close()


class _Call:
    """A batch on its way: its lines, its message (kept for a retry), the call."""

    __slots__ = ("batch", "chunk", "future", "stub")

    def __init__(self, stub: Any, chunk: list[Item], batch: Any, future: Any) -> None:
        self.stub, self.chunk, self.batch, self.future = stub, chunk, batch, future


class _Dispatch:
    """Each connection carries one batch at a time and gets the next as soon as its
    answer is in, so a server process that holds more of the connections (the kernel
    spreads them at random) gets no more work than its core gets through; at most
    WINDOW batches are held, sent or answered but not yet printed, printed in order."""

    def __init__(self, stubs: list[Any], token: str) -> None:
        self.stubs = stubs
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.idle = list(range(len(stubs)))  # connections without a batch
        self.answered: queue.SimpleQueue[int] = queue.SimpleQueue()  # from grpc's threads
        self.window: collections.deque[_Call] = collections.deque()

    def run(self, chunks: Iterator[list[Item]]) -> Iterator[list[Result]]:
        more = True
        while True:
            while more and self.idle and len(self.window) < WINDOW:
                chunk = next(chunks, None)
                if chunk is None:
                    more = False
                else:
                    self.window.append(self._send(chunk))
            self._collect(block=False)
            if not self.window:
                return
            head = self.window[0]
            if head.future is None or head.future.done():
                self.window.popleft()
                yield _receive(head.stub, head.chunk, head.batch, head.future, self.metadata)
            else:
                self._collect(block=True)

    def _send(self, chunk: list[Item]) -> _Call:
        index = self.idle.pop()
        stub, batch = self.stubs[index], _batch(chunk)
        future = _send(stub, batch, self.metadata)
        if future is None:
            self.idle.append(index)  # nothing to send: the connection stays free
        else:
            future.add_done_callback(lambda _: self.answered.put(index))
        return _Call(stub, chunk, batch, future)

    def _collect(self, *, block: bool) -> None:
        """Connections whose batch is answered are free again."""
        if block:
            self.idle.append(self.answered.get())
        while True:
            try:
                self.idle.append(self.answered.get_nowait())
            except queue.Empty:
                return


def _chunks(profiles: Iterator[tuple[int, Any]], as_of: str) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for where, data in profiles:
        chunk.append(_item(where, data, as_of))
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _item(where: int, data: Any, as_of: str) -> Item:
    if isinstance(data, Unreadable):
        return Item(where, data)  # printed as not valid JSON
    fields = batch_json.request_fields(data)
    if fields is not None:
        return Item(where, data, {"profile": fields, "as_of": as_of})
    return _slow_item(where, data, as_of)


def _slow_item(where: int, data: Any, as_of: str) -> Item:
    """The profile built by convert.profile_from_json, or the line answered here."""
    request = pb.EvaluateRequest(as_of=as_of)
    try:
        request.profile.CopyFrom(convert.profile_from_json(data))
    except Exception as exc:
        refused = pb.Decision(
            enterprise_id=str(_get(data, "enterprise_id")),
            error=status(grpc.StatusCode.INVALID_ARGUMENT, str(exc)[:200]),
        )
        return Item(where, data, answer=refused)
    return Item(where, data, request)


def _batch(chunk: list[Item]) -> pb.EvaluateBatchRequest | None:
    """The chunk's EvaluateBatch message, built by protobuf in one call; None when no line
    of it is to be sent."""
    items = [i.request for i in chunk if i.request is not None]
    if not items:
        return None
    try:
        return pb.EvaluateBatchRequest(items=items)
    except (TypeError, ValueError):  # text protobuf refuses (not valid Unicode, say)
        for index, item in enumerate(chunk):
            if isinstance(item.request, dict):
                try:
                    pb.EvaluateRequest(**item.request)
                except (TypeError, ValueError):
                    chunk[index] = _slow_item(item.where, item.data, item.request["as_of"])
        items = [i.request for i in chunk if i.request is not None]
        return pb.EvaluateBatchRequest(items=items) if items else None


def _send(stub: Any, batch: pb.EvaluateBatchRequest | None, metadata: Any) -> Any:
    if batch is None:
        return None
    return stub.EvaluateBatch.future(batch, timeout=120, metadata=metadata)


def _receive(stub: Any, chunk: list[Item], batch: Any, future: Any, metadata: Any) -> list[Result]:
    """The chunk's decisions in order."""
    answers = iter(_answers(stub, batch, future, metadata))
    return [(i.where, i.data, next(answers) if i.request is not None else i.answer) for i in chunk]


def _answers(stub: Any, batch: Any, future: Any, metadata: Any) -> list[pb.Decision]:
    """One Decision per item of `batch` (the call `future` carries), waiting out
    RESOURCE_EXHAUSTED as the server says."""
    if future is None:
        return []
    attempt = 1
    while True:  # retry_delay answers None from attempt RETRY_ATTEMPTS on
        try:
            return list(future.result().decisions)
        except grpc.RpcError as exc:
            wait = retry_delay(exc, attempt)
            if wait is None:
                return _refused(stub, batch, exc, metadata)
            sleep(wait)
            attempt += 1
            future = _send(stub, batch, metadata)


def _refused(stub: Any, batch: Any, error: grpc.RpcError, metadata: Any) -> list[pb.Decision]:
    """The answers of a batch the server refused as a whole. An error of the call (a bad
    token, a message too large, a server gone) is every item's. An INVALID_ARGUMENT
    whose every field is an item's (`items[2].profile.name`: a server that checks a
    batch's text as a whole, as before EvaluateBatch checked each item) is those items'
    alone: each gets its own violations, and the others are sent again."""
    own = _item_errors(error, batch)
    if not own:
        return [pb.Decision(error=status(error.code(), error.details() or ""))] * len(batch.items)
    rest = [k for k in range(len(batch.items)) if k not in own]
    again = pb.EvaluateBatchRequest(items=[batch.items[k] for k in rest]) if rest else None
    answers = iter(_answers(stub, again, _send(stub, again, metadata), metadata))
    return [own[k] if k in own else next(answers) for k in range(len(batch.items))]


_ITEM_FIELD = re.compile(r"items\[(\d+)\]\.(.+)", re.DOTALL)


def _item_errors(error: grpc.RpcError, batch: Any) -> dict[int, pb.Decision]:
    """{item index: its Decision with its error} when `error` is INVALID_ARGUMENT and
    every field it names is an item's; {} otherwise."""
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return {}
    try:
        found = rpc_status.from_call(error)
    except ValueError:
        return {}
    by_item: dict[int, list[FieldViolation]] = {}
    for detail in found.details if found is not None else ():
        bad = error_details_pb2.BadRequest()
        if not detail.Unpack(bad):
            continue
        for violation in bad.field_violations:
            match = _ITEM_FIELD.fullmatch(violation.field)
            if match is None or int(match[1]) >= len(batch.items):
                return {}
            field = FieldViolation(match[2], violation.description)
            by_item.setdefault(int(match[1]), []).append(field)
    return {
        k: pb.Decision(
            request_id=batch.items[k].request_id,
            enterprise_id=batch.items[k].profile.enterprise_id,
            error=status_proto(ValidationError(fields)),
        )
        for k, fields in by_item.items()
    }


def retry_delay(error: grpc.RpcError, attempt: int) -> float | None:
    """Seconds to wait before retrying a refused call, or None when it is an answer.

    RESOURCE_EXHAUSTED from the server's rate limit carries when to come back: a
    google.rpc.RetryInfo detail, or the `retry-after` trailer (seconds). Without that
    hint (a message too large, say) retrying cannot help. `attempt` counts from 1."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or attempt >= RETRY_ATTEMPTS:
        return None
    hint = _retry_info(error)
    if hint is None:
        trailers = dict(error.trailing_metadata() or ())
        try:
            hint = float(trailers.get("retry-after", ""))
        except ValueError:
            hint = None
    if hint is not None and not math.isfinite(hint):
        hint = None
    return min(MAX_RETRY_WAIT, max(0.0, hint)) if hint is not None else None


def _retry_info(error: grpc.RpcError) -> float | None:
    try:
        found = rpc_status.from_call(error)
    except ValueError:
        return None
    for detail in found.details if found is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def _get(data: Any, key: str) -> Any:
    return data.get(key, "") if isinstance(data, dict) else ""


def status(code: grpc.StatusCode, message: str) -> Any:
    return status_pb2.Status(code=code.value[0], message=message)
