"""Review 25 F1: rulesets/menu.yaml and regions.yaml are read by both services, which
must accept and refuse the same files (one parser, services/common/yaml_files.py), and
a file neither can read is a message naming it, never a traceback (a bad escape's
ValueError or deep nesting's RecursionError included)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from services.booking.adapters.menu import MenuError, load_menu
from services.booking.entrypoints import cli as booking_cli
from services.common.regions import RegionsError, load_regions
from services.rules.adapters.ruleset_loader import RulesetError, load_rulebook
from tests.support import RULESETS

MENU_ITEM = "{code: first_lesson,"
TOWNSHIP = '{code: "330782001", name: 稠城街道}'
# (file, text replaced, replacement): files the pure-Python and libyaml parsers disagree
# on, or that made one of them raise something other than a YAML error
EDITS = [
    ("menu.yaml", MENU_ITEM, "{code:\tfirst_lesson,"),  # a tab after ':' in a flow map
    ("menu.yaml", MENU_ITEM, '{x: "\\ud800", code: first_lesson,'),  # a lone surrogate
    ("menu.yaml", MENU_ITEM, '{x: "\\U00110000", code: first_lesson,'),  # past U+10FFFF
    ("regions.yaml", TOWNSHIP, "{x: " + "[" * 3000 + "]" * 3000 + ", " + TOWNSHIP[1:]),
    ("menu.yaml", MENU_ITEM, "{code: first_lesson, x: 'unclosed,"),  # plainly broken
]


def _refused(call: Callable[[], object], error: type[Exception]) -> bool:
    """Whether the file was refused, by the reader's own error (anything else fails)."""
    try:
        call()
    except error as exc:
        assert len(str(exc)) < 500, str(exc)[:200]  # a message, not the file
        return True
    return False


@pytest.mark.parametrize(("name", "old", "new"), EDITS)
def test_both_services_accept_and_refuse_the_same_shared_file(
    tmp_path: Path, name: str, old: str, new: str
) -> None:
    root = tmp_path / "rulesets"
    shutil.copytree(RULESETS, root)
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    by_rules = _refused(lambda: load_rulebook(root), RulesetError)
    if name == "menu.yaml":
        by_booking = _refused(lambda: load_menu(path), MenuError)
    else:
        by_booking = _refused(lambda: load_regions(path), RegionsError)
    assert by_rules == by_booking, f"rules refuses: {by_rules}; booking refuses: {by_booking}"


def test_the_real_shared_files_load_in_booking() -> None:
    menu = load_menu(RULESETS / "menu.yaml")
    assert menu["first_lesson"].name == "开工第一课" and menu["first_lesson"].domain is None
    assert load_regions(RULESETS / "regions.yaml").township("稠城街道") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("items: []\n", "menu.yaml: field items: must be a non-empty list"),
        ("items: [{code: a}]\n", "menu.yaml: item 0: field name: required text"),
        ("items: [{code: a, name: b, domain: [x]}]\n", "menu.yaml: item 0: field domain:"),
        ("items: [{code:\ta, name: b\n", "menu.yaml: not valid YAML:"),
    ],
)
def test_booking_names_what_is_wrong_with_its_menu(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "menu.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MenuError) as info:
        load_menu(path)
    assert str(info.value).startswith(message)


def test_booking_refuses_to_start_on_a_bad_menu_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    menu = tmp_path / "menu.yaml"
    menu.write_text("items: [{code: a}]\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'booking.db'}"
    keys = ["--qr-keys", str(tmp_path / "keys.json"), "--new-qr-keys"]
    code = booking_cli.main(["sweep", "--menu", str(menu), "--db", db, *keys])
    assert code == 2
    assert "configuration error: menu.yaml: item 0: field name: required text" in (
        capsys.readouterr().err
    )
