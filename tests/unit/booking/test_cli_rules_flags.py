"""The rules client's guard flags (`--rules-breaker-seconds`, `--rules-max-calls`) on the
booking commands: taken, and passed to the rules client, by every command that calls the
rules service (serve, demo; sweep, which reports overdue tickets and delivers the outbox;
posters, which lists a region's firms); refused (argparse: exit 2) by those that never do
(outbox, which only counts and requeues; sign-in-phone, which writes booking's own card)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.booking.adapters.rules_client import RulesClient
from services.booking.entrypoints.cli import _context, _parser
from tests.support import RULESETS

GUARDS = ["--rules-breaker-seconds", "7", "--rules-max-calls", "3"]
WHAT = {  # each command's own required arguments
    "serve": [],
    "demo": [],
    "sweep": [],
    "posters": ["--out", "posters"],
    "outbox": [],
    "sign-in-phone": ["--enterprise", "91330782MA2000001K", "--clear"],
}


def files(tmp_path: Path) -> list[str]:
    return [
        "--menu", str(RULESETS / "menu.yaml"),
        "--regions", str(RULESETS / "regions.yaml"),
        "--qr-keys", str(tmp_path / "keys.json"), "--new-qr-keys",
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["serve", "demo", "sweep", "posters"])
def test_a_command_that_calls_rules_passes_the_guard_flags_to_its_client(
    command: str, tmp_path: Path
) -> None:
    args = _parser().parse_args([command, *WHAT[command], *files(tmp_path), *GUARDS])
    client = _context(args).rules
    assert isinstance(client, RulesClient)
    assert client._max_calls == 3
    assert {r.breaker.open_seconds for r in client._replicas} == {7.0}
    client.close()


@pytest.mark.parametrize("command", ["outbox", "sign-in-phone"])
@pytest.mark.parametrize("flag", [GUARDS[:2], GUARDS[2:]])
def test_a_command_that_never_calls_rules_refuses_the_guard_flags(
    command: str, flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args([command, *WHAT[command], *flag])
    assert info.value.code == 2
    assert f"unrecognized arguments: {flag[0]}" in capsys.readouterr().err


def test_sign_in_phone_still_builds_its_context_without_them(tmp_path: Path) -> None:
    args = _parser().parse_args(["sign-in-phone", *WHAT["sign-in-phone"], *files(tmp_path)])
    client = _context(args).rules
    assert isinstance(client, RulesClient)
    client.close()


def test_posters_read_the_servers_public_url_and_hotline_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review 65: `serve` reads BOOKING_PUBLIC_URL, `posters` did not: with the city's URL
    set in the environment, posters were printed with codes for http://127.0.0.1:8080."""
    monkeypatch.setenv("BOOKING_PUBLIC_URL", "https://aq.example.gov.cn")
    monkeypatch.setenv("BOOKING_HOTLINE", "0579-12345")
    args = _parser().parse_args(["posters", *WHAT["posters"]])
    assert (args.public_url, args.hotline) == ("https://aq.example.gov.cn", "0579-12345")
    served = _parser().parse_args(["serve"])
    assert (served.public_url, served.hotline) == (args.public_url, args.hotline)


@pytest.mark.parametrize("command", ["serve", "posters"])
@pytest.mark.parametrize(
    "url", ["notaurl", "ftp://aq.example.cn", "https://", "http://h:x", "http://h/?a=1"]
)
def test_a_public_url_phones_could_not_open_is_refused_at_start(
    command: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 65: `--public-url notaurl` was taken, and every QR code and poster would
    have pointed at `notaurl/q/…`."""
    with pytest.raises(SystemExit) as info:
        _parser().parse_args([command, *WHAT[command], "--public-url", url])
    assert info.value.code == 2
    assert "argument --public-url" in capsys.readouterr().err


def test_a_public_url_with_a_path_or_a_trailing_slash_is_taken() -> None:
    for given, kept in [
        ("https://aq.example.gov.cn/", "https://aq.example.gov.cn"),
        ("http://10.0.0.5:8080/booking", "http://10.0.0.5:8080/booking"),
    ]:
        assert (
            _parser().parse_args(["posters", *WHAT["posters"], "--public-url", given]).public_url
            == kept
        )


@pytest.mark.parametrize("command", ["serve", "posters"])
def test_a_public_url_in_capitals_comes_back_with_its_scheme_in_lower_case(command: str) -> None:
    """Review 64 leftovers: `HTTPS://…` was taken as it was written, and the firm's cookie
    (Secure only for a `https://` prefix) went out without Secure."""
    for given, kept in [
        ("HTTPS://aq.example.gov.cn/", "https://aq.example.gov.cn"),
        ("Https://aq.example.gov.cn/Booking", "https://aq.example.gov.cn/Booking"),
        ("HTTP://10.0.0.5:8080", "http://10.0.0.5:8080"),
    ]:
        args = _parser().parse_args([command, *WHAT[command], "--public-url", given])
        assert args.public_url == kept
