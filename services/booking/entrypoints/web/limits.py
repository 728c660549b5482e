"""Rate limits on the phone page: per remote address, and per QR token for every form a
firm's page posts (orders, uploads, sign-in), a loose anti-abuse limit. The order limit
itself ("10 at once, then 20 an hour" orders per QR token) is not here: the service layer
charges it (service_layer/orders.py, the BookingContext's `order_limiter`, shared with
gRPC) only for an order about to be written, and the order form shows its refusal with
everything typed kept.

Over a limit here: HTTP 429 with Retry-After and a Chinese page in the layout of the pages
asked for (the phone page's, or the staff pages' for /staff/: `refused`, errors.py). A post
of the order form, the proof form or an order's cancel form refused by a post limit goes
on to its route, marked (`post_limit_wait`), which shows the form again with what was
typed, saves nothing and answers the same 429. Buckets are kept per process and keyed
by a digest of the token, never the token itself.

A post that carries the firm's signed-in session (its cookie, signed: `session_key`) is
counted per session instead of per token (review 60 F1): the token is printed on the
firm's poster, so strangers' posts on it would otherwise keep the firm's own posts out;
a session is had only by its SMS code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.booking.entrypoints.web.firm_session import COOKIE
from services.booking.service_layer.orders import qr_bucket
from services.common.ratelimit import Rate, RateLimiter

Refused = Callable[[str, int], Response]  # (the path, seconds to wait) → the 429 page
# the forms whose route shows them again, as typed, when a post limit refuses them
KEPT_FORMS = re.compile(r"^/q/[^/]+/(order|tickets/[^/]+|orders/[^/]+/cancel)/?$")
LIMITED = "booking.post_limit_wait"  # the scope's key: seconds, for a refused kept form


@dataclass(frozen=True)
class WebLimits:
    per_address: Rate  # any request
    posts_per_address: Rate  # any form post
    # every post to one firm's /q/ pages: orders, uploads, sign-in (a signed-in session's:
    # per session)
    posts_per_token: Rate


DEFAULT_WEB_LIMITS = WebLimits(
    per_address=Rate.per_minute(600, burst=300),
    posts_per_address=Rate.per_minute(60, burst=60),
    posts_per_token=Rate.per_minute(30, burst=30),
)


def _cookie(scope: Scope, name: str) -> str:
    """The value of the request's cookie `name` ("" without one; at most 200 characters)."""
    header = Headers(scope=scope).get("cookie", "")
    value = cookie_parser(header).get(name, "") if name in header else ""
    return value if len(value) <= 200 else ""


def post_limit_wait(scope: Mapping[str, Any]) -> int:
    """Seconds to wait when a post limit refused this post of a kept form, else 0."""
    return int(scope.get(LIMITED, 0))


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limits: WebLimits,
        refused: Refused,
        session_key: Callable[[str], str] = lambda _cookie: "",
    ) -> None:
        """`session_key`: the bucket of a firm session's cookie value ("" for one whose
        signature does not hold: counted per token)."""
        self.app = app
        self._refused = refused
        self._session_key = session_key
        self._address = RateLimiter(limits.per_address)
        self._posts = RateLimiter(limits.posts_per_address)
        self._token_posts = RateLimiter(limits.posts_per_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            wait, post_limit = self._check(scope)
            path: str = scope.get("path", "")
            if wait and post_limit and KEPT_FORMS.match(path):
                scope = {**scope, LIMITED: wait}  # its route shows the form again
            elif wait:
                await self._refused(path, wait)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> tuple[int, bool]:
        """Whole seconds to wait (0 when allowed), and whether a post limit refused."""
        path: str = scope.get("path", "")
        if not path.startswith(("/q/", "/verify/", "/staff/")):
            return 0, False
        client = scope.get("client") or ("unknown", 0)
        checks = [(self._address, client[0])]
        if scope.get("method") == "POST":
            checks.append((self._posts, client[0]))
            parts = path.split("/")
            if len(parts) > 2 and parts[1] == "q":
                firm = qr_bucket(parts[2])
                session = self._session_key(_cookie(scope, COOKIE))
                checks.append((self._token_posts, f"session:{session}" if session else firm))
        for limiter, key in checks:
            allowed, wait = limiter.check(key)
            if not allowed:
                return math.ceil(max(wait, 1.0)), limiter is not self._address
        return 0, False
