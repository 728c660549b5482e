"""`python -m services.booking posters --region … --out DIR`: one SVG and one PDF poster
per firm with a progress bar; each firm's CURRENT code (no reissue: posters on the walls
keep working), a first code only where a firm has none; the firm's checklist of the
major-hazard items that apply to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from services.booking.adapters.poster import qr_svg_path
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.entrypoints.cli import main
from services.booking.service_layer.qr_codes import firm_for_token
from tests.booking_env import TEST_KEYS, Pair

PUBLIC = "https://safety.example.org"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main` points structlog at the captured stderr: put it back for the next test."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_bulk_posters_keep_current_codes_and_issue_missing_ones(
    sqlite_pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sqlite_pair
    dusty = pair.register_firm(41, name="义乌市森木家具厂", industry="light_industry",
                               high_risk_domains=["dust_explosion"])  # fmt: skip
    plain = pair.register_firm(42, name="义乌市小百货店")
    token = pair.issue(dusty).token  # already on a wall
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {"active": TEST_KEYS.active, "keys": {k: v.hex() for k, v in TEST_KEYS.keys.items()}}
        ),
        encoding="utf-8",
    )
    out = tmp_path / "posters"
    code = main(
        [
            "posters",
            "--region", "稠城街道",
            "--firm", plain,
            "--out", str(out),
            "--db", pair.booking_engine.url.render_as_string(hide_password=False),
            "--rules", f"127.0.0.1:{pair.rules_port}",
            "--qr-keys", str(keys),
            "--public-url", PUBLIC,
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert "2 poster(s)" in printed.out and "1 first code(s) issued" in printed.out
    assert "posters" in printed.err  # tqdm's progress bar
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{firm}.{ext}" for firm in (dusty, plain) for ext in ("svg", "pdf")
    )
    with SqlUnitOfWork(pair.booking_engine) as uow:  # the code on the wall still works
        assert firm_for_token(uow, pair.ctx, token).enterprise_id == dusty
        assert uow.register.firm(plain).qr_serial  # a first code for the other
    svg = (out / f"{dusty}.svg").read_text(encoding="utf-8")
    assert qr_svg_path(f"{PUBLIC}/q/{token}")[0] in svg  # the current code, not a new one
    assert "干式除尘无泄爆惰化抑爆" in svg  # its checklist: GM2023 11(3) applies to it
    assert "干式除尘无泄爆惰化抑爆" not in (out / f"{plain}.svg").read_text(encoding="utf-8")
    assert (out / f"{dusty}.pdf").read_bytes().startswith(b"%PDF")


def test_staff_set_and_clear_the_sign_in_mobile_from_the_command_line(
    sqlite_pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sqlite_pair
    firm = pair.register_firm(43)
    pair.issue(firm)
    common = [
        "--db", pair.booking_engine.url.render_as_string(hide_password=False),
        "--rules", f"127.0.0.1:{pair.rules_port}",
        "--qr-keys", str(tmp_path / "keys.json"),
    ]  # fmt: skip
    assert main(["sign-in-phone", "--enterprise", firm, "--phone", "13912345678", *common]) == 0
    assert "139****5678" in capsys.readouterr().out  # masked on the terminal too
    with SqlUnitOfWork(pair.booking_engine) as uow:
        assert uow.register.firm(firm).sign_in_phone == "13912345678"
    assert main(["sign-in-phone", "--enterprise", firm, "--phone", "139", *common]) == 1
    assert main(["sign-in-phone", "--enterprise", firm, "--clear", *common]) == 0
    with SqlUnitOfWork(pair.booking_engine) as uow:
        assert uow.register.firm(firm).sign_in_phone == ""
