"""What a server needs to be safe to expose: tokens, a per-caller rate, TLS."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from services.common.auth import (
    AuthInterceptor,
    MethodRule,
    TokenFileError,
    TokenStore,
    write_dev_tokens,
)

__all__ = [
    "DEV_TOKENS",
    "Security",
    "add_flags",
    "client_credentials",
    "from_args",
    "write_dev_tokens",
]
from services.common.config import OperatorError, env_flag
from services.common.ratelimit import Rate, RateLimiter
from services.common.secret_files import SecretFileError, check_private, readable_by_others
from services.common.server import TlsFiles

_log = structlog.get_logger("security")


@dataclass(frozen=True)
class Security:
    """Bearer tokens (None: no authentication, for in-process tests), a per-caller rate,
    and optional TLS."""

    tokens: TokenStore | None = None
    rate: Rate | None = None
    tls: TlsFiles | None = None

    def interceptors(self, methods: dict[str, MethodRule]) -> list[grpc.ServerInterceptor]:
        auth = self.auth(methods)
        return [auth] if auth is not None else []

    def auth(self, methods: dict[str, MethodRule]) -> AuthInterceptor | None:
        """One authenticator (with its rate limiter) for a server; None without tokens.
        A server's gRPC port and its HTTP/JSON gateway share it."""
        if self.tokens is None:
            return None
        limiter = RateLimiter(self.rate) if self.rate else None
        return AuthInterceptor(self.tokens, methods, limiter)


DEV_TOKENS = Path("var/dev-tokens.json")


def add_flags(parser: argparse.ArgumentParser, env_prefix: str) -> None:
    """--tokens, --dev, --rate and the TLS flags, each with an environment fallback."""
    env_flag(parser, "--tokens", f"{env_prefix}_TOKENS", None, "bearer tokens file (JSON)")
    parser.add_argument(
        "--dev",
        action="store_true",
        help=f"development: create/use {DEV_TOKENS} instead of --tokens",
    )
    env_flag(
        parser,
        "--rate",
        f"{env_prefix}_RATE",
        100.0,
        "requests per second per caller (burst: twice that)",
        type=float,
    )
    env_flag(parser, "--tls-cert", f"{env_prefix}_TLS_CERT", None, "server certificate (PEM)")
    env_flag(parser, "--tls-key", f"{env_prefix}_TLS_KEY", None, "server private key (PEM)")
    env_flag(
        parser,
        "--tls-client-ca",
        f"{env_prefix}_TLS_CLIENT_CA",
        None,
        "CA of client certificates: clients must present one (mTLS)",
    )


def from_args(args: argparse.Namespace) -> Security:
    """The server's Security from its flags; refuses to run open without --dev."""
    if args.tokens:
        path = Path(args.tokens)
    elif args.dev:
        write_dev_tokens(DEV_TOKENS)
        print(f"--dev: bearer tokens for every role are in {DEV_TOKENS.resolve()}", file=sys.stderr)
        path = DEV_TOKENS
    else:
        raise SystemExit(
            "refusing to start without a tokens file: pass --tokens FILE "
            "(or --dev on a development machine)"
        )
    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("--tls-cert and --tls-key go together")
        tls = TlsFiles(
            Path(args.tls_cert),
            Path(args.tls_key),
            Path(args.tls_client_ca) if args.tls_client_ca else None,
        )
    rate = float(args.rate)
    try:
        check_private(path, "tokens file")
        if tls is not None:  # whoever reads it can pose as this server
            check_private(tls.key, "TLS private key", readable=False)
        store = TokenStore.load(path)
    except SecretFileError as exc:
        raise OperatorError(f"refusing to start: {exc}", 2) from None
    except TokenFileError as exc:  # one line naming the entry (config.operator_problem)
        raise OperatorError(f"configuration error: tokens file {exc}", 2) from None
    if store.plain_tokens and readable_by_others(path):
        _log.warning(
            "the tokens file holds tokens in clear and others may read it: "
            "chmod o-r it, or keep token_sha256 digests only",
            path=str(path),
        )
    return Security(store, Rate(rate, 2 * rate) if rate > 0 else None, tls)


def client_credentials(
    ca: str | None, cert: str | None = None, key: str | None = None
) -> grpc.ChannelCredentials | None:
    """TLS credentials for a client (None: plain text); cert and key for mutual TLS."""
    if not ca:
        if cert or key:
            raise SystemExit("a client certificate needs the server's CA as well")
        return None
    if bool(cert) != bool(key):
        raise SystemExit("the client certificate and key go together")
    try:
        if key:  # whoever reads it can pose as this client (booking, to rules)
            check_private(Path(key), "TLS client key", readable=False)
        return grpc.ssl_channel_credentials(
            Path(ca).read_bytes(),
            Path(key).read_bytes() if key else None,
            Path(cert).read_bytes() if cert else None,
        )
    except SecretFileError as exc:
        raise OperatorError(f"refusing to start: {exc}", 2) from None
    except OSError as exc:  # a missing or unreadable file: one line, never its text
        raise OperatorError(
            f"configuration error: cannot read {exc.filename}: {exc.strerror}", 2
        ) from None
