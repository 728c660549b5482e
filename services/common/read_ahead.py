"""Read a request stream ahead on a thread of its own, into a bounded buffer, so that a
handler can take every request already waiting at once (ReportEventStream applies them
as one group) while the next ones arrive.

The buffer holds at most `capacity` requests: when it is full the reader stops reading,
gRPC stops acknowledging the client's messages, and flow control holds the client back;
nothing is buffered without limit. `admit()`, when given, is asked before each request
after the first is taken into the buffer: it returns 0 to go on or the seconds to wait
first (the caller's rate limit), so a caller past its rate is held back the same way.

The reader ends when the stream ends (the client half-closed it), when reading fails (a
cancelled call or a passed deadline: the request iterator raises), or when `stop()` is
called (the handler ended first); it never outlives the call by more than its poll
interval.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
POLL = 0.1  # seconds: how often a waiting reader looks whether the handler stopped


class ReadAhead(Generic[T]):
    """`take(n)`: the requests waiting (at least one, at most `n`); [] once the stream
    has ended and every request was taken; raises what failed the reading."""

    def __init__(
        self,
        requests: Iterator[T],
        capacity: int,
        admit: Callable[[], float] | None = None,
        name: str = "read-ahead",
    ) -> None:
        self._requests = requests
        self._capacity = max(1, capacity)
        self._admit = admit
        self._buffer: deque[T] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self._error: BaseException | None = None
        self._stopped = False
        self._closed = False  # the client half-closed the stream and every request was read
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def take(self, most: int, active: Callable[[], bool] = lambda: True) -> list[T]:
        """Wait for a request (or the end), then take up to `most` of those waiting.
        Returns [] at the end of the stream, or as soon as `active()` turns false."""
        with self._cond:
            while not self._buffer and not self._ended:
                if not active():
                    return []
                self._cond.wait(POLL)
            if not self._buffer and self._error is not None:
                raise self._error
            taken = [self._buffer.popleft() for _ in range(min(most, len(self._buffer)))]
            self._cond.notify_all()  # room again for the reader
            return taken

    def stop(self) -> None:
        """The handler is done: the reader stops at its next look (it may be blocked in
        the request iterator until the call itself ends, which gRPC ends with the
        handler)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def closed_by_client(self) -> bool:
        """Whether the client half-closed the stream and the reader read it to its end
        without failing: every request sent is in the buffer or was taken (a request
        that came after `stop()` makes the reader return at once, so this stays False)."""
        with self._cond:
            return self._closed

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reader thread to end; whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _read(self) -> None:
        first = True
        try:
            for request in self._requests:
                if not first and not self._admitted():
                    return
                first = False
                with self._cond:
                    while len(self._buffer) >= self._capacity and not self._stopped:
                        self._cond.wait(POLL)
                    if self._stopped:
                        return
                    self._buffer.append(request)
                    self._cond.notify_all()
            with self._cond:
                self._closed = True
        except BaseException as exc:  # cancelled, past the deadline, a malformed message
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _admitted(self) -> bool:
        """Wait until `admit()` lets the next request in; False when stopped meanwhile."""
        if self._admit is None:
            return True
        while (wait := self._admit()) > 0:
            with self._cond:
                if self._stopped:
                    return False
                self._cond.wait(min(wait, POLL))
        return not self._stopped
