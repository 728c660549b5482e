"""structlog set-up, called once per entry point: JSON lines when not on a terminal.

Secrets never reach a log line: the `redact` processor masks bearer tokens, QR tokens
and mainland mobile numbers wherever they appear in an event's values, the formatted
traceback included (it runs after `format_exc_info`); stdlib log records (uvicorn's,
SQLAlchemy's) go through the same masking (`MaskingFormatter`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import select
import sys
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog

from services.common.processes import LOG_LOCK, PARENT_PID

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_SECRET_KEYS = {"token", "authorization", "qr_token", "secret", "password", "contact_phone"}


def mask(text: str) -> str:
    """`text` with bearer tokens and mobile numbers masked."""
    return _PHONE.sub(r"\1****\3", _BEARER.sub(r"\1***", text))


class MaskingFormatter(logging.Formatter):
    """A stdlib formatter whose output (message and traceback) is masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask tokens and phone numbers in every string value of a log event."""
    for key, value in list(event.items()):
        if key in _SECRET_KEYS and value:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = mask(value)
    return event


class _SparingLogger(structlog.PrintLogger):
    """structlog's PrintLogger, except that a line it cannot write is dropped: a log
    line must never fail what it reports. stderr may be a pipe whose reader died (a log
    shipper, journald restarting) or a closed file; the write then raises, and raising
    from an RPC's log line (written as the call ends) answered UNKNOWN for a call whose
    write had committed, which its client would then retry (review 41 F2)."""

    def msg(self, message: str) -> None:
        # OSError: EPIPE and friends; ValueError: "I/O operation on closed file"
        with contextlib.suppress(OSError, ValueError), self._lock, _between_processes(message):
            # the line and its end in one write: `print` wrote them apart, and the
            # processes of `serve --processes N` share one stderr, so two lines came out
            # run together on one line and an end of line on its own
            self._file.write(message + "\n")
            self._file.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


# A write of at most PIPE_BUF bytes to a pipe is atomic; a longer one (a traceback, a
# long value) may be split and interleaved with another process's writes to the same
# pipe (review 50 N4). A character is at most 3 bytes in the BMP, 4 beyond: lines
# longer than this many characters may exceed PIPE_BUF.
_ATOMIC_CHARS = select.PIPE_BUF // 4 - 1


@contextlib.contextmanager
def _between_processes(message: str) -> Iterator[None]:
    """Hold the process set's log lock (`processes.LOG_LOCK`, an flock on a file each
    process opens itself) while a line that may exceed PIPE_BUF is written, so the
    processes of `serve --processes N`, which share one stderr, never interleave it
    with theirs. Short lines, and a process not in such a set, take no lock; a lock
    that cannot be taken does not keep the line from being written."""
    path = os.environ.get(LOG_LOCK) if len(message) > _ATOMIC_CHARS else None
    if not path:
        yield
        return
    with _LOCK_FILES_LOCK:  # a descriptor replaced is closed: never one in use
        handle = _lock_file(path)
        if handle is None:
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)


_LOCK_FILES_LOCK = threading.Lock()
_lock_files: dict[str, int] = {}  # path: this process's descriptor of it


def _lock_file(path: str) -> int | None:
    """This process's own descriptor of the lock file (flock locks belong to an open
    file description: one inherited from the parent would be shared, not exclusive),
    kept while it is still the file at `path`. A lock file removed (a /tmp cleaner) or
    replaced while the process serves is created again and opened anew: a descriptor
    of the removed file locked nothing the set's other processes lock, and a file
    missing once was not missing for good. None when it cannot be opened now (a later
    line tries again). Called under _LOCK_FILES_LOCK."""
    kept = _lock_files.get(path)
    if kept is not None:
        try:
            here, held = os.stat(path), os.fstat(kept)
            if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                return kept
        except OSError:
            pass
        del _lock_files[path]
        with contextlib.suppress(OSError):
            os.close(kept)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    _lock_files[path] = handle
    return handle


def _stderr_logger(*_args: Any) -> _SparingLogger:
    """A logger printing to the sys.stderr of the moment (made for each line: logger
    caching is off), so that one replaced after `configure` is the one written to; to
    nowhere when the process has none (a daemon started `2>&-`: sys.stderr is None, and
    structlog would fall back to a stdout that may be None too, review 50 N5)."""
    return _SparingLogger(sys.stderr if sys.stderr is not None else _nowhere())


@functools.cache
def _nowhere() -> Any:
    return open(os.devnull, "w", encoding="utf-8")  # kept for the process's life


def _with_pid(pid: int) -> Any:
    def add(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["pid"] = pid
        return event

    return add


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog and stdlib logging once; JSON unless stderr is a terminal."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # a child of `serve --processes N` names itself: its lines and its siblings' are
    # otherwise alike (review 49 N2); processes.py sets PARENT_PID for its children
    child: list[Any] = [_with_pid(os.getpid())] if os.environ.get(PARENT_PID) else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *child,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # before redact: tracebacks are masked
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter("%(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.WARNING)
