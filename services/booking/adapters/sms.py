"""SMS backends for the firm's sign-in codes (the SmsSender port, service_layer/ports.py).

- `ConsoleSms` (the default, for development and `make run`): writes the message to the
  server log with the phone masked, so a developer reads the code there.
- `MemorySms` (tests): keeps every message in a list, sends nothing.
- `BackgroundSms`: wraps another backend and sends on a worker thread, so a request never
  waits on the gateway: the firm's own number is answered as fast as an unknown one,
  and a gateway's failure is logged (number masked), never returned. The service wraps
  its backend in it (entrypoints/cli.py).

A real gateway is one more class with the same method, `send(phone, text)`, raising
`SmsFailed` when the gateway refuses or cannot be reached; it is configured by flags and
environment variables (e.g. `--sms-gateway URL`, `BOOKING_SMS_GATEWAY`, with its
credentials in `BOOKING_SMS_KEY`) and chosen in entrypoints/cli.py. Nothing here opens a
network connection.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from services.booking.domain.orders import mask_phone
from services.booking.service_layer.ports import SmsFailed, SmsSender

__all__ = ["BackgroundSms", "ConsoleSms", "MemorySms", "SmsFailed"]

_log = structlog.get_logger("sms")


class ConsoleSms:
    """Writes each message to the log (phone masked): development only."""

    def send(self, phone: str, text: str) -> None:
        _log.warning("sms (console backend: not sent)", phone=mask_phone(phone), text=text)


@dataclass
class MemorySms:
    """Keeps the messages (phone, text) for tests."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, phone: str, text: str) -> None:
        with self._lock:
            self.sent.append((phone, text))

    def last_code(self, phone: str) -> str:
        """The 6 digits of the newest message to `phone`."""
        with self._lock:
            texts = [t for p, t in self.sent if p == phone]
        if not texts:
            raise LookupError("no message to that phone")
        return "".join(ch for ch in texts[-1] if ch.isdigit())[:6]


class BackgroundSms:
    """Sends through `inner` on one worker thread; `send` returns at once."""

    def __init__(self, inner: SmsSender) -> None:
        self.inner = inner
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sms")

    def send(self, phone: str, text: str) -> None:
        self.submit(phone, text)

    def submit(self, phone: str, text: str) -> Future[None]:
        return self._pool.submit(self._deliver, phone, text)

    def _deliver(self, phone: str, text: str) -> None:
        try:
            self.inner.send(phone, text)
        except Exception as exc:  # SmsFailed or a gateway's bug: logged, never raised
            _log.error(
                "sign-in code not sent: the SMS backend failed",
                phone=mask_phone(phone),
                error_type=type(exc).__name__,
                error=str(exc)[:200] if isinstance(exc, SmsFailed) else "",
            )
