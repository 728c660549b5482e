"""`evaluate FILE --server`: a file of any size through EvaluateBatch, in constant memory.

BATCH profiles a message, sent round-robin over CHANNELS connections (so the processes
of `serve --processes N` share them), IN_FLIGHT messages ahead of the one whose
decisions are being printed: at most IN_FLIGHT + 1 batches are held, whatever the
file's size. Results come back in file order. A call the server's rate limit refuses is
retried after the wait it names (RetryInfo or `retry-after`), up to RETRY_ATTEMPTS.

Per profile the client's CPU is what bounds a large file on a small machine, so a plain
profile is turned into the request's constructor arguments (`batch_json.request_fields`)
and protobuf's C code builds the whole batch in one call; anything unusual is built by
`convert.profile_from_json` (same message, tested), whose errors answer that line
locally without sending it.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterator
from time import sleep
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.rules.entrypoints import batch_json, convert

BATCH = 500  # profiles per EvaluateBatch message
IN_FLIGHT = 3  # batches sent ahead of the one being printed: memory stays constant
CHANNELS = 4  # connections, batches round-robin: `serve --processes N` spreads connections
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
    channels = [
        grpc.insecure_channel(server, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    stubs = itertools.cycle([rules_pb2_grpc.RulesServiceStub(c) for c in channels])
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    pending: collections.deque[tuple[Any, list[Item], Any, Any]] = collections.deque()
    try:
        for chunk in _chunks(profiles, as_of):
            stub, batch = next(stubs), _batch(chunk)
            pending.append((stub, chunk, batch, _send(stub, batch, metadata)))
            if len(pending) > IN_FLIGHT:
                yield _receive(*pending.popleft(), metadata)
        while pending:
            yield _receive(*pending.popleft(), metadata)
    finally:
        for channel in channels:
            channel.close()


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
    """The chunk's decisions in order, waiting out RESOURCE_EXHAUSTED as the server says."""
    decisions: list[pb.Decision] = []
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            decisions = list(future.result().decisions) if future is not None else []
            break
        except grpc.RpcError as exc:
            wait = retry_delay(exc, attempt)
            if wait is None:
                failed = pb.Decision(error=status(exc.code(), exc.details() or ""))
                decisions = [failed] * len(chunk)
                break
            sleep(wait)
            future = _send(stub, batch, metadata)
    answers = iter(decisions)
    return [(i.where, i.data, next(answers) if i.request is not None else i.answer) for i in chunk]


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
