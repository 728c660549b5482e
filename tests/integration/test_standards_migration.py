"""A database written by the release before the standards in full, migrated: stored
profiles, hazards, tickets and undelivered outbox events follow the renamed keys and
clauses where the old value says something unambiguous; the rest is kept and named."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from services.booking.adapters import migrate as booking_migrate
from services.common import standards_renames
from services.rules.adapters import migrate as rules_migrate
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server
from services.rules.service_layer import reevaluation
from services.rules.service_layer.unit_of_work import UnitOfWork
from tests.support import profile, uscc

NOW = datetime(2026, 11, 1, tzinfo=UTC)
OLD_FACTS = {
    "chem.single_power_supply": False,  # 或者 split: false → every alternative false
    "dust.zone20_non_ex_electrics": True,  # renamed, same meaning
    "dust.metal_positive_pressure_unprotected": False,  # ambiguous: kept, named
    "gen.no_hazard_ledger": True,  # unchanged
}


def _old_profile(n: int, **fields: object) -> dict[str, object]:
    data = profile(n, industry="machinery", high_risk_domains=["dust_explosion"])
    data.update(fields)
    return data


def _insert_firm(engine: Engine, data: dict[str, object]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO firms (enterprise_id, name, region, profile, created_at, updated_at)"
                " VALUES (:id, :name, :region, :profile, :now, :now)"
            ),
            {
                "id": data["enterprise_id"],
                "name": data["name"],
                "region": data["region"],
                "profile": json.dumps(data, ensure_ascii=False),
                "now": NOW,
            },
        )


def _stored(engine: Engine, enterprise_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        raw = conn.execute(
            text("SELECT profile FROM firms WHERE enterprise_id = :id"), {"id": enterprise_id}
        ).scalar_one()
    return json.loads(raw) if isinstance(raw, str) else raw  # type: ignore[no-any-return]


def test_rules_register_of_the_previous_release_is_migrated(
    db_engine_at_previous_release: Engine, rulebook: Rulebook
) -> None:
    engine = db_engine_at_previous_release
    hazard = {
        "hazard_id": "H1",
        "clause_ref": "GM2023:12",
        "severity": "major",
        "found_on": "2026-05-01",
        "due_on": "2026-06-01",
        "status": "open",
    }
    clean = _old_profile(1, facts={"chem.single_power_supply": False})
    stale = _old_profile(2, facts=OLD_FACTS, hazards=[hazard])
    # RED under 6.5 before venues existed; now 6.5 needs a venue the old profile cannot name
    shop = _old_profile(3, industry="commerce_trade", facts={"fire.exit_width_ratio": 0.5})
    for firm in (clean, stale, shop):
        _insert_firm(engine, firm)

    rules_migrate.upgrade(engine)

    assert _stored(engine, str(clean["enterprise_id"]))["facts"] == {
        "chem.no_dual_power_supply": False,
        "chem.control_system_no_ups": False,
    }
    migrated = _stored(engine, str(stale["enterprise_id"]))
    assert migrated["facts"] == {
        "chem.no_dual_power_supply": False,
        "chem.control_system_no_ups": False,
        "dust.zone20_electrics_noncompliant": True,
        "dust.metal_positive_pressure_unprotected": False,
        "gen.no_hazard_ledger": True,
    }
    assert migrated["hazards"][0]["clause_ref"] == "GM2023:12"  # two successors: kept

    ctx = grpc_server.context_from(rulebook)
    summary = reevaluation.reevaluate_all(UnitOfWork(engine), ctx, date(2026, 11, 27))
    assert summary.processed == 3 and summary.skipped == []
    assert summary.attention == [stale["enterprise_id"], shop["enterprise_id"]]


def test_a_renumbered_clause_with_one_successor_is_rewritten(
    db_engine_at_previous_release: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(standards_renames.CLAUSE_REFS, "GM2023:11(1)", ("GM2023:11(9)",))
    hazard = {
        "hazard_id": "H2",
        "clause_ref": "GM2023:11(1)",
        "severity": "major",
        "found_on": "2026-05-01",
        "due_on": "2026-06-01",
        "status": "open",
    }
    firm = _old_profile(4, hazards=[hazard])
    _insert_firm(db_engine_at_previous_release, firm)
    rules_migrate.upgrade(db_engine_at_previous_release)
    stored = _stored(db_engine_at_previous_release, str(firm["enterprise_id"]))
    assert stored["hazards"][0]["clause_ref"] == "GM2023:11(9)"


@pytest.fixture
def db_engine_at_previous_release(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'rules.db'}")
    rules_migrate.upgrade(engine, "0004")
    return engine


def test_booking_tickets_and_waiting_events_follow_the_renumbering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(standards_renames.CLAUSE_REFS, "GM2023:11(1)", ("GM2023:11(9)",))
    engine = create_engine(f"sqlite:///{tmp_path / 'booking.db'}")  # no FK pragma: bare rows
    booking_migrate.upgrade(engine, "b0002")
    firm = uscc(7)
    with engine.begin() as conn:
        for ticket_id, ref in (("T1", "GM2023:11(1)"), ("T2", "GM2023:12"), ("T3", "GEN:ledger")):
            conn.execute(
                text(
                    "INSERT INTO tickets (id, order_id, visit_id, enterprise_id, clause_ref,"
                    " severity, description, found_on, due_on, status, expert_id, created_at)"
                    " VALUES (:id, 'O1', 'V1', :firm, :ref, 'major', '', '2026-05-01',"
                    " '2026-06-01', 'open', 'E1', :now)"
                ),
                {"id": ticket_id, "firm": firm, "ref": ref, "now": NOW},
            )
        for event_id, delivered in (("waiting", None), ("sent", NOW)):
            payload = {
                "event_id": event_id,
                "hazard": {"hazard_id": "T1", "clause_ref": "GM2023:11(1)"},
            }
            conn.execute(
                text(
                    "INSERT INTO outbox (event_id, kind, enterprise_id, payload, created_at,"
                    " attempts, delivered_at) VALUES (:e, 'MAJOR_HAZARD_FOUND', :firm, :p, :now,"
                    " 0, :d)"
                ),
                {"e": event_id, "firm": firm, "p": json.dumps(payload), "now": NOW, "d": delivered},
            )

    booking_migrate.upgrade(engine)

    with engine.connect() as conn:
        refs = dict(conn.execute(text("SELECT id, clause_ref FROM tickets")).all())
        events = dict(conn.execute(text("SELECT event_id, payload FROM outbox")).all())
    assert refs == {"T1": "GM2023:11(9)", "T2": "GM2023:12", "T3": "GEN:ledger"}
    assert json.loads(events["waiting"])["hazard"]["clause_ref"] == "GM2023:11(9)"
    assert json.loads(events["sent"])["hazard"]["clause_ref"] == "GM2023:11(1)"  # history
