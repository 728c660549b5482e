"""Rate limits on the phone page: per remote address, and per QR token for every form a
firm's page posts (orders, uploads, sign-in), a loose anti-abuse limit. The order limit
itself ("10 at once, then 20 an hour" orders per QR token) is not here: the service layer
charges it (service_layer/orders.py, the BookingContext's `order_limiter`, shared with
gRPC) only for an order about to be written, and the order form shows its refusal with
everything typed kept.

Over a limit here: HTTP 429 with Retry-After and a short Chinese page. Buckets are kept per
process and keyed by a digest of the token, never the token itself.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.booking.domain import messages
from services.common.ratelimit import Rate, RateLimiter

PAGE = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    "<title>{0}</title></head><body><h1>{0}</h1>"
    "<p>{1}</p></body></html>"
).format(*messages.PAGE_TOO_MANY)


@dataclass(frozen=True)
class WebLimits:
    per_address: Rate  # any request
    posts_per_address: Rate  # any form post
    posts_per_token: Rate  # every post to one firm's /q/ pages: orders, uploads, sign-in


DEFAULT_WEB_LIMITS = WebLimits(
    per_address=Rate.per_minute(600, burst=300),
    posts_per_address=Rate.per_minute(60, burst=60),
    posts_per_token=Rate.per_minute(30, burst=30),
)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: WebLimits) -> None:
        self.app = app
        self._address = RateLimiter(limits.per_address)
        self._posts = RateLimiter(limits.posts_per_address)
        self._token_posts = RateLimiter(limits.posts_per_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            wait = self._check(scope)
            if wait:
                response = HTMLResponse(
                    PAGE, status_code=429, headers={"Retry-After": str(math.ceil(wait))}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> float:
        """Seconds to wait, or 0 when allowed."""
        path: str = scope.get("path", "")
        if not path.startswith(("/q/", "/verify/", "/staff/")):
            return 0.0
        client = scope.get("client") or ("unknown", 0)
        checks = [(self._address, client[0])]
        if scope.get("method") == "POST":
            checks.append((self._posts, client[0]))
            parts = path.split("/")
            if len(parts) > 2 and parts[1] == "q":
                firm = hashlib.sha256(parts[2].encode()).hexdigest()[:24]
                checks.append((self._token_posts, firm))
        for limiter, key in checks:
            allowed, wait = limiter.check(key)
            if not allowed:
                return max(wait, 1.0)
        return 0.0
