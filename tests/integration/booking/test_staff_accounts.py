"""Staff accounts on a real database: the `users` command, sign-in with lockout, sessions
and CSRF state kept in the database (so another process or replica sees them), expiry,
sign-out everywhere on disable; and the demo accounts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from services.booking.adapters.orm import audit_log, staff_accounts, staff_sessions
from services.booking.adapters.unit_of_work import SqlUnitOfWork
from services.booking.domain.records import Expert
from services.booking.domain.staff import SessionPolicy
from services.booking.service_layer import staff_accounts as accounts
from services.booking.service_layer import staff_sessions as sessions
from services.booking.service_layer.staff_sessions import Outcome
from services.common.db import make_engine
from services.common.regions import load_regions
from tests.support import ROOT, RULESETS

REGIONS = load_regions(RULESETS / "regions.yaml")
PASSWORD = "correct-horse-7"


def add(engine: Engine, username: str, role: str = "inspector", **extra: str) -> None:
    region = extra.get("region", "稠城街道" if role == "inspector" else "")
    accounts.add_user(
        SqlUnitOfWork(engine),
        REGIONS,
        accounts.NewAccount(username, "王芳", role, PASSWORD, region, extra.get("expert_id", "")),
    )


def users(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m services.booking users …` in its own process (it sets up logging)."""
    return subprocess.run(
        [sys.executable, "-m", "services.booking", "users", *args, "--db", db],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # eleven processes, each importing the service
def test_users_command(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    added = users(db, "add", "wangfang", "--name", "王芳", "--role", "inspector",
                  "--region", "330782001")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "wangfang added: inspector (booking.inspector, booking.read)" in added.stdout
    printed = added.stdout.split("password: ")[1].strip()
    added = users(db, "add", "lisi", "--name", "李四", "--role", "supervisor",
                  "--password-stdin", stdin="another-pass-9\n")  # fmt: skip
    assert added.returncode == 0 and "password:" not in added.stdout
    # bad input: every bad field named, exit 2, nothing written
    bad = users(db, "add", "zhao", "--name", "赵", "--role", "inspector", "--region", "火星街道")
    assert bad.returncode == 2 and "region" in bad.stderr
    bad = users(db, "add", "qian", "--name", "钱", "--role", "expert")
    assert bad.returncode == 2 and "expert_id" in bad.stderr
    again = users(db, "add", "wangfang", "--name", "王芳", "--role", "supervisor")
    assert again.returncode == 1 and "exists" in again.stderr
    assert users(db, "list").stdout.splitlines() == [
        "wangfang\tinspector\t王芳\t稠城街道\tactive",
        "lisi\tsupervisor\t李四\t-\tactive",
    ]
    made = make_engine(db)
    assert sessions.sign_in(SqlUnitOfWork(made), "wangfang", printed).outcome == Outcome.SIGNED_IN
    assert sessions.sign_in(SqlUnitOfWork(made), "lisi", "another-pass-9").secret
    assert users(db, "disable", "lisi").returncode == 0
    assert users(db, "list").stdout.splitlines()[-1].endswith("disabled")
    assert sessions.sign_in(SqlUnitOfWork(made), "lisi", "another-pass-9").outcome == Outcome.WRONG
    assert users(db, "reset-password", "lisi", "--password-stdin", stdin="short\n").returncode == 2
    reset = users(db, "reset-password", "lisi")
    assert reset.returncode == 0
    new = reset.stdout.split("password: ")[1].strip()
    assert sessions.sign_in(SqlUnitOfWork(made), "lisi", new).outcome == Outcome.SIGNED_IN
    with made.connect() as conn:
        stored = [r.password_hash for r in conn.execute(select(staff_accounts))]
        trail = [r.after for r in conn.execute(select(audit_log))]
    made.dispose()
    assert all(h.startswith("$argon2id$") for h in stored)
    assert not any("argon2" in str(after) for after in trail)  # the trail keeps no hash


def test_sessions_live_in_the_database(staff_engine: Engine) -> None:
    add(staff_engine, "wangfang")
    anonymous = sessions.start_anonymous(SqlUnitOfWork(staff_engine))
    assert anonymous.account is None and anonymous.csrf
    signed = sessions.sign_in(SqlUnitOfWork(staff_engine), "wangfang", PASSWORD, anonymous.secret)
    assert signed.outcome == Outcome.SIGNED_IN
    # another process (its own engine) sees the session and checks its CSRF token
    other = make_engine(staff_engine.url.render_as_string(hide_password=False))
    try:
        seen = sessions.visitor(SqlUnitOfWork(other), signed.secret)
        assert seen is not None and seen.account is not None
        assert seen.account.username == "wangfang"
        assert seen.csrf_ok(seen.csrf) and not seen.csrf_ok(anonymous.csrf)
    finally:
        other.dispose()
    assert sessions.visitor(SqlUnitOfWork(staff_engine), anonymous.secret) is None  # replaced
    with staff_engine.connect() as conn:
        stored = [(r.id_digest, r.csrf_digest) for r in conn.execute(select(staff_sessions))]
    assert len(stored) == 1 and signed.secret not in stored[0]
    assert seen.csrf not in stored[0]
    # idle too long: gone (and removed)
    idle = SessionPolicy(idle=timedelta(0))
    assert sessions.visitor(SqlUnitOfWork(staff_engine), signed.secret, idle) is None
    with staff_engine.connect() as conn:
        assert not list(conn.execute(select(staff_sessions)))


def test_lockout_is_kept_in_the_database(staff_engine: Engine) -> None:
    add(staff_engine, "wangfang")
    outcomes = [
        sessions.sign_in(SqlUnitOfWork(staff_engine), "wangfang", "wrong-password").outcome
        for _ in range(5)
    ]
    assert outcomes == [Outcome.WRONG] * 4 + [Outcome.LOCKED]
    locked = sessions.sign_in(SqlUnitOfWork(staff_engine), "wangfang", PASSWORD)
    assert locked.outcome == Outcome.LOCKED and locked.locked_until is not None
    assert (
        sessions.sign_in(SqlUnitOfWork(staff_engine), "nobody", PASSWORD).outcome == Outcome.WRONG
    )
    accounts.reset_password(SqlUnitOfWork(staff_engine), "wangfang", "a-new-password-1")
    again = sessions.sign_in(SqlUnitOfWork(staff_engine), "wangfang", "a-new-password-1")
    assert again.outcome == Outcome.SIGNED_IN


def test_disabling_signs_the_person_out(staff_engine: Engine) -> None:
    add(staff_engine, "wangfang")
    signed = sessions.sign_in(SqlUnitOfWork(staff_engine), "wangfang", PASSWORD)
    accounts.disable_user(SqlUnitOfWork(staff_engine), "wangfang")
    assert sessions.visitor(SqlUnitOfWork(staff_engine), signed.secret) is None


def test_demo_staff_one_account_per_role(staff_engine: Engine) -> None:
    with SqlUnitOfWork(staff_engine) as uow:
        uow.register.add(Expert("E-FIRE-01", "陈工", "13900000000", [], [], [], 2, True, []))
        uow.commit()
    logins = accounts.seed_demo_staff(SqlUnitOfWork(staff_engine), "E-FIRE-01", REGIONS)
    assert [role for _, _, role in logins] == ["inspector", "expert", "supervisor", "admin"]
    listed = {a.username: a for a in accounts.list_users(SqlUnitOfWork(staff_engine))}
    assert listed["demo-inspector"].region == "稠城街道"
    assert listed["demo-expert"].expert_id == "E-FIRE-01"
    for username, password, _ in logins:
        assert sessions.sign_in(SqlUnitOfWork(staff_engine), username, password).secret
    # seeding again (a restart) keeps the documented passwords working
    assert accounts.seed_demo_staff(SqlUnitOfWork(staff_engine), "E-FIRE-01", REGIONS) == logins
