"""Staff accounts: add, disable, reset a password, list (`python -m services.booking
users …`), and the demo accounts `make run` prints.

A password is kept only as its argon2id hash (adapters/passwords.py). Disabling an
account or resetting its password signs the person out everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.booking.adapters.passwords import hash_password
from services.booking.domain.staff import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERNAME,
    Role,
    StaffAccount,
)
from services.booking.service_layer.unit_of_work import UnitOfWork
from services.common.clock import now
from services.common.demo_city import STAFF_REGION
from services.common.errors import (
    AlreadyExists,
    FieldViolation,
    NotFound,
    ValidationError,
)
from services.common.regions import RegionRegistry
from services.common.values import control_problem, preview, trim

DEMO_INSPECTOR_REGION = STAFF_REGION  # the street of the demo city's staff work


@dataclass(frozen=True)
class NewAccount:
    username: str
    display_name: str
    role: str
    password: str
    region: str = ""
    expert_id: str = ""


def check_password(password: str, field: str = "password") -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError([FieldViolation(field, f"{MIN_PASSWORD}..{MAX_PASSWORD} characters")])


def _checked(uow: UnitOfWork, regions: RegionRegistry | None, new: NewAccount) -> StaffAccount:
    """The account to store, or ValidationError naming every bad field."""
    bad: list[FieldViolation] = []
    if not USERNAME.match(new.username):
        bad.append(FieldViolation("username", "3-40 of a-z 0-9 _ . -, starting with a letter"))
    name = trim(new.display_name)
    if not name or len(name) > 50 or control_problem(name):
        bad.append(FieldViolation("display_name", "1-50 characters, no control characters"))
    try:
        role = Role(new.role)
    except ValueError:
        bad.append(FieldViolation("role", "inspector, expert, supervisor or admin"))
        role = None
    try:
        check_password(new.password)
    except ValidationError as exc:
        bad.extend(exc.violations)
    region = ""
    if role == Role.INSPECTOR:
        region = _region(regions, new.region, bad)
    elif new.region:
        bad.append(FieldViolation("region", "only an inspector has a region"))
    if role == Role.EXPERT:
        if not new.expert_id:
            bad.append(FieldViolation("expert_id", "an expert account names its expert id"))
        else:
            with uow:
                if uow.register.expert(new.expert_id) is None:
                    bad.append(FieldViolation("expert_id", f"no expert {preview(new.expert_id)}"))
    elif new.expert_id:
        bad.append(FieldViolation("expert_id", "only an expert account has an expert id"))
    if bad:
        raise ValidationError(bad)
    assert role is not None
    return StaffAccount(
        username=new.username,
        display_name=name,
        role=role.value,
        password_hash=hash_password(new.password),
        region=region,
        expert_id=new.expert_id,
        password_changed_at=now(),
        created_at=now(),
    )


def _region(regions: RegionRegistry | None, value: str, bad: list[FieldViolation]) -> str:
    """An inspector's region as stored (the 镇街's Chinese name), given by name or code."""
    if not value:
        bad.append(FieldViolation("region", "an inspector serves one 镇街 (--region)"))
        return ""
    if regions is None:
        return trim(value)
    found = regions.canonical(value)
    if found is None:
        bad.append(FieldViolation("region", regions.problem(value)))
        return ""
    return found


def add_user(uow: UnitOfWork, regions: RegionRegistry | None, new: NewAccount) -> StaffAccount:
    """A new account (`regions`: rulesets/regions.yaml, an inspector's region is one of
    them; None: taken as given)."""
    account = _checked(uow, regions, new)
    with uow:
        if uow.register.staff_account(account.username) is not None:
            raise AlreadyExists(f"user {account.username} exists")
        uow.register.add(account)
        uow.commit()
    return account


def disable_user(uow: UnitOfWork, username: str) -> StaffAccount:
    """The account can no longer sign in; its sessions end now."""
    with uow:
        account = _account(uow, username)
        account.active = False
        uow.register.end_sessions_of(username)
        uow.commit()
        return account


def reset_password(uow: UnitOfWork, username: str, password: str) -> StaffAccount:
    """A new password (and the account unlocked, enabled); its sessions end now."""
    check_password(password)
    with uow:
        account = _account(uow, username)
        account.password_hash = hash_password(password)
        account.password_changed_at = now()
        account.active = True
        account.failed_attempts, account.locked_until = 0, None
        uow.register.end_sessions_of(username)
        uow.commit()
        return account


def list_users(uow: UnitOfWork) -> list[StaffAccount]:
    with uow:
        return list(uow.register.staff_accounts())


def _account(uow: UnitOfWork, username: str) -> StaffAccount:
    account = uow.register.staff_account(username, for_update=True)
    if account is None:
        raise NotFound(f"no user {preview(username)}")
    return account


def seed_demo_staff(
    uow: UnitOfWork, expert_id: str, regions: RegionRegistry | None = None
) -> list[tuple[str, str, str]]:
    """One demo account per role (the inspector of 稠城街道, the expert `expert_id`) with
    the documented demo passwords (README "Staff pages"); an existing demo account gets
    its demo password back (unlocked, enabled). Returns (username, password, role).
    Only for `python -m services.booking demo`: never on a real deployment."""
    wanted = (
        ("demo-inspector", "检查员（演示）", Role.INSPECTOR, DEMO_INSPECTOR_REGION, ""),
        ("demo-expert", "专家（演示）", Role.EXPERT, "", expert_id),
        ("demo-supervisor", "监管人员（演示）", Role.SUPERVISOR, "", ""),
        ("demo-admin", "管理员（演示）", Role.ADMIN, "", ""),
    )
    existing = {a.username for a in list_users(uow)}
    out = []
    for username, name, role, region, expert in wanted:
        password = f"{username}-2026"
        if username in existing:
            reset_password(uow, username, password)
        else:
            add_user(uow, regions, NewAccount(username, name, role.value, password, region, expert))
        out.append((username, password, role.value))
    return out
