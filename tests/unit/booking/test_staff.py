"""Staff accounts in the domain: roles → the gRPC scopes of docs/api.md, the lockout
policy, session expiry, CSRF tokens; and the region rule of service_layer/authz.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.booking.domain import messages
from services.booking.domain.staff import (
    EVERY,
    LOCKOUT,
    ROLE_SCOPES,
    SESSIONS,
    Reach,
    Role,
    StaffAccount,
    StaffSession,
    csrf_matches,
    csrf_token,
    digest,
    is_locked,
    needs_touch,
    record_failure,
    record_success,
    scopes_of,
    session_expired,
)
from services.booking.entrypoints.access import BOOKING_METHODS, PREFIX
from services.booking.service_layer import authz
from services.common.auth import SCOPES
from services.common.context import ANONYMOUS, Principal
from services.common.errors import NotFound, PermissionDenied
from services.common.regions import load_regions
from tests.support import RULESETS

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def admits(role: Role, method: str) -> bool:
    return bool(ROLE_SCOPES[role] & BOOKING_METHODS[PREFIX + method].scopes)


def test_every_role_maps_to_known_scopes() -> None:
    assert set(ROLE_SCOPES) == set(Role)
    for scopes in ROLE_SCOPES.values():
        assert scopes and scopes <= SCOPES
    assert scopes_of("inspector") == {"booking.inspector", "booking.read"}
    assert scopes_of("nobody") == frozenset()


@pytest.mark.parametrize(
    ("role", "method", "allowed"),
    [
        (Role.INSPECTOR, "RecheckTicket", True),
        (Role.INSPECTOR, "ListTickets", True),
        (Role.INSPECTOR, "RecordVisit", False),
        (Role.EXPERT, "RecordVisit", True),
        (Role.EXPERT, "RecheckTicket", True),  # only the tickets they found: authz
        (Role.EXPERT, "ListTickets", True),  # booking.read, as the dev tokens have it
        (Role.SUPERVISOR, "GetStats", True),
        (Role.SUPERVISOR, "RecheckTicket", False),
        (Role.SUPERVISOR, "RecordVisit", False),
        (Role.ADMIN, "RecordVisit", True),
        (Role.ADMIN, "RecheckTicket", True),
        (Role.ADMIN, "IssueQrCode", True),
    ],
)
def test_roles_admit_the_methods_of_their_scopes(role: Role, method: str, allowed: bool) -> None:
    assert admits(role, method) is allowed


def account() -> StaffAccount:
    return StaffAccount("wangfang", "王芳", "inspector", "hash", region="稠城街道")


def test_five_wrong_passwords_lock_for_fifteen_minutes() -> None:
    a = account()
    for n in range(LOCKOUT.max_failures - 1):
        assert record_failure(a, T0 + timedelta(seconds=n)) is False
        assert not is_locked(a, T0 + timedelta(seconds=n))
    assert record_failure(a, T0 + timedelta(seconds=10)) is True
    assert LOCKOUT.max_failures == 5 and LOCKOUT.lock_for == timedelta(minutes=15)
    assert is_locked(a, T0 + timedelta(minutes=15))
    assert not is_locked(a, T0 + timedelta(minutes=15, seconds=11))
    # after the lock runs out, a wrong password starts a new count
    assert record_failure(a, T0 + timedelta(minutes=20)) is False
    assert a.failed_attempts == 1 and a.locked_until is None


def test_a_right_password_resets_the_count() -> None:
    a = account()
    for _ in range(4):
        record_failure(a, T0)
    record_success(a)
    assert a.failed_attempts == 0
    assert record_failure(a, T0) is False


def test_a_naive_lock_instant_is_read_as_utc() -> None:
    a = account()
    a.locked_until = (T0 + timedelta(minutes=5)).replace(tzinfo=None)  # as SQLite returns it
    assert is_locked(a, T0)
    assert not is_locked(a, T0 + timedelta(minutes=6))


def session(created: datetime, seen: datetime) -> StaffSession:
    return StaffSession("d", "c", "wangfang", created, seen)


def test_sessions_end_after_idle_and_absolute_limits() -> None:
    assert SESSIONS.idle == timedelta(minutes=30)
    assert not session_expired(session(T0, T0), T0 + timedelta(minutes=30))
    assert session_expired(session(T0, T0), T0 + timedelta(minutes=31))
    busy = session(T0, T0 + timedelta(hours=11, minutes=50))
    assert not session_expired(busy, T0 + timedelta(hours=11, minutes=59))
    assert session_expired(busy, T0 + timedelta(hours=12, minutes=1))  # absolute: 12 h
    assert not needs_touch(session(T0, T0), T0 + timedelta(seconds=30))
    assert needs_touch(session(T0, T0), T0 + timedelta(minutes=1))


def test_the_csrf_token_is_derived_from_the_secret_and_checked_by_digest() -> None:
    token = csrf_token("secret-1")
    assert token != csrf_token("secret-2") and token == csrf_token("secret-1")
    s = StaffSession(digest("secret-1"), digest(token), "", T0, T0)
    assert csrf_matches(s, token)
    assert not csrf_matches(s, "")
    assert not csrf_matches(s, csrf_token("secret-2"))
    assert "secret-1" not in (s.id_digest, s.csrf_digest)


def test_an_inspectors_region_narrows_tickets_admins_see_all() -> None:
    regions = load_regions(RULESETS / "regions.yaml")
    inspector = Principal("i", frozenset({"booking.inspector"}), region="稠城街道")
    assert authz.inspector_regions(inspector, regions) == ("稠城街道",)
    county = Principal("c", frozenset({"booking.inspector"}), region="330782")
    assert "江东街道" in authz.inspector_regions(county, regions)
    admin = Principal("a", frozenset({"booking.admin", "booking.inspector"}), region="稠城街道")
    assert authz.inspector_regions(admin, regions) == ()
    assert authz.inspector_regions(ANONYMOUS, regions) == ()
    assert authz.inspector_regions(Principal("x", frozenset({"booking.inspector"})), regions) == ()
    unknown = Principal("u", frozenset({"booking.inspector"}), region="火星街道")
    with pytest.raises(PermissionDenied):
        authz.inspector_regions(unknown, regions)


def test_reach_keeps_an_expert_to_its_visits_and_an_inspector_to_its_region() -> None:
    regions = load_regions(RULESETS / "regions.yaml")
    expert = Principal("e", frozenset({"booking.expert", "booking.read"}), expert_id="E1")
    inspector = Principal("i", frozenset({"booking.inspector", "booking.read"}), region="稠城街道")
    both = Principal("b", frozenset({"booking.inspector", "booking.expert"}), expert_id="E1")
    admin = Principal("a", frozenset({"booking.admin", "booking.expert"}), expert_id="E1")
    unbound = Principal("x", frozenset({"booking.expert", "booking.read"}))
    assert authz.reach(expert, regions) == Reach(expert_id="E1")
    assert authz.reach(inspector, regions) == Reach(regions=("稠城街道",))
    for anyone in (both, admin, unbound, ANONYMOUS, Principal(authz.FIRM)):
        assert authz.reach(anyone, regions) == EVERY, anyone.caller
    assert Reach(expert_id="E1").admits("E1", "江东街道")
    assert not Reach(expert_id="E1").admits("E2", "稠城街道")
    assert not Reach(expert_id="E1").admits(None, "稠城街道")  # not dispatched yet
    assert Reach(regions=("稠城街道",)).admits(None, "稠城街道")
    assert not Reach(regions=("稠城街道",)).admits("E1", "江东街道")
    assert EVERY.admits(None, "")
    # out of reach reads as an unknown id (tickets-fixes): the same code and message
    with pytest.raises(NotFound) as refused:
        authz.require_reach(Reach(expert_id="E1"), "E2", "稠城街道", "order", "B1")
    assert refused.value.message == messages.no_such("order", "B1")


def test_an_experts_visit_shows_the_clauses_of_the_order_when_it_carries_them() -> None:
    from datetime import date

    from services.booking.domain.orders import Order
    from services.booking.service_layer.staff_views import _visit_row
    from tests.unit.booking.fakes import MENU, context

    order = Order(
        "B1", "E", "某厂", "稠城街道", ["dust_explosion"], [], "王", "13800000000", "", "k",
        "dispatched", T0, "E1", "2026-06-02 AM",
    )  # fmt: skip
    texts = {"GM2023:11(3)": ("除尘系统未采取泄爆措施", "")}
    row = _visit_row(context(), order, lambda ref: texts.get(ref, ("", "")))  # type: ignore[arg-type]
    assert row.items == ["粉尘防爆"] and row.day == date(2026, 6, 2) and row.clauses == []
    order.clause_refs = ["GM2023:11(3)"]  # type: ignore[attr-defined]  # orders that carry them
    row = _visit_row(context(), order, lambda ref: texts.get(ref, ("", "")))  # type: ignore[arg-type]
    assert row.clauses == [("GM2023:11(3)", "除尘系统未采取泄爆措施")]
    assert MENU["dust_explosion"].name == "粉尘防爆"
