"""What wraps every request of the phone page: security headers, no-store on dynamic
pages, bounded request bodies (uploaded files are otherwise unbounded), the 500 page for
anything unexpected, the firm's posts refused from another site (OriginCheck), and the
supervisors' credentials.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import structlog
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.booking.domain.findings import MAX_FINDINGS
from services.common.auth import TokenStore
from services.common.context import Principal
from services.common.values import trim

FORM_BODY_LIMIT = 64 * 1024  # the order form is a few hundred bytes
# Starlette counts a urlencoded field's bytes as sent, percent-encoded, name and value
# together, against a form's max_part_size: a Chinese character is 9 bytes (%E9%9A%90),
# a 4-byte one (an emoji) 12. Every form's part limit is form_part_limit of its longest
# field, so a text the page's maxlength allows always reaches the field check (and a
# text one over it comes back next to its field, kept), never a bare 400 page.
BYTES_PER_CHARACTER = 12
FIELD_NAME_ROOM = 256


def form_part_limit(longest_field: int) -> int:
    """max_part_size for a form whose longest field holds `longest_field` characters,
    with room for a few characters more (the field's own check refuses those)."""
    return (longest_field + 16) * BYTES_PER_CHARACTER + FIELD_NAME_ROOM


def typed(value: object) -> str:
    """A text field as the person typed it: browsers send a textarea's line breaks as CRLF
    (HTML form submission), one character to the person and to the page's maxlength, two
    to a length check; they are kept as LF. Anything but text (a file part) is ""."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def fields_in_head(content_type: str, head: bytes, names: Collection[str]) -> dict[str, str]:
    """The text fields among `names` that the first bytes of a multipart/form-data body
    hold whole (a part cut off by the head's end is not one), as `typed`. A browser
    sends a form's fields in the page's order, so a text field placed before a file
    input is in the head of a body refused for its file (BodyTooLarge.head)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary or not content_type.lower().startswith("multipart/form-data"):
        return {}
    found: dict[str, str] = {}
    part: dict[str, Any] = {}

    def begin() -> None:
        part.clear()
        part.update(header=b"", value=b"", name="", data=bytearray())

    def header_end() -> None:
        if part["header"].lower() == b"content-disposition":
            disposition = parse_options_header(part["value"])[1]
            if b"filename" not in disposition:
                part["name"] = disposition.get(b"name", b"").decode("utf-8", "replace")
        part.update(header=b"", value=b"")

    def data(chunk: bytes, start: int, end: int) -> None:
        if part["name"] in names:
            part["data"].extend(chunk[start:end])

    def end() -> None:
        if part["name"] in names:
            found[part["name"]] = typed(bytes(part["data"]).decode("utf-8", "replace"))

    callbacks: Any = {
        "on_part_begin": begin,
        "on_header_field": lambda d, s, e: part.update(header=part["header"] + d[s:e]),
        "on_header_value": lambda d, s, e: part.update(value=part["value"] + d[s:e]),
        "on_header_end": header_end,
        "on_part_data": data,
        "on_part_end": end,
    }
    with suppress(MultipartParseError):  # whatever came whole before it is kept
        MultipartParser(boundary, callbacks).write(head)
    return found


UPLOAD_BODY_LIMIT = 6 * 1024 * 1024 + 64 * 1024  # one ≤ 5 MB photo, a note, multipart framing
STAFF_SCOPES = ("booking.read", "booking.inspector", "booking.admin")
_UPLOAD_PATH = re.compile(r"^/q/[^/]+/tickets/[^/]+/?$")
# An expert's visit: every finding the form allows (50) with its ≤ 5 MB photo gets
# through and is read as it arrives (web/uploads.py: text in memory within its limit,
# photos to disk within theirs, 100 MB a visit), so the page can answer next to each
# field and keep what was typed; a body past this is 413, the fields before it kept.
VISIT_BODY_LIMIT = MAX_FINDINGS * UPLOAD_BODY_LIMIT
_VISIT_PATH = re.compile(r"^/staff/orders/[^/]+/visit/?$")
_TOKEN_PATH = re.compile(r"^/q/[^/]+")
_log = structlog.get_logger("web")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # The token is in the URL: never send it to another site. Not no-referrer: under it
    # browsers send "Origin: null" with the pages' own posts (Fetch), which OriginCheck
    # could not tell from another site's.
    "Referrer-Policy": "same-origin",
    # frame-ancestors: X-Frame-Options' successor; base-uri: an injected <base> would
    # re-point every relative link and form of the page (review 64 F7)
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
}


HEAD_ROOM = 64 * 1024  # a body's first bytes kept: what was typed before a part too big


@dataclass(frozen=True)
class BodyPace:
    """How slowly a request body may arrive before it is cut (`BodyStalled`), so that a
    body that stops (a phone that lost its signal, whose connection may stay half-open
    for hours; a client that stalls on purpose) gives back what it holds: the visit
    photos' spool room (web/uploads.py), a worker's wait. `idle_seconds`: the longest
    wait for its next bytes; `min_rate`: bytes a second it must average once past its
    first `idle_seconds` (0: none), so that a trickle of a byte now and then is cut too.
    uvicorn has no body read timeout of its own (review 60 F4)."""

    idle_seconds: float = 30.0
    min_rate: float = 4 * 1024

    def wait(self, received: int, waited: float) -> float:
        """Seconds the next bytes may take, `received` bytes having come in `waited`
        seconds of waiting for them (0 or less: cut now)."""
        if self.min_rate <= 0:
            return self.idle_seconds
        return min(self.idle_seconds, self.idle_seconds + received / self.min_rate - waited)


class BodyStalled(Exception):
    """The request body stopped arriving (`BodyPace`): it is read no further and the
    request is answered 408. `head`: its first bytes, as BodyTooLarge's."""

    def __init__(self, reason: str, head: bytes = b"") -> None:
        super().__init__(reason)
        self.head = head


class BodyTooLarge(Exception):
    """The request body is larger than the route allows. `head`: its first bytes (at most
    HEAD_ROOM) as they came: a form's text fields sent before the part too big can be
    shown again (`fields_in_head`)."""

    def __init__(self, reason: str, head: bytes = b"") -> None:
        super().__init__(reason)
        self.head = head


class Guard:
    """Security headers on every response, no-store on dynamic pages, bounded bodies."""

    def __init__(
        self,
        app: ASGIApp,
        on_crash: Callable[[Request, Exception], Awaitable[Response]] | None = None,
        pace: BodyPace | None = None,
    ) -> None:
        self.app = app
        self.on_crash = on_crash
        self.pace = pace or BodyPace()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = UPLOAD_BODY_LIMIT if _UPLOAD_PATH.match(path) else FORM_BODY_LIMIT
        limit = VISIT_BODY_LIMIT if _VISIT_PATH.match(path) else limit
        declared = _content_length(scope)
        # a body declared over the limit: only its head is read, then it is refused
        over = declared is not None and declared > limit
        received = 0
        head = bytearray()
        waited, whole = 0.0, False  # seconds spent waiting for the body; all of it in

        async def bounded() -> Message:
            nonlocal received, whole, waited
            if over and received >= min(limit, HEAD_ROOM):
                raise BodyTooLarge(f"{declared} bytes declared, {limit} allowed", bytes(head))
            if whole:  # the body is in: a wait for the client's disconnect, unbounded
                return await receive()
            began = time.monotonic()
            message = await _paced(receive, self.pace, received, waited, bytes(head))
            waited += time.monotonic() - began
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if len(head) < HEAD_ROOM:
                    head.extend(body[: HEAD_ROOM - len(head)])
                received += len(body)
                whole = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(f"more than {limit} bytes", bytes(head))
            else:
                whole = True  # http.disconnect
            return message

        no_store = not path.startswith("/static/")
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                secure(MutableHeaders(scope=message), no_store)
            await send(message)

        try:
            await self.app(scope, bounded, with_headers)
        except Exception as exc:
            # Unexpected: answer with the 500 page here rather than in Starlette's outer
            # ServerErrorMiddleware, which re-raises and makes uvicorn drop the connection.
            if started or self.on_crash is None:
                raise
            response = await self.on_crash(Request(scope), exc)
            await response(scope, receive, with_headers)


async def _paced(
    receive: Receive, pace: BodyPace, received: int, waited: float, head: bytes
) -> Message:
    """The body's next message, within what `pace` allows (`received` bytes so far, for
    which the request waited `waited` seconds: the time the app spent between two reads
    is not the client's); BodyStalled past it."""
    wait = pace.wait(received, waited)
    if wait > 0:
        with anyio.move_on_after(wait):
            return await receive()
    raise BodyStalled(f"the request body stalled: {received} bytes, then none", head)


class OriginCheck:
    """The firm's posts (every POST under /q/: order, proof, sign-in, sign-out, cancel,
    self-check) come from this site's own pages, or are refused with `refused` (403,
    the Chinese error page) before their route runs: nothing is saved.

    The firm's pages have no form token (the staff pages have one: staff_auth.py); their
    session cookie is SameSite=Lax, which keeps it off another site's post but not off a
    post from a sibling subdomain (same site, another origin) or from a browser or in-app
    web view that ignores SameSite. So the post's `Origin` header, or without one its
    `Referer`, must name this site (`from_this_site`). A post with neither (or with an
    opaque "null" Origin and no Referer) is let through: old browsers send no Origin, and
    privacy settings, extensions and in-app web views may strip both; its only guard is
    then the cookie's SameSite, as before."""

    def __init__(self, app: ASGIApp, public_url: str, refused: Callable[[], Response]) -> None:
        self.app = app
        self.public_url = public_url
        self._refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and scope.get("method") == "POST" and path.startswith("/q/"):
            headers = Headers(scope=scope)
            origin, referer = headers.get("origin", ""), headers.get("referer", "")
            server = scope.get("server") or ("", None)
            host = headers.get("host") or f"{server[0]}:{server[1]}"
            scheme = scope.get("scheme", "http")
            if not from_this_site(origin, referer, scheme, host, self.public_url):
                _log.warning(
                    "foreign post refused",
                    path=log_path(path),
                    origin=origin[:100],
                    referer=bool(referer),
                )
                await self._refused()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def from_this_site(origin: str, referer: str, scheme: str, host: str, public_url: str) -> bool:
    """Whether a post's `origin` header (or, without one, its `referer`) names this site:
    the host the request was sent to (its `host` header) or the one `--public-url` names
    (behind a proxy the request's own may differ). Hosts compare by name, in their ASCII
    form (a Chinese domain as punycode, as browsers send it: review 55 D1), and port,
    not by scheme: TLS ended at a proxy makes the request look http whatever the browser
    used, and a `--public-url` written http:// behind it would refuse every firm's post
    (review 55 D2); a default port (80, 443) is no port. Neither header: True (nothing
    names another site). An opaque origin "null" is read as no Origin (the Referer then
    decides, and without one the post goes through): browsers send it from a sandboxed
    frame or a cross-site redirect, where the SameSite=Lax cookie is not sent anyway, and
    also from pages kept open since before Referrer-Policy became same-origin and from
    in-app web views that hide the referrer (review 55 D3, D4), whose firms must not be
    refused their own posts."""
    if origin.lower() == "null":
        origin = ""
    if not origin and not referer:
        return True
    source = _site(origin or referer)
    return source is not None and source in {_site(public_url), _site(f"{scheme}://{host}")}


def _site(url: str) -> tuple[str, int | None] | None:
    """An http(s) URL's host as (ASCII name, port or None for the scheme's default), None
    for anything else."""
    try:
        parts = urlsplit(url)
        scheme, name, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not name:
        return None
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return None
    return ascii_name.lower(), None if port in (None, 80, 443) else port


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def secure(headers: MutableHeaders, no_store: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    if no_store:
        headers["Cache-Control"] = "no-store"


def log_path(path: str) -> str:
    """The request path without the QR token (it is the firm's credential)."""
    return _TOKEN_PATH.sub("/q/***", path)


def is_staff(store: TokenStore, request: Request) -> bool:
    """A staff token (booking.read/inspector/admin) as HTTP Basic password (any user;
    browsers prompt for it) or as a Bearer header."""
    return staff_principal(store, request) is not None


def staff_principal(store: TokenStore, request: Request) -> Principal | None:
    """Whom the request's staff token (is_staff) names, None without one."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    token = trim(value)
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(token).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return None
    elif scheme.lower() != "bearer":
        return None
    principal = store.lookup(token) if token else None
    return principal if principal is not None and principal.has(*STAFF_SCOPES) else None
