"""Faults the tests control: a TCP proxy in front of PostgreSQL that can pass bytes,
stall (connections stay open, nothing flows: a partition or a stuck server), reset every
open connection, or go down (every connection closed, new ones refused), and come back."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text


class TcpProxy:
    """127.0.0.1:<port> → target. `stall()`, `down()`, `up()`; `close()` ends it."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._listener: socket.socket | None = None
        self.port = self._listen(port)

    # -- control

    def stall(self) -> None:
        """Keep every connection open and accept new ones, but move no bytes."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def down(self) -> None:
        """Close every connection and stop listening: connecting is refused."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def reset(self) -> None:
        """Reset every open connection (RST, as a peer that crashed or a middlebox that
        dropped them), and go on accepting new ones."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def up(self) -> None:
        """Listen again on the same port, bytes flowing."""
        self._flowing.set()
        if self._listener is None:
            deadline = time.monotonic() + 30
            while True:
                try:
                    self._listen(self.port)
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.down()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- plumbing

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return int(listener.getsockname()[1])

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        pair = {a: b, b: a}
        try:
            while not self._closed:
                self._flowing.wait()
                ready, _, _ = select.select(list(pair), [], [], 0.1)
                for sock in ready:
                    if not self._flowing.is_set():
                        break  # stalled between select and read: hold the bytes
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):  # ValueError: reset() closed a socket under select
            return
        finally:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets.difference_update(pair)


@contextlib.contextmanager
def pg_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def through(url: str, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    head, _, rest = url.partition("@")
    _, _, database = rest.partition("/")
    return f"{head}@{proxy.url_host}/{database}"


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes
    (AssertionError). Never asserts how long it took."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
