"""`migrations.upgrade` skips Alembic only when the database is at the newest revision:
the head it reads from the version files is Alembic's own, a database one revision
behind is still upgraded, and a command on an up-to-date database never imports
Alembic (the start-up it saves)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from services.booking.adapters import migrate as booking_migrate
from services.common import migrations
from services.common.db import make_engine
from services.rules.adapters import migrate
from tests.support import ROOT


@pytest.mark.parametrize("folder", [migrate.MIGRATIONS, booking_migrate.MIGRATIONS])
def test_the_head_read_from_the_files_is_alembic_s(folder: Path) -> None:
    assert migrations.script_head(folder) == ScriptDirectory(str(folder)).get_current_head()


def _version(name: str, revision: str, down: str | None, extra: str = "") -> tuple[str, str]:
    down_text = "None" if down is None else f'"{down}"'
    body = f'revision = "{revision}"\ndown_revision = {down_text}\n'
    return name, body + "branch_labels = None\ndepends_on = None\n" + extra


@pytest.mark.parametrize(
    ("files", "head"),
    [
        ([_version("a.py", "1", None), _version("b.py", "2", "1")], "2"),
        (
            [_version("a.py", "1", None), _version("b.py", "2", "1"), _version("c.py", "3", "1")],
            None,
        ),
        ([_version("a.py", "1", None), _version("b.py", "2", None)], None),
        ([_version("a.py", "1", None), _version("b.py", "2", "9")], None),
        (
            [_version("a.py", "1", None), ("b.py", 'revision = "2"\ndown_revision = ("1", "0")\n')],
            None,
        ),
        (
            [_version("a.py", "1", None), ("b.py", 'revision: str = "2"\ndown_revision = "1"\n')],
            None,
        ),
        (
            [_version("a.py", "1", None, 'branch_labels = ("x",)\n'), _version("b.py", "2", "1")],
            None,
        ),
        ([_version("a.py", "1", None), _version("b.py", "1", None)], None),
    ],
    ids=[
        "linear",
        "branched",
        "two roots",
        "unknown parent",
        "merge",
        "annotated",
        "labels",
        "twice",
    ],
)
def test_a_history_that_is_not_plainly_linear_is_left_to_alembic(
    tmp_path: Path, files: list[tuple[str, str]], head: str | None
) -> None:
    (tmp_path / "versions").mkdir()
    for name, body in files:
        (tmp_path / "versions" / name).write_text(body, encoding="utf-8")
    assert migrations.script_head(tmp_path) == head


def test_a_database_behind_the_head_is_upgraded(db_engine: Engine) -> None:
    head = migrations.script_head(migrate.MIGRATIONS)
    assert migrate.current_revision(db_engine) == head
    with db_engine.begin() as connection:  # as if 0013 were not applied yet: it is idempotent
        connection.execute(text("UPDATE alembic_version SET version_num = '0012'"))
    assert not migrations._at_head(db_engine, migrate.MIGRATIONS)
    migrate.upgrade(db_engine)
    assert migrate.current_revision(db_engine) == head
    assert migrations._at_head(db_engine, migrate.MIGRATIONS)


def test_an_up_to_date_database_is_not_migrated_through_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rules.db'}"
    migrate.upgrade(make_engine(url))
    check = (
        "import sys; from services.common.db import make_engine; "
        "from services.rules.adapters import migrate; "
        f"migrate.upgrade(make_engine({url!r})); print('alembic' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_an_editors_lock_file_or_an_unreadable_file_does_not_stop_a_command(
    tmp_path: Path,
) -> None:
    """Review 32 F1: `.#0002_x.py` (Emacs's lock, a dangling link) raised at every
    command's start while someone edited a migration; a file not in UTF-8 too. Alembic
    skips the first; either way the check hands over to Alembic or reads past it."""
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_first.py").write_text(
        'revision = "0001"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n',
        encoding="utf-8",
    )
    (versions / ".#0001_first.py").symlink_to(tmp_path / "gone")
    assert migrations.script_head(tmp_path) == "0001"
    (versions / "0002_latin.py").write_bytes(b'revision = "0002"  # caf\xe9\n')
    assert migrations.script_head(tmp_path) is None
