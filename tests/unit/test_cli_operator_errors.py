"""Review 65: an error of the operator's setting (a tokens or QR key file that is not
one, a database URL that is wrong or unreachable, a port already taken, a backup that
is not a database, a profiles file that is not JSON) is one line on stderr naming the
problem and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from services.booking.entrypoints import cli as booking_cli
from services.common import server as common_server
from services.rules.entrypoints import cli as rules_cli

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing said"
    return lines[-1]


def test_a_malformed_tokens_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text("{bad", encoding="utf-8")
    code = rules_cli.main(
        ["serve", "--grpc", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'r.db'}",
         "--tokens", str(tokens)]
    )  # fmt: skip
    assert code == 2
    line = _one_line(capsys)
    assert line.startswith("configuration error: tokens file") and str(tokens) in line


def test_a_missing_tokens_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.json"
    code = rules_cli.main(
        ["serve", "--grpc", "127.0.0.1:0", "--db", f"sqlite:///{tmp_path / 'r.db'}",
         "--tokens", str(missing)]
    )  # fmt: skip
    assert code == 2
    assert str(missing) in _one_line(capsys)


@pytest.mark.parametrize("service", ["rules", "booking"])
def test_an_unreachable_database_is_one_line(
    service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = rules_cli.main if service == "rules" else booking_cli.main
    code = main(["migrate", "--db", UNREACHABLE_PG])
    assert code == 1
    line = _one_line(capsys)
    assert line.startswith("database error:") and "Connection refused" in line


def test_a_database_url_of_no_known_kind_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = rules_cli.main(["migrate", "--db", "mysqlx://user:secret@host/db"])
    assert code == 2
    line = _one_line(capsys)
    assert line.startswith("database error: --db") and "secret" not in line


def test_a_taken_port_is_an_operator_error() -> None:
    from services.common.config import OperatorError

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    try:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(OperatorError, match=r"cannot listen for gRPC on '127\.0\.0\.1:"):
            common_server.bind(server, address)
        with pytest.raises(OperatorError, match=r"cannot listen for gRPC on 'no-such-host"):
            common_server.bind(server, "no-such-host.invalid:1")
    finally:
        server.stop(None)
        taken.close()


@pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning"
)  # uvicorn exits its thread
def test_a_taken_http_port_is_an_operator_error() -> None:
    from services.common.config import OperatorError
    from services.common.http_server import start_http

    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OperatorError, match="cannot listen for HTTP"):
            start_http(app, "127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("garbage", "JSONDecodeError"),
        ('{"active": "k1", "keys": {"k2": "' + "ab" * 32 + '"}}', "active key"),
        ('{"active": "k1", "keys": {"k1": "zz"}}', "ValueError"),
        ('{"keys": {}}', "KeyError"),
    ],
)
def test_a_qr_key_file_that_is_not_one_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    keys = tmp_path / "qr-keys.json"
    keys.write_text(text, encoding="utf-8")
    keys.chmod(0o600)  # private, as a key file must be: what is checked is its content
    code = booking_cli.main(
        ["sweep", "--qr-keys", str(keys), "--db", f"sqlite:///{tmp_path / 'b.db'}",
         "--rules", "127.0.0.1:1"]
    )  # fmt: skip
    assert code == 2
    line = _one_line(capsys)
    assert line.startswith(f"configuration error: QR key file {keys}") and says in line
    assert "ab" * 32 not in line  # never the secret


@pytest.mark.parametrize("service", ["rules", "booking"])
def test_restoring_a_file_that_is_not_a_database_is_one_line(
    service: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = rules_cli.main if service == "rules" else booking_cli.main
    not_a_db = tmp_path / "backup.db"
    not_a_db.write_text("not a database at all, just some text " * 40, encoding="utf-8")
    code = main(["restore", "--from", str(not_a_db), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert code == 1
    assert "is not a SQLite database" in _one_line(capsys)


def test_evaluating_a_json_file_that_is_not_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "profiles.json"
    bad.write_text("{bad", encoding="utf-8")
    code = rules_cli.main(["evaluate", str(bad)])
    assert code == 2
    assert _one_line(capsys).startswith("profiles.json: not a JSON file of profiles")


@pytest.mark.parametrize(
    ("service", "command"),
    [
        ("rules", ["audit", "verify"]),
        ("rules", ["audit", "anchor", "--out", "ANCHOR"]),
        ("rules", ["renew-feed-epoch"]),
        ("booking", ["audit", "verify"]),
        ("booking", ["outbox"]),
    ],
)
def test_an_inspection_of_a_mistyped_sqlite_path_is_refused(
    service: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`audit verify --db` of a path with a typo said "audit trail intact: 0 entries"
    (and left an empty database there): the check an operator trusts passed on nothing."""
    main = rules_cli.main if service == "rules" else booking_cli.main
    typo = tmp_path / "rules-typo.db"
    argv = [str(tmp_path / "anchor.json") if word == "ANCHOR" else word for word in command]
    code = main([*argv, "--db", f"sqlite:///{typo}"])
    assert code == 1
    assert _one_line(capsys) == f"database error: no SQLite database at {typo} (check --db)"
    assert not typo.exists()


def test_a_taken_port_under_processes_is_an_operator_error() -> None:
    """`serve --processes N` reserves its port itself: a taken one was a traceback."""
    from services.common import processes
    from services.common.config import OperatorError

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OperatorError, match="cannot listen for gRPC"):
            processes.reserve_port(f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(OperatorError, match="cannot listen for gRPC"):
            processes.reserve_port("127.0.0.1:notaport")
    finally:
        taken.close()


def test_a_rules_tls_key_others_may_read_stops_booking_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rules-tls-key (booking's client key for mutual TLS with rules) is checked as the
    QR keys and the server's TLS key are (security leftovers of review 64)."""
    from tests.integration.security.certs import make_pki

    pki = make_pki(tmp_path)
    pki["client_key"].chmod(0o644)
    keys = tmp_path / "keys.json"
    keys.write_text('{"active": "k1", "keys": {"k1": "' + "ab" * 32 + '"}}', encoding="utf-8")
    keys.chmod(0o600)
    code = booking_cli.main(
        ["sweep", "--db", f"sqlite:///{tmp_path / 'b.db'}", "--qr-keys", str(keys),
         "--rules-tls-ca", str(pki["ca"]), "--rules-tls-cert", str(pki["client"]),
         "--rules-tls-key", str(pki["client_key"])]
    )  # fmt: skip
    assert code == 2
    line = _one_line(capsys)
    assert "TLS client key" in line and "chmod o-rwx" in line
