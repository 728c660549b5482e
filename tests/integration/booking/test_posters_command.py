"""`python -m services.booking posters --region … --out DIR`: one SVG and one PDF poster
per firm the rules register lists in the region (ListEnterprises, every page), with a
progress bar; each firm's CURRENT code (no reissue: posters on the walls
keep working), a first code only where a firm has none; the firm's checklist of the
major-hazard items that apply to it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from services.booking.adapters.poster import qr_svg_path
from services.booking.adapters.rules_client import RulesClient
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.entrypoints.cli import main
from services.booking.service_layer.qr_codes import firm_for_token
from tests.booking_env import TEST_KEYS, Pair

PUBLIC = "https://safety.example.org"


def _keys(tmp_path: Path) -> Path:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {"active": TEST_KEYS.active, "keys": {k: v.hex() for k, v in TEST_KEYS.keys.items()}}
        ),
        encoding="utf-8",
    )
    keys.chmod(0o600)  # the server refuses a signing key file others may read
    return keys


def _posters(pair: Pair, tmp_path: Path, out: Path, rules: str, *extra: str) -> int:
    return main(
        [
            "posters",
            *extra,
            "--out", str(out),
            "--db", pair.booking_engine.url.render_as_string(hide_password=False),
            "--rules", rules,
            "--qr-keys", str(_keys(tmp_path)),
            "--public-url", PUBLIC,
        ]
    )  # fmt: skip


def test_bulk_posters_cover_every_rules_firm_of_the_region_keeping_current_codes(
    sqlite_pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sqlite_pair
    dusty = pair.register_firm(41, name="义乌市森木家具厂", industry="light_industry",
                               high_risk_domains=["dust_explosion"])  # fmt: skip
    plain = pair.register_firm(42, name="义乌市小百货店")  # booking never saw it
    unseen = pair.register_firm(44, name="义乌市五金加工厂")  # nor this one
    elsewhere = pair.register_firm(45, region="北苑街道")  # not of the region
    extra = pair.register_firm(46, region="城厢街道")  # asked for by --firm
    token = pair.issue(dusty).token  # already on a wall
    with SqlUnitOfWork(pair.booking_engine) as uow:
        assert uow.register.firm(plain) is None and uow.register.firm(unseen) is None
    out = tmp_path / "posters"
    rules = f"127.0.0.1:{pair.rules_port}"
    code = _posters(pair, tmp_path, out, rules, "--region", "稠城街道", "--firm", extra)
    assert code == 0
    printed = capsys.readouterr()
    assert "4 poster(s)" in printed.out and "3 first code(s) issued" in printed.out
    assert "posters" in printed.err  # tqdm's progress bar
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{firm}.{ext}" for firm in (dusty, plain, unseen, extra) for ext in ("svg", "pdf")
    )
    assert not (out / f"{elsewhere}.svg").exists()
    with SqlUnitOfWork(pair.booking_engine) as uow:  # the code on the wall still works
        assert firm_for_token(uow, pair.ctx, token).enterprise_id == dusty
        assert uow.register.firm(plain).qr_serial  # a first code for the others
        assert uow.register.firm(unseen).qr_serial
    svg = (out / f"{dusty}.svg").read_text(encoding="utf-8")
    assert qr_svg_path(f"{PUBLIC}/q/{token}")[0] in svg  # the current code, not a new one
    assert "干式除尘无泄爆惰化抑爆" in svg  # its checklist: GM2023 11(3) applies to it
    assert "干式除尘无泄爆惰化抑爆" not in (out / f"{plain}.svg").read_text(encoding="utf-8")
    assert "义乌市五金加工厂" in (out / f"{unseen}.svg").read_text(encoding="utf-8")
    assert (out / f"{dusty}.pdf").read_bytes().startswith(b"%PDF")

    with SqlUnitOfWork(pair.booking_engine) as uow:
        serials = {f: uow.register.firm(f).qr_serial for f in (dusty, plain, unseen)}
    again = tmp_path / "again"  # a second run (the county, by code) issues nothing
    assert _posters(pair, tmp_path, again, rules, "--region", "330782") == 0
    assert "4 poster(s)" in capsys.readouterr().out  # 稠城街道's three and 北苑街道's one
    with SqlUnitOfWork(pair.booking_engine) as uow:
        assert {f: uow.register.firm(f).qr_serial for f in serials} == serials
        assert firm_for_token(uow, pair.ctx, token).enterprise_id == dusty
    assert (again / f"{plain}.svg").read_text(encoding="utf-8") == (out / f"{plain}.svg").read_text(
        encoding="utf-8"
    )


def test_the_rules_client_reads_every_page_of_a_regions_firms(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    ids = sorted(pair.register_firm(n) for n in range(50, 55))
    pair.register_firm(55, region="北苑街道")
    client = RulesClient(f"127.0.0.1:{pair.rules_port}", timeout=5)
    found = client.enterprises("稠城街道", page_size=2)  # three pages
    assert [f.enterprise_id for f in found] == ids
    assert (found[0].name, found[0].region, found[0].industry) == (
        "测试企业50",
        "稠城街道",
        "machinery",
    )
    assert found[0].status == "whitelist"


def test_posters_say_so_in_one_line_when_rules_is_unreachable(
    sqlite_pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sqlite_pair
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "posters"
    code = _posters(pair, tmp_path, out, f"127.0.0.1:{port}", "--region", "稠城街道")
    assert code == 1
    printed = capsys.readouterr()
    (line,) = [x for x in printed.err.splitlines() if x.startswith("posters:")]
    assert "rules service is unavailable" in line and "Traceback" not in printed.err
    assert not out.exists()  # nothing half-written


def test_staff_set_and_clear_the_sign_in_mobile_from_the_command_line(
    sqlite_pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = sqlite_pair
    firm = pair.register_firm(43)
    pair.issue(firm)
    common = [
        "--db", pair.booking_engine.url.render_as_string(hide_password=False),
        "--rules", f"127.0.0.1:{pair.rules_port}",
        "--qr-keys", str(tmp_path / "keys.json"), "--new-qr-keys",
    ]  # fmt: skip
    assert main(["sign-in-phone", "--enterprise", firm, "--phone", "13912345678", *common]) == 0
    assert "139****5678" in capsys.readouterr().out  # masked on the terminal too
    with SqlUnitOfWork(pair.booking_engine) as uow:
        assert uow.register.firm(firm).sign_in_phone == "13912345678"
    assert main(["sign-in-phone", "--enterprise", firm, "--phone", "139", *common]) == 1
    assert main(["sign-in-phone", "--enterprise", firm, "--clear", *common]) == 0
    with SqlUnitOfWork(pair.booking_engine) as uow:
        assert uow.register.firm(firm).sign_in_phone == ""


def test_a_restarted_demo_prints_the_codes_it_printed_before(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    """`booking demo` issued every example firm a new code at each start, so the posters
    of the last run answered 403 (review finding 15): it keeps each firm's current code,
    issuing one only to a firm that has none."""
    from dataclasses import replace

    from services.booking.entrypoints.cli import demo_codes

    pair = sqlite_pair
    firms = (pair.register_firm(51), pair.register_firm(52))
    ctx = replace(pair.ctx, public_url=PUBLIC)
    first = demo_codes(pair.booking_engine, ctx, firms, tmp_path)
    poster = (tmp_path / f"poster-{firms[0]}.svg").read_text(encoding="utf-8")
    again = demo_codes(pair.booking_engine, ctx, firms, tmp_path)
    assert again == first and all(PUBLIC + "/q/" in line for line in first)
    assert (tmp_path / f"poster-{firms[0]}.svg").read_text(encoding="utf-8") == poster
    for firm, line in zip(firms, first, strict=True):
        token = line.split("/q/")[1].split()[0]
        with SqlUnitOfWork(pair.booking_engine) as uow:
            assert firm_for_token(uow, pair.ctx, token).enterprise_id == firm  # not revoked
