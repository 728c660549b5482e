"""The expert's visit form as it arrives, none of it held whole (review 48 N1, N2).

Starlette's form parser, which the page used, kept every file of up to 1 MB in memory
(it spools to disk only past that), any larger one whole on disk, and every text field
up to the part limit it was given (6 MB, meant for the photos); the page then read each
visit's photos into memory, up to 100 MB a visit, for as many visits as were sent at
once. Here (`receive_visit_form`):

- a text field is kept in memory up to TEXT_PART_LIMIT (past it: VISIT_FIELD_TOO_LONG
  beside it and for the form, the rest of it dropped as it arrives); at most MAX_FIELDS,
  each part's headers at most HEADER_LIMIT;
- a photo (a file part; at most MAX_FINDINGS of them) is written to a file of its own in
  a temporary directory as its bytes arrive; writing stops past MAX_PHOTO_BYTES (the
  rest is only counted: the use case refuses it beside its field, PHOTO_TOO_LARGE, with
  every other error of the form), past the visit's MAX_VISIT_PHOTO_BYTES
  (VISIT_PHOTO_OVER_TOTAL beside it), and when the photos on disk of every visit being
  sent to this process would pass `UploadLimits.spool_bytes` (VISIT_SPOOL_FULL beside
  it); what a refused photo had written is deleted at once;
- the directory goes when the request has been answered.

The use case reads each photo from its file only to write it (domain/photos.py `Upload`),
and `Uploads.writing` lets `UploadLimits.writers` visits write theirs at once: one more
waits for a slot, on the event loop (no thread is held while it waits), up to
`UploadLimits.wait` seconds, then gets the form back as typed, asked to send it again.
What a process holds for visit photos is then about `writers` photos in memory and
`spool_bytes` on disk, however many experts send at once; the other pages are served
all the while. A form posted urlencoded (no photos: only a crafted or scripted one) is
read by Starlette, each field within TEXT_PART_LIMIT.

The firm's proof form (one photo and a note) is received the same way, within the same
spool room and writer slots (web/pages.py `_proof_received`; review 66), its own body
limit (6 MB + 64 KB) unchanged.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import structlog
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from services.booking.domain import messages
from services.booking.domain.findings import MAX_FINDINGS, MAX_TEXT, MAX_VISIT_PHOTO_BYTES
from services.booking.domain.photos import HEAD_BYTES, MAX_PHOTO_BYTES, Upload
from services.booking.entrypoints.web.middleware import BodyPace, form_part_limit, typed

_log = structlog.get_logger("web")
MB = 1024 * 1024
MAX_FIELDS = 400  # eight a finding block, fifty blocks, and the form's own
TEXT_PART_LIMIT = form_part_limit(MAX_TEXT)  # a description of 1000 characters and more
HEADER_LIMIT = 8 * 1024  # a part's header lines together
WAIT_STEP = 0.05  # seconds between two looks for a free writer's slot
BUSY_RETRY_AFTER = 30  # seconds, with the 503 of a form no writer's slot took


@dataclass(frozen=True)
class UploadLimits:
    """What a web process gives the expert's visit photos (docs/booking.md "Limits")."""

    writers: int = 4  # visits writing their photos to the database at once
    wait: float = 60.0  # seconds one more waits for a slot before it is told to resend
    # photos of the visits being sent, on disk at once: ten visits of the full 100 MB
    spool_bytes: int = 10 * MAX_VISIT_PHOTO_BYTES
    directory: str | None = None  # where they are spooled; None: the system's temp dir
    # how slowly any request body may arrive before it is cut, 408, its spool room given
    # back (web/middleware.py: the web server has no read timeout of its own)
    pace: BodyPace = field(default_factory=BodyPace)


class Uploads:
    """One per web app: the visit photos on disk and the visits writing theirs, counted
    (thread-safe: a test, or another server in the process, may take a slot too).

    Its photos are spooled in a directory of its own under `limits.directory`
    (`OwnSpool`), made when it is: stale ones other processes left there are swept
    first."""

    def __init__(self, limits: UploadLimits | None = None) -> None:
        self.limits = limits or UploadLimits()
        self._lock = threading.Lock()
        self._spooled = 0
        self._writing = 0
        self._own = OwnSpool(self.limits.directory)

    @property
    def spool(self) -> Path:
        """The directory this app's visits spool their photos in (one each, inside);
        made again should something have removed it (a TMPDIR cleaner)."""
        with self._lock:
            if not self._own.path.is_dir():
                _log.warning(
                    "visit photo spool directory gone: made again", root=str(self._own.root)
                )
                self._own.close()
                self._own = OwnSpool(self.limits.directory)
            return self._own.path

    def reserve(self, size: int) -> bool:
        """Take `size` bytes of the spool's room; False (nothing taken) when it has not
        that much left."""
        with self._lock:
            if self._spooled + size > self.limits.spool_bytes:
                return False
            self._spooled += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._spooled -= size

    def try_write(self) -> bool:
        """Take a writer's slot if one is free."""
        with self._lock:
            if self._writing >= self.limits.writers:
                return False
            self._writing += 1
            return True

    def written(self) -> None:
        """Give a writer's slot back."""
        with self._lock:
            self._writing -= 1

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[bool]:
        """Whether a writer's slot was had within `limits.wait` seconds; held until the
        block ends."""
        deadline = time.monotonic() + self.limits.wait
        while not self.try_write():
            if time.monotonic() >= deadline:
                yield False
                return
            await anyio.sleep(WAIT_STEP)
        try:
            yield True
        finally:
            self.written()


SPOOL_PREFIX = "booking-visits-"  # a process's own spool directory, under the root
OWNER_LOCK = ".owner"  # in it: flocked while its process lives
_LEGACY = re.compile(r"visit-[a-z0-9_]{8}")  # a visit's directory right under the root
_LEGACY_FILE = re.compile(r"[0-9]+\.photo")
LEGACY_AGE = 3600.0  # seconds untouched before such a directory is taken as left behind
UNLOCKED_AGE = 60.0  # the same for a process directory without its lock file


class OwnSpool:
    """A web process's own directory for its visits' photos, under the spool root (the
    `--visit-photo-spool-mb` room's `directory`, else TMPDIR), removed when its owner
    is collected or the process exits.

    A process killed mid-upload (an OOM kill, kill -9, power lost) removes nothing, and
    left its visits' photos (personal data) for good (review 60 F5). Several processes
    may share the root (replicas on one host, a restart while the old process drains),
    so each holds an exclusive flock on its directory's OWNER_LOCK for as long as it
    lives; the kernel releases it however the process ends. When a process starts, it
    removes every process directory whose lock it can take (`sweep_stale`): its owner is
    gone; a live one's lock cannot be taken. A directory on a network file system needs
    its locks to work across hosts (NFS with lockd does); a root shared by hosts whose
    locks do not meet must not be shared."""

    def __init__(self, root: str | None) -> None:
        self.root = Path(root or tempfile.gettempdir())
        sweep_stale(self.root)
        self.path = Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=self.root))
        # locked under another name, then renamed: a sweep never finds it unlocked
        making = self.path / (OWNER_LOCK + "-new")
        owner = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new: nobody else has it
        making.rename(self.path / OWNER_LOCK)
        self._done = weakref.finalize(self, _remove_own, self.path, owner)

    def close(self) -> None:
        """The directory removed now, its lock released (also at the process's exit)."""
        self._done()


def _remove_own(path: Path, owner: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.close(owner)


def sweep_stale(root: Path) -> int:
    """Remove what processes that no longer run left under the spool root: each process
    directory whose owner's lock can be taken (or that never got its lock file, past
    UNLOCKED_AGE), and a visit's directory of the layout before process directories
    (`visit-XXXXXXXX` right under the root, holding nothing but `N.photo` files)
    untouched for LEGACY_AGE. Each is logged; the number removed is returned."""
    removed = 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0  # no root: making the process's own directory says so, with its name
    for path in entries:
        if path.is_symlink() or not path.is_dir():
            continue
        if path.name.startswith(SPOOL_PREFIX):
            with _owner_gone(path) as gone:  # removed with its lock held
                removed += _remove(path) if gone else 0
        elif _LEGACY.fullmatch(path.name) and _left_behind(path):
            removed += _remove(path)
    return removed


def _remove(path: Path) -> int:
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    shutil.rmtree(path, ignore_errors=True)
    _log.warning(
        "visit photos left by a process that no longer runs removed",
        directory=str(path),
        bytes=size,
    )
    return 1


@contextmanager
def _owner_gone(path: Path) -> Iterator[bool]:
    """Whether the process that made `path` has ended: its lock can be taken, and is
    held until the block ends (two processes sweeping at once never both remove it)."""
    try:
        owner = os.open(path / OWNER_LOCK, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:  # made, its lock not yet (or never) created
        yield _untouched(path, UNLOCKED_AGE)
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False  # its process lives
        else:
            yield True
    finally:
        os.close(owner)


def _left_behind(path: Path) -> bool:
    try:
        names = [f.name for f in path.iterdir()]
    except OSError:
        return False
    ours = all(_LEGACY_FILE.fullmatch(n) for n in names)
    return ours and _untouched(path, LEGACY_AGE)


def _untouched(path: Path, seconds: float) -> bool:
    """Whether nothing in `path` (nor it) has changed for `seconds`."""
    try:
        newest = max([path.stat().st_mtime, *(f.stat().st_mtime for f in path.iterdir())])
    except OSError:
        return False
    return time.time() - newest >= seconds


class FormRefused(Exception):
    """A form the page never makes (malformed, too many parts, headers past their
    limit): it is not read further, and nothing of it is recorded."""


@dataclass
class VisitForm:
    """The visit form as received: its text fields in the order sent (without `csrf`),
    its photos by field, the errors found while receiving (by field; `_form`: the
    form's own), and the CSRF token it carried. A form cut off (the body too large,
    FormRefused) keeps what came before."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    photos: dict[str, Upload] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    empty: set[str] = field(default_factory=set)  # file fields whose chosen file had 0 bytes


@asynccontextmanager
async def receive_visit_form(
    request: Request, uploads: Uploads, form: VisitForm
) -> AsyncIterator[VisitForm]:
    """`form` filled from the request's body as it arrives; its photos' files exist until
    the block ends. Raises FormRefused, or the middleware's BodyTooLarge, with `form`
    holding what came before."""
    kind, _ = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        await _urlencoded(request, form)
        yield form
        return
    with tempfile.TemporaryDirectory(prefix="visit-", dir=uploads.spool) as where:
        spool = _Spool(Path(where), uploads, form)
        try:
            await spool.read(request)
            yield form
        finally:
            spool.close()


async def _urlencoded(request: Request, form: VisitForm) -> None:
    try:
        async with request.form(
            max_files=0, max_fields=MAX_FIELDS, max_part_size=TEXT_PART_LIMIT
        ) as sent:
            for key, value in sent.multi_items():
                _text(form, key, typed(value))
    except HTTPException as exc:
        raise FormRefused(str(exc.detail)) from exc


def _text(form: VisitForm, name: str, value: str) -> None:
    if name == "csrf":
        form.csrf = value
    else:
        form.fields.append((name, value))


def _never() -> bytes:
    raise RuntimeError("a photo refused for its size is not written")


@dataclass
class _Part:
    """The part being received."""

    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0
    disposition: bytes = b""
    name: str = ""
    is_file: bool = False
    named_file: bool = False  # a file was chosen (its filename not empty)
    text: bytearray = field(default_factory=bytearray)
    too_long: bool = False
    size: int = 0  # a photo's bytes as sent (also those past what is written)
    head: bytes = b""
    out: BinaryIO | None = None  # its file, from its first byte on
    path: Path | None = None
    reserved: int = 0  # bytes of the spool's room it holds
    refused: str = ""


class _Spool:
    """One multipart body parsed as it arrives (python_multipart's callbacks): text into
    the form, photos into files of `where`, within the limits the module describes."""

    def __init__(self, where: Path, uploads: Uploads, form: VisitForm) -> None:
        self.where, self.uploads, self.form = where, uploads, form
        self.charset = "utf-8"
        self.texts = 0  # text parts so far
        self.files = 0  # file parts so far
        self.kept = 0  # bytes of the photos taken so far (the visit's total)
        self.pending: list[tuple[BinaryIO, bytes]] = []  # to write, off the event loop
        self.opened: list[BinaryIO] = []
        self.reserved = 0  # bytes of the spool's room this body holds
        self.part = _Part()

    async def read(self, request: Request) -> None:
        _, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if not boundary:
            raise FormRefused("no boundary")
        with suppress(LookupError):
            self.charset = codecs.lookup(options.get(b"charset", b"utf-8").decode("latin-1")).name
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_header_field": partial(self._header, self._header_field),
            "on_header_value": partial(self._header, self._header_value),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        parser = MultipartParser(boundary, callbacks)
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                await self._flush()
            parser.finalize()
        except FormParserError as exc:
            raise FormRefused(str(exc)) from exc
        await self._flush()
        for out in self.opened:  # written through: each photo is read by a new handle
            out.close()

    async def _flush(self) -> None:
        if self.pending:
            writes, self.pending = self.pending, []
            await run_in_threadpool(_write_all, writes)

    def close(self) -> None:
        for out in self.opened:
            with suppress(OSError):
                out.close()
        self.uploads.release(self.reserved)
        self.reserved = 0

    # -- the parser's callbacks (synchronous: nothing here waits)

    def _begin(self) -> None:
        self.part = _Part()

    def _header_field(self) -> bytearray:
        return self.part.header_field

    def _header_value(self) -> bytearray:
        return self.part.header_value

    def _header(self, into: Callable[[], bytearray], data: bytes, start: int, end: int) -> None:
        self.part.header_bytes += end - start
        if self.part.header_bytes > HEADER_LIMIT:
            raise FormRefused("part headers too long")
        into().extend(data[start:end])

    def _header_end(self) -> None:
        part = self.part
        if bytes(part.header_field).lower() == b"content-disposition":
            part.disposition = bytes(part.header_value)
        part.header_field.clear()
        part.header_value.clear()

    def _headers_finished(self) -> None:
        part = self.part
        _, options = parse_options_header(part.disposition)
        if b"name" not in options:
            raise FormRefused("a part without a name")
        part.name = options[b"name"].decode(self.charset, "replace")
        part.is_file = b"filename" in options
        part.named_file = bool(options.get(b"filename"))
        if part.is_file:
            self.files += 1
            if self.files > MAX_FINDINGS:
                raise FormRefused("too many files")
        else:
            self.texts += 1
            if self.texts > MAX_FIELDS:
                raise FormRefused("too many fields")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if not part.is_file:
            if part.too_long:
                return
            if len(part.text) + (end - start) > TEXT_PART_LIMIT:
                part.too_long = True
                part.text = bytearray()
                return
            part.text.extend(data[start:end])
            return
        part.size += end - start
        if part.refused or part.size > MAX_PHOTO_BYTES:
            self._drop()  # refused, or too large: only counted from here on
            return
        if self.kept + part.size > MAX_VISIT_PHOTO_BYTES:
            total = MAX_VISIT_PHOTO_BYTES // MB
            self._refuse(messages.VISIT_PHOTO_OVER_TOTAL.format(total=total))
            return
        if not self.uploads.reserve(end - start):
            self._refuse(messages.VISIT_SPOOL_FULL)
            return
        part.reserved += end - start
        self.reserved += end - start
        chunk = data[start:end]
        if part.out is None:
            part.path = self.where / f"{self.files}.photo"
            part.out = part.path.open("wb")
            self.opened.append(part.out)
        if len(part.head) < HEAD_BYTES:
            part.head += chunk[: HEAD_BYTES - len(part.head)]
        self.pending.append((part.out, chunk))

    def _refuse(self, message: str) -> None:
        """The photo being received refused beside its field."""
        self.part.refused = message
        self.form.errors[self.part.name] = message
        self._drop()

    def _drop(self) -> None:
        """What the photo being received holds, on disk and of the spool's room, given
        back (its size stays counted)."""
        part = self.part
        if part.out is not None:
            out = part.out
            self.pending = [(f, chunk) for f, chunk in self.pending if f is not out]
            out.close()
            self.opened.remove(out)
            if part.path is not None:
                part.path.unlink(missing_ok=True)
            part.out = None
        self.uploads.release(part.reserved)
        self.reserved -= part.reserved
        part.reserved = 0

    def _end(self) -> None:
        part = self.part
        if not part.is_file:
            if part.too_long:
                self.form.errors[part.name] = messages.VISIT_FIELD_TOO_LONG
                self.form.errors["_form"] = messages.VISIT_FIELD_TOO_LONG
            else:
                _text(self.form, part.name, typed(bytes(part.text).decode(self.charset, "replace")))
            return
        if part.refused or not part.size:  # refused, or no file chosen (or an empty one)
            if not part.refused and part.named_file:
                self.form.empty.add(part.name)
            return
        if part.size > MAX_PHOTO_BYTES or part.path is None:  # refused with the rest
            self.form.photos[part.name] = Upload(part.size, part.head, _never)
            return
        self.kept += part.size
        self.form.photos[part.name] = Upload(part.size, part.head, part.path.read_bytes)


def _write_all(writes: list[tuple[BinaryIO, bytes]]) -> None:
    for out, chunk in writes:
        out.write(chunk)
