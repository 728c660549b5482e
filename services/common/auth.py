"""Bearer-token authentication and scope checks for both gRPC servers, in one place.

The tokens file (README "Security"): {"tokens": [{"token": "…", "caller": "yiwu-enforcement",
"scopes": ["rules.evaluate"], "expert_id": "E1"?, "region": "稠城街道"?}]}; an entry may give
"token_sha256" (hex) instead of the token itself. `region` (a 镇街 or county of
rulesets/regions.yaml, by name or code) narrows an inspector to that region's tickets.
Tokens are kept only as SHA-256 digests and compared in constant time. Health checks
and reflection need no token, and neither does a method whose rule says `public`: its
`authorization` header is not read at all (unknown, another service's or malformed, it
is ignored). A method whose rule says `qr_ok` may be called without a bearer token: its
handler then requires the firm's QR token (the firm's credential for its own orders and
tickets, nothing else). A call that sends `authorization` twice is UNAUTHENTICATED:
which one would count is not for the server to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from services.common.context import Principal, bind
from services.common.grpc_errors import retry_later
from services.common.interceptors import INFRASTRUCTURE_PREFIXES, wrap_handler
from services.common.ratelimit import Rate, RateLimiter
from services.common.values import trim

FIRM = "firm"  # the caller of a call admitted on the firm's QR token alone
PUBLIC = "public"  # the caller of a public method, whatever credentials it sent
_PER_HOST = frozenset({FIRM, PUBLIC})  # callers without a name: limited per remote host
# callers the server names itself: a tokens-file entry may not take their place
RESERVED_CALLERS = frozenset({FIRM, PUBLIC, "anonymous", "system"})
_CALLER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_TOKEN_TEXT = re.compile(r"[!-~]+")  # printable ASCII, no space
SCOPES = frozenset(
    {
        "rules.read",
        "rules.evaluate",
        "rules.write",
        "rules.contact",
        "inspection.check",
        "booking.admin",
        "booking.expert",
        "booking.inspector",
        "booking.read",
    }
)


class TokenFileError(ValueError):
    """The tokens file is missing, unreadable or malformed (the message says where)."""


@dataclass(frozen=True)
class MethodRule:
    """Any one of `scopes` admits the caller; `qr_ok`: a QR token alone may call it;
    `public`: anyone may, and the call's credentials are not read."""

    scopes: frozenset[str]
    qr_ok: bool = False
    public: bool = False


def rule(*scopes: str, qr_ok: bool = False, public: bool = False) -> MethodRule:
    unknown = set(scopes) - SCOPES
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")
    if public and (scopes or qr_ok):
        raise ValueError("a public method needs no scope and no QR token")
    return MethodRule(frozenset(scopes), qr_ok, public)


class TokenStore:
    """SHA-256 digests of the bearer tokens → principals."""

    def __init__(self, entries: Mapping[bytes, Principal], plain_tokens: int = 0) -> None:
        self._entries = dict(entries)
        self.plain_tokens = plain_tokens  # entries of the file that gave the token in clear

    @classmethod
    def load(cls, path: Path | str) -> TokenStore:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            raw = data["tokens"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenFileError(f"{path}: {exc}") from exc
        if not isinstance(raw, list):
            raise TokenFileError(f"{path}: tokens must be a list of entries")
        entries: dict[bytes, Principal] = {}
        for i, item in enumerate(raw):
            where = f"{path}: tokens[{i}]"
            principal, digest = _entry(item, where)
            if digest in entries:
                # two entries for one token: which one's scopes count is not for the
                # server to guess (the later one silently won: review 64 F3)
                raise TokenFileError(f"{where}: the same token as another entry")
            entries[digest] = principal
        plain = sum(1 for item in raw if isinstance(item, dict) and "token" in item)
        return cls(entries, plain)

    def principals(self) -> list[Principal]:
        """Every caller of the file (to check their regions at start)."""
        return list(self._entries.values())

    def lookup(self, token: str) -> Principal | None:
        """The principal for a bearer token; every stored digest is compared (constant time)."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for stored, principal in self._entries.items():
            if hmac.compare_digest(stored, digest):
                found = principal
        return found


def _entry(item: object, where: str) -> tuple[Principal, bytes]:
    """One entry of the tokens file as its principal and its token's SHA-256 digest;
    TokenFileError naming the entry (never quoting a token) for anything else (review
    64 F3: a bad `token_sha256`, `scopes` or `expert_id` was a bare traceback, a short
    digest or a token with spaces an entry nobody could match, and a caller named like
    the firm's or a staff member's took their place in the checks and the audit trail)."""
    if not isinstance(item, dict) or not isinstance(item.get("caller"), str):
        raise TokenFileError(f"{where}: needs a caller name")
    caller = item["caller"]
    if not _CALLER.fullmatch(caller) or caller in RESERVED_CALLERS:
        raise TokenFileError(
            f"{where}: caller must be 1-100 letters, digits, '-', '_', '.', '@' "
            f"and not one of {sorted(RESERVED_CALLERS)}"
        )
    listed = item.get("scopes", [])
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        raise TokenFileError(f"{where}: scopes must be a list of scope names")
    scopes = frozenset(listed)
    if scopes - SCOPES:
        raise TokenFileError(f"{where}: unknown scopes {sorted(scopes - SCOPES)}")
    if "token_sha256" in item:
        hexed = item["token_sha256"]
        if "token" in item:
            raise TokenFileError(f"{where}: give token or token_sha256, not both")
        if not isinstance(hexed, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", hexed):
            raise TokenFileError(f"{where}: token_sha256 must be 64 hex digits")
        digest = bytes.fromhex(hexed)
    elif isinstance(item.get("token"), str) and len(item["token"]) >= 16:
        token = item["token"]
        if not _TOKEN_TEXT.fullmatch(token):
            raise TokenFileError(
                f"{where}: a token is printable ASCII without spaces "
                "(a header never carries another)"
            )
        digest = hashlib.sha256(token.encode()).digest()
    else:
        raise TokenFileError(f"{where}: needs a token of 16+ characters or token_sha256")
    region = item.get("region", "")
    if not isinstance(region, str) or len(region) > 50:
        raise TokenFileError(f"{where}: region must be a 镇街 or county name or code")
    expert_id = item.get("expert_id", "")
    if not isinstance(expert_id, str) or len(expert_id) > 64:
        raise TokenFileError(f"{where}: expert_id must be an expert id (text)")
    principal = Principal(caller, scopes, expert_id, _own_rate(item, where), trim(region))
    return principal, digest


def _own_rate(item: Mapping[str, Any], where: str) -> tuple[float, float] | None:
    """A token's own limit, `rate_per_second` (and `burst`, default twice the rate), for
    a batch system the default per-caller rate would turn into RESOURCE_EXHAUSTED."""
    if "rate_per_second" not in item:
        if "burst" in item:
            raise TokenFileError(f"{where}: burst needs rate_per_second")
        return None
    rate, burst = item["rate_per_second"], item.get("burst", 2 * item["rate_per_second"])
    for name, value in (("rate_per_second", rate), ("burst", burst)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise TokenFileError(f"{where}: {name} must be a number > 0")
    return float(rate), float(burst)


def write_dev_tokens(path: Path) -> dict[str, str]:
    """Create a tokens file with one token per role (for `--dev`); returns caller → token."""
    roles = {
        "dev-admin": sorted(SCOPES),
        "booking-service": ["rules.read", "rules.evaluate", "rules.write", "rules.contact"],
        "dev-enforcement": ["rules.read", "rules.evaluate", "rules.write", "inspection.check"],
        "dev-inspector": ["booking.inspector", "booking.read"],
        "dev-expert-E-FIRE-01": ["booking.expert", "booking.read"],
    }
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return {t["caller"]: t["token"] for t in data["tokens"]}
    tokens = []
    for caller, scopes in roles.items():
        entry: dict[str, Any] = {
            "token": secrets.token_urlsafe(24),
            "caller": caller,
            "scopes": scopes,
        }
        if caller.startswith("dev-expert-"):
            entry["expert_id"] = caller.removeprefix("dev-expert-")
        tokens.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    # created owner-only: never readable by others, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"tokens": tokens}, indent=2))
    path.chmod(0o600)
    return {t["caller"]: t["token"] for t in tokens}


class AuthInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED without a known token, PERMISSION_DENIED without a needed scope,
    RESOURCE_EXHAUSTED past the caller's rate; binds the caller for logs and handlers."""

    def __init__(
        self, store: TokenStore, rules: Mapping[str, MethodRule], limiter: RateLimiter | None = None
    ) -> None:
        self._store = store
        self._rules = dict(rules)
        self._limiter = limiter

    def intercept_service(
        self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = continuation(details)
        method = details.method
        if handler is None or method.startswith(INFRASTRUCTURE_PREFIXES):
            return handler
        sent = [v for k, v in details.invocation_metadata or () if k == "authorization"]
        verdict = self.admit(method, sent)
        if isinstance(verdict, Principal):
            per_host = verdict.caller in _PER_HOST
            return _bound(handler, verdict, self._limiter if per_host else None)
        return _refusal(handler, *verdict)

    def admit_host(self, principal: Principal, host: str) -> float:
        """A call admitted on a QR token alone, or to a public method, is limited per
        remote host: 0 to go on, else the seconds to wait (RESOURCE_EXHAUSTED)."""
        if principal.caller not in _PER_HOST or self._limiter is None:
            return 0.0
        allowed, wait = self._limiter.check("qr@" + host)
        return 0.0 if allowed else max(wait, 1e-9)

    def admit(self, method: str, authorization: Sequence[str]) -> Principal | Refusal:
        """The caller of `method` (a full gRPC path) given every `authorization` value the
        call sent, or why not: (code, message, seconds to wait, principal?). A public
        method reads none of them; any other refuses two. The gRPC interceptor and the
        HTTP/JSON gateway both ask here, so both admit alike and share one rate limit per
        caller."""
        method_rule = self._rules.get(method)
        if method_rule is None:
            return grpc.StatusCode.PERMISSION_DENIED, f"{method} is not open to callers", 0.0
        if method_rule.public:
            return Principal(PUBLIC)  # limited per remote host when the call runs
        if len(authorization) > 1:
            return grpc.StatusCode.UNAUTHENTICATED, TWO_HEADERS, 0.0
        header = str(authorization[0]) if authorization else ""
        if not header:
            if method_rule.qr_ok:
                return Principal(FIRM)  # limited per remote host when the call runs
            return grpc.StatusCode.UNAUTHENTICATED, "missing bearer token", 0.0
        problem = scheme_problem(header)
        if problem:
            return grpc.StatusCode.UNAUTHENTICATED, problem, 0.0
        principal = self._store.lookup(header.strip().partition(" ")[2].strip())
        if principal is None:
            return grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token", 0.0
        if not principal.scopes & method_rule.scopes:
            need = " or ".join(sorted(method_rule.scopes))
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"{principal.caller} lacks scope {need}",
                0.0,
                principal,
            )
        wait = self.charge(principal)
        if wait:
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded", wait, principal
        return principal

    def charge(self, principal: Principal) -> float:
        """One call of `principal` against its rate (its own, from the tokens file, or the
        default): 0.0 to go on (counted), else the seconds to wait (not counted). Also
        each event of a ReportEventStream after the first, which the call's admission
        counted."""
        if self._limiter is None:
            return 0.0
        own = Rate(*principal.rate) if principal.rate else None
        allowed, wait = self._limiter.check(principal.caller, rate=own)
        return 0.0 if allowed else max(wait, 1e-9)


TWO_HEADERS = (
    "authorization sent more than once: which one counts is ambiguous, "
    "send one 'authorization: Bearer <token>'"
)


def scheme_problem(header: str) -> str | None:
    """Why an authorization header is not `Bearer <token>`, never quoting the token."""
    scheme, sep, token = header.strip().partition(" ")
    if sep and token.strip():
        if scheme.lower() == "bearer":
            return None
        return (
            f"authorization scheme {scheme[:16]!r} is not supported: "
            "send 'authorization: Bearer <token>'"
        )
    if scheme.lower() == "bearer":
        return "authorization is 'Bearer' without a token: send 'authorization: Bearer <token>'"
    return "authorization is missing the 'Bearer ' scheme: send 'authorization: Bearer <token>'"


Refusal = tuple[grpc.StatusCode, str, float] | tuple[grpc.StatusCode, str, float, Principal]


def _bound(handler: Any, principal: Principal, limiter: RateLimiter | None = None) -> Any:
    """The same handler, with the principal bound while it runs; a call admitted on a QR
    token alone is rate-limited per remote host (it has no caller name)."""

    def admit(context: grpc.ServicerContext) -> None:
        bind(principal)
        if limiter is not None:
            allowed, wait = limiter.check("qr@" + _host(context.peer()))
            if not allowed:
                context.abort_with_status(
                    retry_later(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded", wait)
                )

    def unary(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            admit(context)
            return behaviour(request, context)

        return run

    def stream(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            admit(context)
            yield from behaviour(request, context)

        return run

    return wrap_handler(handler, unary, stream)


def _host(peer: str) -> str:
    """ipv4:1.2.3.4:5678 → ipv4:1.2.3.4 (the port changes with every connection)."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


def _refusal(
    handler: Any,
    code: grpc.StatusCode,
    message: str,
    retry_after: float,
    principal: Principal | None = None,
) -> Any:
    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        if principal is not None:
            bind(principal)  # the log line names who was refused
        if retry_after:
            context.abort_with_status(retry_later(code, message, retry_after))
        context.abort(code, message)

    def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        refuse(request, context)
        yield  # pragma: no cover - abort raises

    refused = wrap_handler(handler, lambda _b: refuse, lambda _b: refuse_stream)
    # gRPC reads a unary request whole before its handler runs (up to booking's 104 MB
    # for RecordVisit, from anyone); a request-streaming handler runs before any message
    # is read, and this one reads none: a refused caller's message is never taken in
    # (review 73). The same on the wire: a message stream of one is a unary request.
    if refused.unary_unary:
        return refused._replace(
            request_streaming=True, unary_unary=None, stream_unary=refused.unary_unary
        )
    if refused.unary_stream:
        return refused._replace(
            request_streaming=True, unary_stream=None, stream_stream=refused.unary_stream
        )
    return refused
