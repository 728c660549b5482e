"""The `users` command against the review of issue 12 (review-12.md #11): options are
never abbreviated, a mistyped SQLite path is an error (no new database), an unreachable
PostgreSQL is one line, and the audit trail names the operator (each run in its own
process, as an operator runs it)."""

from __future__ import annotations

import getpass
from pathlib import Path

from sqlalchemy import select

from services.booking.adapters.orm import audit_log
from services.common.db import make_engine
from tests.integration.booking.test_staff_accounts import users


def test_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such"
    for action in (["list"], ["disable", "lisi"], ["reset-password", "lisi"]):
        ran = users(f"sqlite:///{folder / 'b.db'}", *action)
        assert ran.returncode == 1 and ran.stderr.startswith("error: --db: no folder"), action
        ran = users(f"sqlite:///{tmp_path / 'missing.db'}", *action)
        assert ran.returncode == 1 and "error: --db: no database at" in ran.stderr, action
    added = users(f"sqlite:///{folder / 'b.db'}", "add", "lisi", "--name", "李四",
                  "--role", "supervisor")  # fmt: skip
    assert added.returncode == 1 and "no folder" in added.stderr
    assert not (tmp_path / "no").exists() and not (tmp_path / "missing.db").exists()


def test_an_unreachable_postgresql_is_one_line() -> None:
    ran = users("postgresql://postgres:secret-pw@127.0.0.1:1/booking", "list")
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database postgresql://postgres:***@")
    assert "secret-pw" not in ran.stderr and "Traceback" not in ran.stderr


def test_no_abbreviated_options_and_the_operator_in_the_audit(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    abbreviated = users(db, "add", "lisi", "--name", "李四", "--role", "supervisor",
                        "--password", "hunter2hunter2")  # fmt: skip
    assert abbreviated.returncode == 2
    assert "unrecognized arguments: --password " in abbreviated.stderr  # not --password-stdin
    added = users(db, "add", "lisi", "--name", "李四", "--role", "supervisor",
                  "--password-stdin", stdin="another-pass-9\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert users(db, "disable", "lisi").returncode == 0
    engine = make_engine(db)
    with engine.connect() as conn:
        callers = set(conn.execute(select(audit_log.c.caller)).scalars())
    engine.dispose()
    assert callers == {f"cli:{getpass.getuser()}"}
