"""The secrets files a server reads at start: the tokens file's entries and the
permissions of it and of the QR signing keys (review 64 F3, F4)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from services.booking.entrypoints.cli import load_keyring
from services.common import security
from services.common.auth import TokenFileError, TokenStore
from services.common.config import OperatorError

GOOD = {"token": "long-enough-token-123", "caller": "x", "scopes": ["rules.read"]}


def _write(path: Path, entries: object) -> Path:
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        ([{"token_sha256": "zz", "caller": "x"}], "64 hex digits"),
        ([{"token_sha256": "abcd", "caller": "x"}], "64 hex digits"),  # never matches
        ([{"token_sha256": 12, "caller": "x"}], "64 hex digits"),
        ([{**GOOD, "scopes": None}], "scopes must be a list"),
        ([{**GOOD, "scopes": "rules.read"}], "scopes must be a list"),
        ([{**GOOD, "expert_id": None}], "expert_id"),
        ([{**GOOD, "token": "long-enough-token-123 "}], "without spaces"),  # never matches
        ([{**GOOD, "caller": ""}], "caller must be"),
        ([{**GOOD, "caller": "firm"}], "caller must be"),  # the QR-token caller's name
        ([{**GOOD, "caller": "public"}], "caller must be"),
        ([{**GOOD, "caller": "staff:admin 管理员"}], "caller must be"),  # a staff member's
        ([GOOD, {**GOOD, "caller": "y", "scopes": ["rules.write"]}], "tokens[1]: the same token"),
        (
            [
                GOOD,
                {
                    "token_sha256": hashlib.sha256(GOOD["token"].encode()).hexdigest(),  # type: ignore[union-attr]
                    "caller": "y",
                },
            ],
            "tokens[1]: the same token",
        ),
        ({"x": GOOD}, "must be a list"),
    ],
)
def test_bad_entries_are_refused_by_name(tmp_path: Path, entries: object, said: str) -> None:
    path = _write(tmp_path / "tokens.json", entries)
    with pytest.raises(TokenFileError) as info:
        TokenStore.load(path)
    assert said in str(info.value)
    assert "long-enough-token-123" not in str(info.value)  # never quotes a token


def test_good_entries_still_load(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"another-token-4567").hexdigest()
    store = TokenStore.load(
        _write(tmp_path / "tokens.json", [GOOD, {"token_sha256": digest, "caller": "y"}])
    )
    assert store.lookup("long-enough-token-123").caller == "x"  # type: ignore[union-attr]
    assert store.lookup("another-token-4567").caller == "y"  # type: ignore[union-attr]
    assert store.plain_tokens == 1


def _args(tokens: Path) -> argparse.Namespace:
    return argparse.Namespace(
        tokens=str(tokens), dev=False, tls_cert=None, tls_key=None, tls_client_ca=None, rate=1.0
    )


def test_a_server_refuses_a_tokens_file_others_may_write(tmp_path: Path) -> None:
    path = _write(tmp_path / "tokens.json", [GOOD])
    path.chmod(0o666)
    with pytest.raises(OperatorError) as info:
        security.from_args(_args(path))
    assert "tokens file" in str(info.value) and "go-w" in str(info.value)
    path.chmod(0o644)  # readable: a warning, not a refusal (digests only are harmless)
    assert security.from_args(_args(path)).tokens is not None


def test_a_bad_tokens_file_ends_the_start_with_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path / "tokens.json", [{"token_sha256": "zz", "caller": "x"}])
    with pytest.raises(OperatorError) as info:
        security.from_args(_args(path))
    assert "tokens[0]" in str(info.value)


def _keys(path: Path, mode: int) -> Path:
    path.write_text(json.dumps({"active": "k1", "keys": {"k1": "ab" * 32}}), encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o666])
def test_the_qr_signing_keys_may_not_be_read_by_others_or_written_by_the_group(
    tmp_path: Path, mode: int
) -> None:
    with pytest.raises(OperatorError) as info:
        load_keyring(_keys(tmp_path / "keys.json", mode))
    assert "QR signing key file" in str(info.value)
    assert "ab" * 32 not in str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400])
def test_owner_only_or_group_readable_keys_load(tmp_path: Path, mode: int) -> None:
    assert load_keyring(_keys(tmp_path / "keys.json", mode)).active == "k1"


def test_a_bad_key_file_is_refused_without_quoting_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"active": "k1", "keys": {"k1": "ab" * 31 + "zz"}}))
    path.chmod(0o600)
    with pytest.raises(OperatorError) as info:
        load_keyring(path)
    assert "ab" * 31 not in str(info.value)


def test_a_new_key_file_and_dev_tokens_are_owner_only(tmp_path: Path) -> None:
    load_keyring(tmp_path / "new" / "keys.json", create=True)
    assert (tmp_path / "new" / "keys.json").stat().st_mode & 0o077 == 0
    security.write_dev_tokens(tmp_path / "dev-tokens.json")
    assert (tmp_path / "dev-tokens.json").stat().st_mode & 0o077 == 0


def test_a_tls_private_key_others_may_read_is_refused(tmp_path: Path) -> None:
    tokens = _write(tmp_path / "tokens.json", [GOOD])
    (tmp_path / "server.pem").write_text("cert")
    key = tmp_path / "server.key"
    key.write_text("key")
    key.chmod(0o644)
    args = _args(tokens)
    args.tls_cert, args.tls_key = str(tmp_path / "server.pem"), str(key)
    with pytest.raises(OperatorError) as info:
        security.from_args(args)
    assert "TLS private key" in str(info.value)
    key.chmod(0o600)
    assert security.from_args(args).tls is not None


def test_a_missing_key_file_is_refused_unless_a_new_one_is_asked_for(tmp_path: Path) -> None:
    """A secret volume not mounted, or a mistyped --qr-keys, must not bring up a new key:
    every poster already printed would then be refused (review 65). A first start asks
    for one (`--new-qr-keys`; --dev and demo do too)."""
    path = tmp_path / "keys.json"
    with pytest.raises(OperatorError) as info:
        load_keyring(path)
    assert "--new-qr-keys" in str(info.value) and not path.exists()
    assert load_keyring(path, create=True).active
    assert load_keyring(path).active  # there now: loaded as it is


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660])
def test_a_tls_client_key_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    """Booking's key for mutual TLS with rules (--rules-tls-key) is held to the server
    key's rule: whoever reads it can pose as booking to the rules service."""
    from tests.integration.security.certs import make_pki

    pki = make_pki(tmp_path)
    pki["client_key"].chmod(mode)
    with pytest.raises(OperatorError) as info:
        security.client_credentials(str(pki["ca"]), str(pki["client"]), str(pki["client_key"]))
    assert "TLS client key" in str(info.value) and info.value.status == 2
    pki["client_key"].chmod(0o600)
    assert security.client_credentials(str(pki["ca"]), str(pki["client"]), str(pki["client_key"]))


def test_a_missing_tls_client_key_is_one_line(tmp_path: Path) -> None:
    from tests.integration.security.certs import make_pki

    pki = make_pki(tmp_path)
    with pytest.raises(OperatorError) as info:
        security.client_credentials(str(pki["ca"]), str(pki["client"]), str(tmp_path / "no.key"))
    assert str(tmp_path / "no.key") in str(info.value)
